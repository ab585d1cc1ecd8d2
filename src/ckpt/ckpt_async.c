/* ckpt_async.c -- asynchronous checkpoints: the caller's buffers are copied
 * into staging memory (reused between saves) and one background thread
 * writes them; at most one save is in flight, and its error surfaces at the
 * next call.
 *
 * The writer's priorities. On a machine with few cores the training thread
 * and the writer each hold a core, so any third runnable task (another
 * program, a kernel worker) must share a core with one of them. While the
 * caller computes, the writer therefore runs at SCHED_IDLE: it yields its
 * core to anything else, and the scheduler counts a core running only
 * SCHED_IDLE work as idle when it places a waking task, so other work lands
 * on the writer's core instead of the training thread's. Its I/O priority is
 * the lowest best-effort level. When the caller waits for the save (the next
 * save, wait, load, close), the writer gets the caller's priorities back, so
 * a wait is never starved. An unprivileged thread can leave SCHED_IDLE only
 * if RLIMIT_NICE allows its nice value; the manager tries that round trip
 * once on a throwaway thread and uses SCHED_BATCH (no wake-up preemption,
 * leaving it needs no privilege) where it fails. Memory bandwidth and the
 * page cache copy were measured not to slow the other core (bench_ckpt,
 * docs/CHECKPOINTS.md). */
#include "ckpt/ckpt_internal.h"
#include "common/opts.h"

#include <linux/ioprio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { VALUE_PARTS = 7 };

struct ckpt_job {
    cairn_model_parts parts; /* points at the staged copies below */
    cairn_params *sets[3];
    cairn_value *values[VALUE_PARTS];
    cairn_value *record;
    char *kind; /* the caller's type tag, copied: the thread outlives the call */
    ckpt_entry entry;
};

static void job_free(ckpt_job *j)
{
    if (!j)
        return;
    for (int i = 0; i < 3; i++)
        cairn_params_free(j->sets[i]);
    for (int i = 0; i < VALUE_PARTS; i++)
        cairn_value_free(j->values[i]);
    cairn_value_free(j->record);
    free(j->kind);
    cairn__ckpt_entry_free(&j->entry);
    free(j);
}

/* ---------------------------------------------------------- priorities */

static int io_priority(pid_t tid)
{
    return (int)syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, (int)tid);
}

static void set_io_priority(pid_t tid, int prio)
{
    if (prio >= 0)
        syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, (int)tid, prio);
}

/* Failures are ignored throughout: priorities are an optimisation, and a
 * seccomp filter or an old kernel may refuse them. */
static void lower(cairn_ckpt *m)
{
    struct sched_param zero = {0};
    pthread_setschedparam(m->thread, m->low_policy, &zero);
    set_io_priority(m->writer_tid, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, IOPRIO_NR_LEVELS - 1));
}

static void restore(cairn_ckpt *m)
{
    pthread_setschedparam(m->thread, m->writer_policy, &m->writer_param);
    set_io_priority(m->writer_tid, m->writer_ioprio);
}

/* Can this thread leave SCHED_IDLE again? Tried on a thread of its own,
 * which stays idle if not. */
static void *probe_idle(void *arg)
{
    int *ok = arg, policy;
    struct sched_param zero = {0}, param;
    pthread_getschedparam(pthread_self(), &policy, &param);
    *ok = pthread_setschedparam(pthread_self(), SCHED_IDLE, &zero) == 0 &&
          pthread_setschedparam(pthread_self(), policy, &param) == 0;
    return NULL;
}

static int low_policy(void)
{
    int ok = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, probe_idle, &ok) == 0)
        pthread_join(t, NULL);
    return ok ? SCHED_IDLE : SCHED_BATCH;
}

/* The caller is about to wait for the job in flight: from now on it runs at
 * the caller's priorities, until the next job. Called with m->lock held. */
static void hurry(cairn_ckpt *m)
{
    if (!m->waiting && !m->job_done) {
        m->waiting = 1;
        restore(m);
    }
}

