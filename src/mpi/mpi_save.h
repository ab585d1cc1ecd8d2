/*
 * mpi_save.h -- a save's state, shared by the save (mpi_save.c) and its
 * object-store commit (mpi_s3_save.c).
 */
#ifndef CAIRN_MPI_SAVE_H
#define CAIRN_MPI_SAVE_H

#include "mpi_internal.h"

#define MAX_RANK CAIRN_MAX_RANK
#define PATH_MAX_LEN 4096
#define RANK_DIR_LEN 16

typedef struct piece {
    char *name;
    cairn_dtype dtype;
    uint32_t rank;
    int replicated;
    uint64_t dims[MAX_RANK], off[MAX_RANK], ext[MAX_RANK];
    uint64_t count; /* elements of the box */
    const void *data;
    void *owned;    /* cairn__mpi_save_own's copy */
    uint8_t skip;   /* rank 0 said: another rank writes it (replicated) */
} piece;

struct cairn_mpi_save {
    MPI_Comm comm;
    int me, size;
    char *path;
    int remote;                  /* path is an object URL (mpi_s3_save.c) */
    char rank_dir[RANK_DIR_LEN + 1]; /* remote: the save's random subprefix */
    char staging[PATH_MAX_LEN];  /* local: the staging directory; remote: path/rank_dir */
    cairn_write_opts wopts;
    piece *pieces;
    size_t n, cap;
    cairn_value *meta, *record;
    cairn_status failed; /* the first local error of an add */
    cairn_error ferr;
    /* rank 0: the manifest tables, built by the plan */
    uint64_t ntensors, nwords;
    uint64_t *tensors, *boxes;
    uint8_t *names;
    uint64_t names_len;
    /* the write's outcome */
    cairn_status wst;
    cairn_error werr;
    uint64_t fsize, fhash;
    char file[PATH_MAX_LEN + 32]; /* this rank's file in the staging directory */
    int synced;                   /* it is durable */
    int written;                  /* it was committed (remote: an object to remove on failure) */
    uint64_t *ids;                /* rank 0: every rank's (status, size, hash); remote:
                                     (size, hash) */
    cairn__mpi_times times;
};

/* CLOCK_MONOTONIC seconds (the commit's breakdown). */
double cairn__mpi_now(void);
/* Writes the manifest at `path` with `flags` (CAIRN_WRITE_NO_SYNC in a
 * local staging directory, CAIRN_WRITE_NO_REPLACE on an object store,
 * where its creation is the commit). */
cairn_status cairn__mpi_put_manifest(cairn_mpi_save *s, const uint64_t *files, const char *path,
                                     unsigned flags, cairn_error *err);
/* cairn__mpi_save_finish on an object store (mpi_s3_save.c). */
cairn_status cairn__mpi_save_finish_remote(cairn_mpi_save *s, cairn__mpi_times *times,
                                           cairn_error *err);

#endif
