/*
 * mpi_internal.h -- libcairn_mpi's shared pieces: errors agreed across
 * ranks, the save's phases (so the manager can run the write in the
 * background), and directory helpers. libcairn_mpi is a client of cairn.h.
 */
#ifndef CAIRN_MPI_INTERNAL_H
#define CAIRN_MPI_INTERNAL_H

#include "cairn_mpi.h"

#include <stdint.h>

#define MPI_TRY(expr)                      \
    do {                                   \
        cairn_status try_st_ = (expr);     \
        if (try_st_ != CAIRN_OK)           \
            return try_st_;                \
    } while (0)

cairn_status cairn__mpi_fail(cairn_error *err, cairn_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Collective: every rank passes its status; all return the status of the
 * lowest failing rank with its message (CAIRN_OK if none failed). */
cairn_status cairn__mpi_agree(MPI_Comm comm, cairn_status st, cairn_error *err);
/* Collective: rank `root`'s status and message become every rank's. */
cairn_status cairn__mpi_bcast_status(MPI_Comm comm, int root, cairn_status st, cairn_error *err);

/* Removes a directory and the regular files in it (staging directories,
 * checkpoints retention drops): the manifest first, so a crash part way
 * never leaves something that looks like a checkpoint. An object URL:
 * cairn__mpi_remote_remove_dir. */
void cairn__mpi_remove_dir(const char *dir);
/* fsync of a directory. */
cairn_status cairn__mpi_sync_dir(const char *dir, cairn_error *err);
/* 16 random lowercase hex digits (and a NUL) into out. */
cairn_status cairn__mpi_random_hex(const char *what, char out[17], cairn_error *err);

/* Object stores (mpi_s3_list.c). Removes a checkpoint under the key prefix
 * `url` (every key below "url/"): the manifest first, so a crash part way
 * leaves an uncommitted prefix, never a checkpoint missing rank files. */
void cairn__mpi_remote_remove_dir(const char *url);
/* *committed: the checkpoint `url` has its manifest (one listing). */
cairn_status cairn__mpi_remote_committed(const char *url, int *committed, cairn_error *err);
/* Lists the key prefix `dir` as checkpoints: fn gets each first path
 * component under "dir/" that holds keys (e.g. "ckpt-00000003") and
 * whether a manifest object sits directly in it (committed); a non-zero
 * return stops the listing. Keys without a '/' are not checkpoints. */
typedef int (*cairn__mpi_found_fn)(void *ctx, const char *leaf, int committed);
cairn_status cairn__mpi_remote_scan(const char *dir, cairn__mpi_found_fn fn, void *ctx,
                                    cairn_error *err);

/* When each step of a save ended on this rank (CLOCK_MONOTONIC seconds;
 * the rank-0-only steps are 0 elsewhere): the commit's breakdown for
 * bench/bench_mpi.c. */
typedef struct cairn__mpi_times {
    double written;          /* this rank's file written, not yet durable */
    double gathered;         /* (status, size, hash) sent; rank 0: received from all */
    double file_synced;      /* this rank's file durable */
    double manifest_written; /* rank 0 */
    double manifest_synced;  /* rank 0 */
    double staging_synced;   /* rank 0: the staging directory's one fsync */
    double agreed;           /* the agreement returned */
    double renamed;          /* rank 0: the no-replace rename (visible) */
    double parent_synced;    /* rank 0: the parent's fsync (durable) */
    double result;           /* the result broadcast returned */
} cairn__mpi_times;

/* A save's phases (mpi_save.c). commit = plan, write, finish. The write
 * writes this rank's file into the staging directory without fsync, and
 * fsyncs it when `sync` says so (else finish does, after its gather). */
cairn_status cairn__mpi_save_plan(cairn_mpi_save *s, cairn_error *err); /* collective */
void cairn__mpi_save_write(cairn_mpi_save *s, int sync);                 /* local */
/* Collective, frees `s`; `times` (may be NULL) receives this rank's. */
cairn_status cairn__mpi_save_finish(cairn_mpi_save *s, cairn__mpi_times *times,
                                    cairn_error *err);
/* Copies every borrowed buffer of the save (async checkpoints). */
cairn_status cairn__mpi_save_own(cairn_mpi_save *s, cairn_error *err);
/* The manager's record, merged into the metadata under "checkpoint". */
cairn_status cairn__mpi_save_set_record(cairn_mpi_save *s, cairn_value *record, cairn_error *err);

#endif
