/*
 * cairn_mpi.h -- distributed checkpoints over MPI (libcairn_mpi).
 *
 * N ranks save one checkpoint directory, each its pieces ("boxes") of the
 * global tensors plus replicated tensors written once; M ranks (any M) load
 * any boxes of it. Layout: docs/FORMAT.md §20; protocol, crash table and
 * costs: docs/DISTRIBUTED.md. libcairn_mpi is a client of cairn.h; the
 * directory it writes is also read without MPI by cairn_file_open.
 *
 * Calls marked "collective" must be made by every rank of the communicator,
 * in the same order. Errors: every collective call returns the same status
 * on every rank (the message names the rank that failed first). A handle
 * belongs to one thread.
 */
#ifndef CAIRN_MPI_H
#define CAIRN_MPI_H

#include <cairn.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------- save */

typedef struct cairn_mpi_save cairn_mpi_save;

/* Starts a save of the checkpoint directory `path` (which must not exist:
 * an existing checkpoint is never replaced, CAIRN_E_EXISTS at commit).
 * `path` may be an object-store key prefix, "s3://bucket/run/step-100"
 * (docs/DISTRIBUTED.md "On an object store"): each rank's file streams as
 * an object under it and the manifest is created last, create-only, as the
 * commit; of two jobs saving one path exactly one succeeds, the other gets
 * CAIRN_E_EXISTS on every rank and removes its objects.
 * Local: no communication. `opts` (may be NULL) are each rank file's write
 * options: flags (CAIRN_WRITE_NO_SYNC), codec, level, filter, chunk_size,
 * threads, alignment; format must be CAIRN_FORMAT_AUTO or _NATIVE. The
 * save's collectives (at commit) run on `comm`, which must stay valid until
 * commit returns. */
CAIRN_API cairn_status cairn_mpi_save_begin(MPI_Comm comm, const char *path, const cairn_write_opts *opts,
                                  cairn_mpi_save **out, cairn_error *err);
/* Adds this rank's box of a global tensor: `rank` entries of global dims,
 * the box's corner `offset` and size `extent` (all copied); `data` holds
 * the box in C order (product of extent elements of `dtype`) and is
 * BORROWED until cairn_mpi_save_commit returns. An empty box (some extent 0)
 * is allowed and stores nothing. Each name at most once per rank. Local;
 * errors are kept and reported by commit to every rank. */
CAIRN_API cairn_status cairn_mpi_save_add(cairn_mpi_save *s, const char *name, cairn_dtype dtype,
                                uint32_t rank, const uint64_t *dims, const uint64_t *offset,
                                const uint64_t *extent, const void *data, cairn_error *err);
/* Adds a tensor every rank that adds it holds whole and identical
 * (replicated): written once, by the lowest rank that adds it. `data` is
 * borrowed until commit returns. Local. */
CAIRN_API cairn_status cairn_mpi_save_add_replicated(cairn_mpi_save *s, const char *name,
                                           cairn_dtype dtype, uint32_t rank,
                                           const uint64_t *dims, const void *data,
                                           cairn_error *err);
/* The checkpoint's metadata tree (a map, copied). Only rank 0's is
 * written. Local. */
CAIRN_API cairn_status cairn_mpi_save_set_metadata(cairn_mpi_save *s, const cairn_value *tree,
                                         cairn_error *err);
/* Collective. Checks the global layout (every rank agrees on each tensor's
 * dtype and shape; boxes in bounds, not overlapping, covering each tensor
 * exactly), writes every rank's file into a staging directory, agrees that
 * all are durable, then rank 0 writes the manifest and commits the
 * directory (docs/DISTRIBUTED.md). Any failure on any rank: nothing is
 * committed, the staging directory is removed, every rank returns the
 * error. Frees `s` either way. */
CAIRN_API cairn_status cairn_mpi_save_commit(cairn_mpi_save *s, cairn_error *err);
/* Frees a save without committing (local: a rank that aborts must not
 * leave others waiting in commit). NULL is a no-op. */
CAIRN_API void cairn_mpi_save_abort(cairn_mpi_save *s);

/* ------------------------------------------------------------------- load */

/* Collective: every rank opens the checkpoint directory (or s3:// key
 * prefix) `path` (cairn_file_open), and if any rank fails, every rank fails
 * with that rank's error. Reads on the returned file are local: cairn_tensor_find,
 * cairn_tensor_read_box (any box: only the pieces that meet it are read),
 * cairn_tensor_read (whole tensors). Close it with cairn_file_close. */
CAIRN_API cairn_status cairn_mpi_open(MPI_Comm comm, const char *path, const cairn_open_opts *opts,
                            cairn_file **out, cairn_error *err);

/* ---------------------------------------------------- checkpoint manager */

/* A directory of distributed checkpoints ROOT/<prefix>ckpt-<seq>/ of one
 * training run (docs/DISTRIBUTED.md "The checkpoint manager"), with the
 * single-process manager's rules (cairn/ckpt.h: the same triggers, reasons,
 * record and retention). Rank 0 holds the directory lock (one writer per
 * directory), decides and broadcasts; every call below is collective. */
typedef struct cairn_mpi_ckpt cairn_mpi_ckpt;

