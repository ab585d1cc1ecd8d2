/*
 * dist.h -- distributed checkpoint directories (docs/FORMAT.md §20): the
 * manifest parser and the box planner, shared by the directory reader
 * (dist_read.c), its fuzz target and its tests.
 *
 *   manifest.cairn (native file)
 *     tree      {"cairn_dist": 1, "ranks": N, "metadata": {...}
 *                [, "rank_dir": "<16 hex digits>"]}  (rank files in that
 *                subdirectory: a save on an object store, §20.4)
 *     dist.files    U64 [N, 2]   size, index_hash of rank-<i>.cairn
 *     dist.names    U8  [S]      T names, NUL-terminated, strictly ascending
 *     dist.tensors  U64 [T, 11]  dtype, rank r, box count b, dims[8]
 *     dist.boxes    U64 [W]      per tensor, b x (file, offset[r], extent[r])
 */
#ifndef CAIRN_DIST_H
#define CAIRN_DIST_H

#include "common/internal.h"

#define CAIRN__DIST_MANIFEST "manifest.cairn"
#define CAIRN__DIST_VERSION 1
#define CAIRN__DIST_MAX_FILES (UINT64_C(1) << 20)
#define CAIRN__DIST_MAX_TENSORS (UINT64_C(1) << 22)
#define CAIRN__DIST_MAX_WORDS (UINT64_C(1) << 28)
#define CAIRN__DIST_TENSOR_WORDS 11
#define CAIRN__DIST_RANK_DIR_LEN 16 /* hex digits of "rank_dir" */

typedef struct cairn__dist_tensor {
    const char *name; /* into the manifest's names table */
    size_t name_len;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t count;      /* elements */
    uint64_t nbox;
    const uint64_t *box; /* nbox records of 1 + 2 * rank words */
} cairn__dist_tensor;

/* The tables point into the manifest's mapping when it has zero-copy views
 * (so the manifest file must stay open as long as this), else into copies
 * held in `own`. */
typedef struct cairn__dist_manifest {
    uint64_t nfiles;
    const uint64_t *files; /* 2 per file: size, index_hash */
    const char *names;
    uint64_t ntensors;
    cairn__dist_tensor *tensors; /* in name order */
    const uint64_t *boxes;
    uint64_t nwords;
    cairn_value *meta; /* the caller's tree (a map) */
    char rank_dir[CAIRN__DIST_RANK_DIR_LEN + 1]; /* "" when the rank files sit beside it */
    void *own[4];      /* copies of tables that had no view */
} cairn__dist_manifest;

/* Reads and checks the manifest held by `mf` (an open native file, which
 * must stay open until cairn__dist_manifest_free; `what` names it in
 * messages): every rule of docs/FORMAT.md §20.1 but the overlap
 * check, which cairn__dist_plan and cairn__dist_check_tensor do. On failure
 * *m is left empty. */
cairn_status cairn__dist_manifest_parse(const cairn_file *mf, const char *what,
                                        cairn__dist_manifest *m, cairn_error *err);
void cairn__dist_manifest_free(cairn__dist_manifest *m);

/* Tensor by name: its index, or CAIRN_E_NOT_FOUND. */
cairn_status cairn__dist_find(const cairn__dist_manifest *m, const char *what, const char *name,
                              size_t len, uint64_t *index, cairn_error *err);

/* One saved box that meets a request, clipped to it. */
typedef struct cairn__dist_piece {
    uint64_t file;
    uint64_t box;                      /* its number among the tensor's boxes */
    const uint64_t *off, *ext;         /* the saved box (into the manifest) */
    uint64_t ioff[CAIRN_MAX_RANK];     /* the intersection, global coordinates */
    uint64_t iext[CAIRN_MAX_RANK];
} cairn__dist_piece;

/* The saved boxes of tensor `t` that meet the box (roff, rext), clipped to
 * it (*pieces: caller frees), sorted by their first coordinate. Checks that they tile the
 * request exactly (no two overlap, volumes add up): CAIRN_E_CORRUPT naming
 * the tensor and the boxes otherwise. The request must be in bounds. */
cairn_status cairn__dist_plan(const cairn__dist_manifest *m, const char *what, uint64_t t,
                              const uint64_t *roff, const uint64_t *rext,
                              cairn__dist_piece **pieces, size_t *count, cairn_error *err);
/* Checks that no two boxes of tensor `t` overlap (verify). */
cairn_status cairn__dist_check_tensor(const cairn__dist_manifest *m, const char *what,
                                      uint64_t t, cairn_error *err);

/* A distributed checkpoint opened by cairn_file_open (any other archive:
 * CAIRN_OK): every rank file opens and has the size and index hash the
 * manifest names (what makes the directory a valid checkpoint for the
 * checkpoint manager's listing; payloads are checked by verify). */
cairn_status cairn__dist_check_parts(const cairn_file *f, cairn_error *err);
/* 1 when `f` is a distributed checkpoint opened as one archive. */
int cairn__dist_is(const cairn_file *f);

#endif
