/*
 * ckpt_internal.h -- the checkpoint manager's state, shared by ckpt.c (the
 * directory, triggers, retention, resume) and ckpt_async.c (staging copies
 * and the background writer).
 */
#ifndef CAIRN_CKPT_INTERNAL_H
#define CAIRN_CKPT_INTERNAL_H

#include "common/internal.h"

#include <pthread.h>
#include <signal.h>

typedef struct ckpt_entry {
    uint64_t seq, epoch, step;
    double time;
    int has_metric;
    double metric;
    uint64_t bytes;
    int valid;
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
    uint32_t every_epochs, keep_best, keep_last, keep_every;
    uint64_t every_steps;
    double every_seconds;

    ckpt_entry *entries; /* sorted by seq */
    size_t count, cap;
    uint64_t next_seq;
    int has_best;
    double best_metric;  /* best metric among valid checkpoints */
    double last_time;    /* of the newest checkpoint */
    uint64_t last_step;

    /* async writer (ckpt_async.c) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ckpt_job *job;       /* in flight or finished but not yet collected */
    int job_done, stop;
    cairn_status job_status;
    cairn_error job_err;
    uint8_t *staging;    /* reused between saves */
    size_t staging_cap;

    struct sigaction old_term, old_int;
    int signals_installed;
};

/* Writes a checkpoint file for `parts` tagged with `record` (the
 * "checkpoint" metadata map) at `path`, atomically. Used by both paths. */
cairn_status cairn__ckpt_write(const cairn_ckpt *m, const char *path,
                               const cairn_model_parts *parts, const cairn_value *record,
                               cairn_error *err);
/* Adds a committed checkpoint to the table and applies retention. */
cairn_status cairn__ckpt_committed(cairn_ckpt *m, ckpt_entry *e, cairn_error *err);

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
