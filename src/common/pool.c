/* pool.c -- the fork-join pool of pool.h. Tasks are claimed with an atomic
 * counter in increasing order, so a slow chunk on one core does not hold the
 * others idle and the first tasks finish first. */
#include "common/pool.h"

#include <unistd.h>

static void drain(cairn__pool_job *job, unsigned id)
{
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (t >= job->tasks)
            return;
        job->fn(job->ctx, id, t);
    }
}

static void *worker_main(void *arg)
{
    cairn__pool_worker *w = arg;
    drain(w->job, w->id);
    return NULL;
}

unsigned cairn__pool_workers(unsigned requested, size_t tasks)
{
    unsigned n = requested;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)(cpus < CAIRN__POOL_MAX ? cpus : CAIRN__POOL_MAX) : 1;
    }
    if (n > CAIRN__POOL_MAX)
        n = CAIRN__POOL_MAX;
    if (n > tasks)
        n = (unsigned)tasks;
    return n ? n : 1;
}

/* Starts `count` threads with ids first .. first+count-1. */
static void spawn(cairn__pool_job *job, unsigned first, unsigned count)
{
    for (unsigned i = 0; i < count && job->started < CAIRN__POOL_MAX; i++) {
        cairn__pool_worker *w = &job->args[job->started];
        w->job = job;
        w->id = first + i;
        /* A thread that cannot start leaves its tasks to the others. */
        if (pthread_create(&job->threads[job->started], NULL, worker_main, w) != 0)
            return;
        job->started++;
    }
}

static void job_init(cairn__pool_job *job, size_t tasks, cairn__task_fn fn, void *ctx)
{
    job->fn = fn;
    job->ctx = ctx;
    job->tasks = tasks;
    job->started = 0;
    atomic_init(&job->next, 0);
}

void cairn__pool_start(cairn__pool_job *job, unsigned workers, size_t tasks, cairn__task_fn fn,
                       void *ctx)
{
    job_init(job, tasks, fn, ctx);
    if (tasks > 0)
        spawn(job, 0, workers ? workers : 1);
}

void cairn__pool_join(cairn__pool_job *job)
{
    for (unsigned i = 0; i < job->started; i++)
        pthread_join(job->threads[i], NULL);
    job->started = 0;
    drain(job, 0); /* left over only if threads could not be started */
}

void cairn__pool_run(unsigned workers, size_t tasks, cairn__task_fn fn, void *ctx)
{
    cairn__pool_job job;
    job_init(&job, tasks, fn, ctx);
    if (workers > 1 && tasks > 1)
        spawn(&job, 1, workers - 1);
    drain(&job, 0);
    for (unsigned i = 0; i < job.started; i++)
        pthread_join(job.threads[i], NULL);
}
