/*
 * archive.h -- what the archive face (open, detect, read, write, composite
 * archives) shares internally beyond the format seam (format/format.h).
 */
#ifndef CAIRN_ARCHIVE_H
#define CAIRN_ARCHIVE_H

#include "format/format.h"
#include "format/registry.h"

/* The one range check in front of ops->tensor_at: CAIRN_E_NOT_FOUND (naming
 * the file, the index and the count) when index >= count. */
cairn_status cairn__tensor_get(const cairn_file *f, uint64_t index, cairn__tensor *out,
                               cairn_error *err);

/* CAIRN_OK when w can take another call; else the status of the call that
 * failed it (CAIRN_E_STATE) or CAIRN_E_ARG for NULL. */
cairn_status cairn__writer_usable(cairn_writer *w, cairn_error *err);
/* Marks w failed (every later call but abort refuses) and returns st. */
cairn_status cairn__writer_failed(cairn_writer *w, cairn_status st, cairn_error *err);

/* The invariant every reader's tensors keep (file.c says which); called by
 * cairn__tensor_get, so a reader's mistake is CAIRN_E_CORRUPT, never a
 * wrapped size. */
cairn_status cairn__tensor_check(const cairn_file *f, const cairn__tensor *t, cairn_error *err);

/* Composite archives: their tensors live in other cairn_files, opened
 * through the public open (the one accepted loop, ARCHITECTURE.md). */
extern const cairn__reader_ops cairn__safetensors_index_reader;
extern const cairn__reader_ops cairn__skorch_reader; /* a skorch checkpoint directory */
/* 1 when `dir` holds a skorch checkpoint (params.pt, or one PREFIX with both
 * PREFIXparams.pt and PREFIXhistory.json). */
int cairn__skorch_sniff(const char *dir);
extern const cairn__reader_ops cairn__dist_reader; /* a distributed checkpoint directory */
/* 1 when `dir` holds a distributed checkpoint's manifest.cairn. */
int cairn__dist_sniff(const char *dir);

/* Copies the intersection (ioff, iext) of tensor `index` of `src`, which
 * holds the box (soff, sext) of some global tensor in C order, into dst,
 * which holds the box (roff, rext) in C order as `dtype`: runs contiguous in
 * both, each read with cairn_tensor_read_range (compressed tensors in
 * windows, so each chunk is decoded once). Boxes are the caller's to check
 * (read_box.c). */
cairn_status cairn__box_copy(const cairn_file *src, uint64_t index, uint32_t rank,
                             const uint64_t *soff, const uint64_t *sext, const uint64_t *roff,
                             const uint64_t *rext, const uint64_t *ioff, const uint64_t *iext,
                             cairn_dtype dtype, void *dst, cairn_error *err);

/* Sharded safetensors output (compose_shards.c). */
extern const cairn__writer_ops cairn__shards_writer;

#endif /* CAIRN_ARCHIVE_H */
