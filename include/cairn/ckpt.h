/*
 * cairn/ckpt.h -- the checkpoint manager.
 *
 * Part of the public API: included by cairn.h (include that), kept in a
 * file of its own so that the core API in cairn.h reads on its own.
 */
#ifndef CAIRN_H
#include "../cairn.h" /* the core first: it includes this file after itself */
#elif !defined(CAIRN_CKPT_H)
#define CAIRN_CKPT_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------- checkpoint manager */

/* A checkpoint manager keeps a directory of checkpoints of one training run
 * (docs/CHECKPOINTS.md): it decides when to save (monitored metric, every N
 * epochs or steps, every T seconds, at train end, on a signal), commits each
 * checkpoint atomically as one whole-model archive, applies composable
 * retention only after the new checkpoint is durable, and resumes from the
 * newest checkpoint that verifies. The directory is the only state.
 * A cairn_ckpt belongs to one thread (its async writer is internal).
 *
 * Two rules keep one run from destroying another's checkpoints:
 *  - One writer per series (directory + fn_prefix): a manager opened for
 *    writing holds an exclusive lock on DIR/.<fn_prefix>ckpt.cairn-lock (an
 *    open-file-description lock, or flock where those are missing) until
 *    cairn_ckpt_close; the kernel drops it when the process dies, so a killed
 *    run never leaves the series locked, and a lock file left behind blocks
 *    nobody. A second writer gets CAIRN_E_BUSY naming the directory and, when
 *    the lock file says so, the holder's PID. Readers (CAIRN_CKPT_READ_ONLY)
 *    take no lock and are never blocked.
 *  - Nothing is replaced, even without the lock (file systems where locks
 *    are advisory or absent): a checkpoint is committed with a rename that
 *    refuses to replace an existing file (CAIRN_WRITE_NO_REPLACE); if its
 *    name was taken meanwhile, the save takes the next free sequence number.
 *    Automatic retention removes only checkpoints this manager wrote since it
 *    was opened, unless CAIRN_CKPT_PRUNE_EARLIER says otherwise. */
typedef struct cairn_ckpt cairn_ckpt;

/* Flags for cairn_ckpt_opts.flags. */
#define CAIRN_CKPT_MODE_MAX 0x1u /* the monitored metric improves upwards (accuracy) */
#define CAIRN_CKPT_ASYNC 0x2u    /* copy buffers to staging memory and write in the background */
#define CAIRN_CKPT_NO_SYNC 0x4u  /* skip fsyncs (tests, scratch runs): still atomic, not durable */
#define CAIRN_CKPT_SIGNALS 0x8u  /* on SIGTERM/SIGINT, the next cairn_ckpt_step saves (see below) */
#define CAIRN_CKPT_READ_ONLY 0x10u /* list, load and resume only: no lock, nothing created or
                                      removed; step and prune fail with CAIRN_E_STATE */