/* -------------------------------------------------------------- writer */

static void *worker(void *arg)
{
    cairn_ckpt *m = arg;
    pthread_mutex_lock(&m->lock);
    m->writer_tid = gettid();
    m->writer_ioprio = io_priority(m->writer_tid);
    pthread_getschedparam(pthread_self(), &m->writer_policy, &m->writer_param);
    pthread_cond_broadcast(&m->cond);
    for (;;) {
        while (!m->stop && (!m->job || m->job_done))
            pthread_cond_wait(&m->cond, &m->lock);
        if (m->stop)
            break;
        ckpt_job *j = m->job;
        if (!m->waiting)
            lower(m);
        pthread_mutex_unlock(&m->lock);
        cairn_error e;
        cairn__clear(&e);
        cairn_status st = cairn__ckpt_write(m, &j->entry, &j->parts, j->record, &e);
        pthread_mutex_lock(&m->lock);
        m->job_status = st;
        m->job_err = e;
        m->job_done = 1;
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

cairn_status cairn__ckpt_async_start(cairn_ckpt *m, cairn_error *err)
{
    m->low_policy = low_policy();
    if (pthread_create(&m->thread, NULL, worker, m) != 0)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot start the background writer", m->dir);
    m->thread_started = 1;
    pthread_mutex_lock(&m->lock); /* until it knows its own priorities */
    while (!m->writer_tid)
        pthread_cond_wait(&m->cond, &m->lock);
    pthread_mutex_unlock(&m->lock);
    return CAIRN_OK;
}

void cairn__ckpt_async_stop(cairn_ckpt *m)
{
    if (!m->thread_started)
        return;
    pthread_mutex_lock(&m->lock);
    if (m->job)
        hurry(m);
    while (m->job && !m->job_done) /* never abandon a save half-way */
        pthread_cond_wait(&m->cond, &m->lock);
    m->stop = 1;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->thread_started = 0;
    job_free(m->job);
    m->job = NULL;
}

cairn_status cairn__ckpt_async_collect(cairn_ckpt *m, cairn_error *err)
{
    if (!m->job)
        return CAIRN_OK;
    pthread_mutex_lock(&m->lock);
    hurry(m);
    while (!m->job_done)
        pthread_cond_wait(&m->cond, &m->lock);
    pthread_mutex_unlock(&m->lock);
    ckpt_job *j = m->job;
    m->job = NULL;
    cairn_status st = m->job_status;
    if (st != CAIRN_OK) {
        if (err)
            *err = m->job_err;
    } else {
        st = cairn__ckpt_committed(m, &j->entry, err); /* takes the entry */
        memset(&j->entry, 0, sizeof j->entry);
    }
    job_free(j);
    return st;
}

static uint64_t set_bytes(const cairn_params *p)
{
    uint64_t total = 0;
    for (size_t i = 0; p && i < cairn_params_count(p); i++) {
        cairn_dtype dt;
        uint32_t rank;
        const uint64_t *dims;
        cairn_params_at(p, i, NULL, &dt, &rank, &dims, NULL, NULL);
        uint64_t b = cairn_dtype_size(dt);
        for (uint32_t d = 0; d < rank; d++)
            b *= dims[d];
        total += (b + 63) & ~UINT64_C(63);
    }
    return total;
}

/* Copies one parameter set into staging at *pos; the copy's buffers point
 * into staging, which stays untouched until this job is collected. */
static cairn_status stage_set(cairn_ckpt *m, const cairn_params *src, cairn_params **out,
                              size_t *pos, cairn_error *err)
{
    *out = NULL;
    if (!src)
        return CAIRN_OK;
    cairn_params *dst = cairn_params_new();
    if (!dst)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    *out = dst;
    for (size_t i = 0; i < cairn_params_count(src); i++) {
        const char *name;
        cairn_dtype dt;
        uint32_t rank;
        const uint64_t *dims;
        void *data;
        cairn_params_at(src, i, &name, &dt, &rank, &dims, &data, NULL);
        size_t b = cairn_dtype_size(dt);
        for (uint32_t d = 0; d < rank; d++)
            b *= dims[d];
        uint8_t *copy = m->staging + *pos;
        if (b)
            memcpy(copy, data, b);
        *pos += (b + 63) & ~(size_t)63;
        CAIRN_TRY(cairn_params_add(dst, name, dt, rank, dims, copy, err));
    }
    return CAIRN_OK;
}

static cairn_status stage_values(const cairn_model_parts *p, ckpt_job *j, cairn_error *err)
{
    const cairn_value *src[VALUE_PARTS] = {p->config,     p->optimizer, p->history,
                                           p->attributes, p->rng,       p->data_position,
                                           p->extra};
    for (int i = 0; i < VALUE_PARTS; i++)
        if (src[i] && !(j->values[i] = cairn_value_clone(src[i])))
            return cairn__fail(err, CAIRN_E_NOMEM, "out of memory copying metadata");
    j->parts.config = j->values[0];
    j->parts.optimizer = j->values[1];
    j->parts.history = j->values[2];
    j->parts.attributes = j->values[3];
    j->parts.rng = j->values[4];
    j->parts.data_position = j->values[5];
    j->parts.extra = j->values[6];
    return CAIRN_OK;
}

static cairn_status stage(cairn_ckpt *m, const cairn_model_parts *parts, ckpt_job *j,
                          cairn_error *err)
{
    cairn_model_parts have = {.struct_size = sizeof have};
    CAIRN_TRY(CAIRN__OPTS_COPY(&have, parts, cairn_model_parts, kind, err));
    const cairn_model_parts *p = &have;
    uint64_t need = set_bytes(p->params) + set_bytes(p->optimizer_tensors) +
                    set_bytes(p->attribute_tensors);
    if (need > m->staging_cap) {
        free(m->staging);
        m->staging_cap = 0;
        if (posix_memalign((void **)&m->staging, 64, need ? (size_t)need : 64) != 0) {
            m->staging = NULL;
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot allocate %llu bytes of staging "
                               "memory", m->dir, (unsigned long long)need);
        }
        m->staging_cap = (size_t)need;
    }
    size_t pos = 0;
    j->parts.struct_size = sizeof j->parts;
    if (p->kind && !(j->kind = strdup(p->kind)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    j->parts.kind = j->kind;
    j->parts.schema_version = p->schema_version;
    CAIRN_TRY(stage_set(m, p->params, &j->sets[0], &pos, err));
    CAIRN_TRY(stage_set(m, p->optimizer_tensors, &j->sets[1], &pos, err));
    CAIRN_TRY(stage_set(m, p->attribute_tensors, &j->sets[2], &pos, err));
    j->parts.params = j->sets[0];
    j->parts.optimizer_tensors = j->sets[1];
    j->parts.attribute_tensors = j->sets[2];
    return stage_values(p, j, err);
}

cairn_status cairn__ckpt_async_submit(cairn_ckpt *m, const cairn_model_parts *parts,
                                      const cairn_value *record, ckpt_entry *e, cairn_error *err)
{
    cairn_status st = cairn__ckpt_async_collect(m, err); /* at most one in flight */
    ckpt_job *j = st == CAIRN_OK ? calloc(1, sizeof *j) : NULL;
    if (st == CAIRN_OK && !j)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    if (st == CAIRN_OK)
        st = stage(m, parts, j, err);
    if (st == CAIRN_OK && !(j->record = cairn_value_clone(record)))
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    if (st != CAIRN_OK) {
        job_free(j);
        cairn__ckpt_entry_free(e);
        return st;
    }
    j->entry = *e;
    pthread_mutex_lock(&m->lock);
    m->job = j;
    m->job_done = 0;
    m->waiting = 0;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    return CAIRN_OK;
}
