/*
 * pool.h -- a fork-join pool of pthreads for one call: workers are started
 * for one batch of tasks, take task numbers until none are left, and are
 * joined before the call that started them returns. Nothing outlives the
 * call and nothing is global, so concurrent calls (many threads reading one
 * cairn_file) never share state.
 */
#ifndef CAIRN_POOL_H
#define CAIRN_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define CAIRN__POOL_MAX 64 /* more workers gain nothing for chunk coding and cost stacks */

/* One task: `worker` is in [0, workers) and stays the same for every task
 * one thread runs, so per-worker scratch buffers need no locking. */
typedef void (*cairn__task_fn)(void *ctx, unsigned worker, size_t task);

typedef struct cairn__pool_worker {
    struct cairn__pool_job *job;
    unsigned id;
} cairn__pool_worker;

/* A batch of tasks in flight (caller-allocated; no field is for callers). */
typedef struct cairn__pool_job {
    cairn__task_fn fn;
    void *ctx;
    size_t tasks;
    atomic_size_t next;
    unsigned started;
    pthread_t threads[CAIRN__POOL_MAX];
    cairn__pool_worker args[CAIRN__POOL_MAX];
} cairn__pool_job;

/* The number of workers for `requested` (0 = one per online CPU) and
 * `tasks` tasks: never more than the tasks or CAIRN__POOL_MAX, at least 1. */
unsigned cairn__pool_workers(unsigned requested, size_t tasks);

/* Runs fn(ctx, worker, task) for every task in [0, tasks) on `workers`
 * threads, the calling thread being worker 0, and returns when all are
 * done. A thread that cannot be started leaves its share to the others (at
 * least the caller), so this cannot fail. */
void cairn__pool_run(unsigned workers, size_t tasks, cairn__task_fn fn, void *ctx);

/* The same in two halves, for overlapping the batch with other work on the
 * calling thread: start runs the tasks on `workers` new threads (ids 0 ..
 * workers-1) and returns at once; join waits for them and runs on the
 * caller, as worker 0, whatever no thread could take. Every start must be
 * followed by a join before the job's memory or ctx goes away. */
void cairn__pool_start(cairn__pool_job *job, unsigned workers, size_t tasks, cairn__task_fn fn,
                       void *ctx);
void cairn__pool_join(cairn__pool_job *job);

#endif