typedef struct cairn_mpi_ckpt_opts {
    size_t struct_size;    /* sizeof(cairn_mpi_ckpt_opts) */
    const char *dirname;   /* created if missing; or an s3:// key prefix (no lock:
                              docs/DISTRIBUTED.md "The manager on a prefix") */
    const char *fn_prefix; /* NULL = "" */
    unsigned flags;        /* CAIRN_CKPT_ASYNC, CAIRN_CKPT_NO_SYNC, CAIRN_CKPT_READ_ONLY
                              (no lock, nothing created or removed, no saves),
                              CAIRN_CKPT_PRUNE_EARLIER (retention may also remove
                              checkpoints of earlier runs), CAIRN_CKPT_MODE_MAX (the
                              monitor improves upwards), CAIRN_CKPT_SIGNALS (SIGTERM,
                              SIGINT or SIGUSR1 on any rank: every rank saves at the
                              next begin, *saved = CAIRN_SAVED_SIGNAL) -- cairn.h */
    /* Triggers (any that fires saves; with a monitor: when rank 0's metric
     * improves); no monitor and all 0 = every step saves. */
    uint32_t every_epochs;
    uint64_t every_steps;
    double every_seconds;
    /* Retention among the checkpoints this manager wrote in this run (and
     * earlier runs' with CAIRN_CKPT_PRUNE_EARLIER); the newest valid
     * checkpoint is always kept; 0 = keep all. */
    uint32_t keep_last;
    uint32_t keep_every;   /* keep those whose epoch is a multiple of it */
    const cairn_write_opts *write; /* rank file options (codec ...), may be NULL */
    /* Added later; a caller whose struct_size ends before them gets NULL/0. */
    const char *monitor;   /* metric name in rank 0's metrics map; NULL = none */
    uint32_t keep_best;    /* keep the K best by the monitor (needs one) */
} cairn_mpi_ckpt_opts;

/* Collective. Opens (creating) the directory, takes its lock on rank 0
 * (CAIRN_E_STATE naming the directory and the holder's pid when another
 * writer has it), removes staging directories of this prefix, lists the
 * checkpoints and checks which are valid: the manifest opens and every rank
 * file has the size and index hash it names. On an s3:// prefix: no lock;
 * a writer removes uncommitted checkpoints (no manifest) older than the
 * newest committed one, and after each commit too. `comm` must stay valid until
 * close. */
CAIRN_API cairn_status cairn_mpi_ckpt_open(MPI_Comm comm, const cairn_mpi_ckpt_opts *opts,
                                 cairn_mpi_ckpt **out, cairn_error *err);
/* Collective. Finishes a save in flight, releases the lock, frees. */
CAIRN_API cairn_status cairn_mpi_ckpt_close(cairn_mpi_ckpt *m, cairn_error *err);

/* Collective, at a step boundary. Decides from the triggers whether this
 * step saves: rank 0 decides from its `metrics` (a map of numbers, may be
 * NULL without a monitor; pass the same on every rank, e.g. after an
 * MPI_Allreduce), CAIRN_STEP_FORCE saves anyway, and a signal caught on
 * any rank (CAIRN_CKPT_SIGNALS) makes every rank save at this same step.
 * If not, *save is NULL. If so, *save is a save of the next checkpoint: add
 * this rank's pieces to it and pass it to cairn_mpi_ckpt_commit. *saved
 * (may be NULL): CAIRN_SAVED_NO, _YES, or _SIGNAL (the caller should
 * commit, close and stop). A save still in flight (async) is finished
 * first; its error, if any, is returned here. */
CAIRN_API cairn_status cairn_mpi_ckpt_begin(cairn_mpi_ckpt *m, uint64_t epoch, uint64_t step,
                                  const cairn_value *metrics, unsigned flags,
                                  cairn_mpi_save **save, int *saved, cairn_error *err);
/* Collective. Commits `save` as the checkpoint and applies retention.
 * With CAIRN_CKPT_ASYNC: the pieces are copied to host memory and a
 * background thread writes this rank's file; this returns after the copy
 * and the layout check, and the agreement and commit run at the next
 * begin, wait or close. */
CAIRN_API cairn_status cairn_mpi_ckpt_commit(cairn_mpi_ckpt *m, cairn_mpi_save *save, cairn_error *err);
/* Collective. Finishes a save in flight (agreement, commit, retention). */
CAIRN_API cairn_status cairn_mpi_ckpt_wait(cairn_mpi_ckpt *m, cairn_error *err);

typedef struct cairn_mpi_ckpt_info {
    uint64_t seq, epoch, step;
    int valid;
    const char *path;    /* borrowed until the next call on the manager */
    double time;         /* seconds since the Unix epoch, when saved */
    int has_metric;
    double metric;       /* the monitored metric, if has_metric */
    const char *reasons; /* "improved", "every_steps", "signal", ...; borrowed likewise */
} cairn_mpi_ckpt_info;

/* Checkpoints in saving order (oldest first); same on every rank. */
CAIRN_API size_t cairn_mpi_ckpt_count(const cairn_mpi_ckpt *m);
CAIRN_API cairn_status cairn_mpi_ckpt_info_at(const cairn_mpi_ckpt *m, size_t i, cairn_mpi_ckpt_info *out,
                                    cairn_error *err);
/* Index of the best valid checkpoint by the monitor (the newest of equals;
 * without a monitor, the newest valid one); CAIRN_E_NOT_FOUND when none. Local (the table is the same
 * on every rank). */
CAIRN_API cairn_status cairn_mpi_ckpt_best(const cairn_mpi_ckpt *m, size_t *index, cairn_error *err);
/* Collective. Opens the newest valid checkpoint after verifying every byte
 * of it (the rank files shared out among the ranks), passing over newer
 * ones that fail (marked invalid, *skipped counts them). *f is open on every
 * rank (cairn_mpi_open); *info describes it. CAIRN_E_NOT_FOUND when none
 * is valid. */
CAIRN_API cairn_status cairn_mpi_ckpt_resume(cairn_mpi_ckpt *m, cairn_file **f, cairn_mpi_ckpt_info *info,
                                   size_t *skipped, cairn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_MPI_H */