#define CAIRN_CKPT_PRUNE_EARLIER 0x20u /* automatic retention may also remove checkpoints that
                                          were in the directory before this manager opened it
                                          (a resumed run's own earlier ones); without it, only
                                          checkpoints saved through this manager are removed */

typedef struct cairn_ckpt_opts {
    size_t struct_size;  /* sizeof(cairn_ckpt_opts) */
    const char *dirname; /* created if missing */
    const char *fn_prefix; /* checkpoint files are <fn_prefix>ckpt-<seq>.cairn; NULL = "" */
    const char *monitor; /* metric name in the step's metrics map; NULL = no monitor */
    unsigned flags;
    /* Triggers (any that fires saves). With a monitor: save when the metric
     * improves. every_epochs / every_steps / every_seconds: 0 = off. With no
     * monitor and no other trigger, every cairn_ckpt_step saves. */
    uint32_t every_epochs;
    uint64_t every_steps;
    double every_seconds;
    /* Retention (a checkpoint is kept if any policy keeps it; the newest valid
     * checkpoint is always kept). All 0 = keep everything. */
    uint32_t keep_best;  /* the K best by the monitor */
    uint32_t keep_last;  /* the N newest */
    uint32_t keep_every; /* those whose epoch is a multiple of M, forever */
    /* Fields below were added later; a caller whose struct_size ends before
     * them gets the defaults (0). */
    /* Test switch: nonzero = take no write lock, as on a file system without
     * locks; the no-replace rule alone then keeps writers apart. */
    int test_no_lock;
} cairn_ckpt_opts;

/* Opens (creating if needed) a checkpoint directory: takes the series' write
 * lock (CAIRN_E_BUSY if another process holds it), lists its checkpoints
 * from the files alone, removes leftover temporary files of this prefix, and
 * checks which checkpoints are valid (committed and verifying). With
 * CAIRN_CKPT_READ_ONLY the directory must exist and is only listed. */
CAIRN_API cairn_status cairn_ckpt_open(const cairn_ckpt_opts *opts, cairn_ckpt **out,
                                       cairn_error *err);
/* Waits for a background save to be durable, then frees the manager.
 * Returns that save's error, if any. NULL is a no-op returning CAIRN_OK. */
CAIRN_API cairn_status cairn_ckpt_close(cairn_ckpt *m, cairn_error *err);

/* Flags for cairn_ckpt_step. */
#define CAIRN_STEP_FORCE 0x1u     /* save whatever the triggers say (train end) */
/* Results for cairn_ckpt_step's *saved. */
#define CAIRN_SAVED_NO 0
#define CAIRN_SAVED_YES 1
#define CAIRN_SAVED_SIGNAL 2      /* saved because a signal arrived: the caller should stop */

/* Called at the end of an epoch (or step): `metrics` is a map of numbers
 * (may be NULL), `parts` what to save. Decides from the triggers whether to
 * save; if so, writes the checkpoint (tagged with epoch, step, metrics and
 * the reasons) and applies retention. *saved (may be NULL) says what
 * happened. A failed save returns its error and leaves the directory as it
 * was. With CAIRN_CKPT_ASYNC, this returns once the buffers are copied; the
 * caller may change them as soon as it returns; an error of the background
 * write is returned by the next call or by close. */
CAIRN_API cairn_status cairn_ckpt_step(cairn_ckpt *m, uint64_t epoch, uint64_t step,
                                       const cairn_value *metrics, const cairn_model_parts *parts,
                                       unsigned flags, int *saved, cairn_error *err);
/* Waits until no background save is in flight; returns its error, if any. */
CAIRN_API cairn_status cairn_ckpt_wait(cairn_ckpt *m, cairn_error *err);

typedef struct cairn_ckpt_info {
    uint64_t seq;       /* order of saving, from 1 */
    uint64_t epoch, step;
    double time;        /* seconds since the Unix epoch, when saved */
    int has_metric;
    double metric;      /* the monitored metric, if has_metric */
    uint64_t bytes;     /* file size */
    int valid;          /* committed and verifies */
    const char *path;   /* borrowed until the next call on the manager */
    const char *reasons; /* "improved", "every", "forced", "signal", ... comma-separated; borrowed */
} cairn_ckpt_info;

/* Checkpoints in saving order (oldest first). */
CAIRN_API size_t cairn_ckpt_count(const cairn_ckpt *m);
CAIRN_API cairn_status cairn_ckpt_info_at(const cairn_ckpt *m, size_t i, cairn_ckpt_info *out,
                                          cairn_error *err);
/* Index of the best valid checkpoint by the monitor / of the newest valid
 * one; CAIRN_E_NOT_FOUND when there is none. */
CAIRN_API cairn_status cairn_ckpt_best(const cairn_ckpt *m, size_t *index, cairn_error *err);
CAIRN_API cairn_status cairn_ckpt_latest(const cairn_ckpt *m, size_t *index, cairn_error *err);
/* Loads checkpoint `index` into `parts` (cairn_model_load, verifying
 * checksums first) and returns its metadata tree in *meta (may be NULL). */
CAIRN_API cairn_status cairn_ckpt_load(cairn_ckpt *m, size_t index, const cairn_model_parts *parts,
                                       const cairn_load_opts *opts, cairn_value **meta,
                                       cairn_error *err);

typedef struct cairn_ckpt_resume_info {
    size_t index;        /* the checkpoint loaded */
    uint64_t next_epoch; /* its epoch + 1: the count goes on */
    uint64_t step;
    size_t skipped;      /* newer checkpoints passed over because they did not verify */
    char why[512];       /* which ones and why, for the caller to print */
} cairn_ckpt_resume_info;

/* Loads the newest valid checkpoint, falling back past corrupt ones, into
 * `parts`. CAIRN_E_NOT_FOUND when the directory has no valid checkpoint. */
CAIRN_API cairn_status cairn_ckpt_resume(cairn_ckpt *m, const cairn_model_parts *parts,
                                         const cairn_load_opts *opts, cairn_value **meta,
                                         cairn_ckpt_resume_info *info, cairn_error *err);
/* Applies retention now with the given policy (0s = keep everything), e.g.
 * for `cairn ckpt prune`, to every checkpoint of the series (an explicit
 * policy: also to those saved by earlier runs). With dry_run, only reports
 * (a read-only manager can do that): *removed (may be NULL) counts what was
 * (or would be) deleted. The newest valid checkpoint is never removed. */
CAIRN_API cairn_status cairn_ckpt_prune(cairn_ckpt *m, uint32_t keep_best, uint32_t keep_last,
                                        uint32_t keep_every, int dry_run, size_t *removed,
                                        cairn_error *err);

#ifdef __cplusplus
}
#endif

#endif
