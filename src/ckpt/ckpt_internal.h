/*
 * ckpt_internal.h -- the checkpoint manager's state, shared by ckpt.c (the
 * directory, triggers, retention, resume) and ckpt_async.c (staging copies
 * and the background writer).
 */
#ifndef CAIRN_CKPT_INTERNAL_H
#define CAIRN_CKPT_INTERNAL_H

#include "ckpt/ckpt_policy.h"
#include "common/internal.h"

#include <pthread.h>
#include <sched.h>
#include <sys/types.h>
#include <signal.h>

typedef struct ckpt_entry {
    uint64_t seq, epoch, step;
    double time;
    int has_metric;
    double metric;
    uint64_t bytes;
    int valid;
    int mine;            /* saved through this manager since it was opened */
    char *path;
    char *reasons;
} ckpt_entry;

/* One save handed to the background writer: everything it needs is owned
 * by the job (staged copies), so the caller's buffers are free again. */
typedef struct ckpt_job ckpt_job;

struct cairn_ckpt {
    char *dir, *prefix, *monitor;
    uint64_t stale_seconds; /* object storage: unfinished uploads older than this are aborted */
    unsigned flags;
    int lock_fd;         /* the series' write lock (ckpt_lock.c); -1: none held */
    int no_lock;         /* cairn_ckpt_opts.test_no_lock */
    uint32_t keep_best, keep_last, keep_every;
    cairn__ckpt_trig trig; /* the triggers and what they count from (ckpt_policy.h) */

    ckpt_entry *entries; /* sorted by seq */
    size_t count, cap;
    uint64_t next_seq;

    /* async writer (ckpt_async.c) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ckpt_job *job;       /* in flight or finished but not yet collected */
    pid_t writer_tid;    /* the background thread's id, for its I/O priority */
    int writer_policy;   /* its scheduling policy as created (the caller's) */
    struct sched_param writer_param;
    int writer_ioprio;   /* its I/O priority as created */
    int low_policy;      /* SCHED_IDLE, or SCHED_BATCH where SCHED_IDLE is a one-way door */
    int waiting;         /* the caller waits for the job: run at its priority */
    int job_done, stop;
    cairn_status job_status;
    cairn_error job_err;
    uint8_t *staging;    /* reused between saves */
    size_t staging_cap;

    struct sigaction old_term, old_int;
    int signals_installed;
};

/* Writes the checkpoint e->seq for `parts` tagged with `record` (the
 * "checkpoint" metadata map) at e->path, atomically and never replacing a
 * file: if another writer took the name, takes the next free sequence
 * number (updating e and record). Used by both paths; reads only the
 * manager's constant fields, so the background thread may call it. */
cairn_status cairn__ckpt_write(const cairn_ckpt *m, ckpt_entry *e,
                               const cairn_model_parts *parts, cairn_value *record,
                               cairn_error *err);
/* Adds a committed checkpoint to the table and applies retention. */
cairn_status cairn__ckpt_committed(cairn_ckpt *m, ckpt_entry *e, cairn_error *err);

/* ckpt_lock.c: takes the series' write lock into m->lock_fd (left -1,
 * with CAIRN_OK, on a file system without locks); CAIRN_E_BUSY naming the
 * holder when another open file has it. */
cairn_status cairn__ckpt_lock(cairn_ckpt *m, cairn_error *err);
void cairn__ckpt_unlock(cairn_ckpt *m);

/* ckpt_async.c */
cairn_status cairn__ckpt_async_start(cairn_ckpt *m, cairn_error *err);
/* Copies parts to staging and hands the write to the background thread;
 * waits first for the previous save (whose result it returns, if failed). */
cairn_status cairn__ckpt_async_submit(cairn_ckpt *m, const cairn_model_parts *parts,
                                      const cairn_value *record, ckpt_entry *e,
                                      cairn_error *err);
/* Waits for the job in flight and records it (or returns its error). */
cairn_status cairn__ckpt_async_collect(cairn_ckpt *m, cairn_error *err);
void cairn__ckpt_async_stop(cairn_ckpt *m);
void cairn__ckpt_entry_free(ckpt_entry *e);

#endif
