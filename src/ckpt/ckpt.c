/* ckpt.c -- the checkpoint manager: one directory, one whole-model archive
 * per checkpoint, triggers, composable retention applied only after the new
 * checkpoint is durable, and resume from the newest checkpoint that verifies
 * (docs/CHECKPOINTS.md). The directory may be a key prefix in object
 * storage, "s3://bucket/run" (docs/STORAGE.md): listing, sizes and removal
 * then go through io/remote.h, and every checkpoint is created only if its
 * key is free. */
#include "archive/dist.h"
#include "ckpt/ckpt_internal.h"
#include "common/opts.h"
#include "io/remote.h"
#include "model/model_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The one piece of process-wide state in the library: a signal handler can
 * only talk to the program through a global. It is written only by the
 * handler that CAIRN_CKPT_SIGNALS installs at the caller's request. */
static volatile sig_atomic_t signal_seen;

static void on_signal(int sig)
{
    (void)sig;
    signal_seen = 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cairn__ckpt_entry_free(ckpt_entry *e)
{
    free(e->path);
    free(e->reasons);
    e->path = e->reasons = NULL;
}

static int better(const cairn_ckpt *m, double a, double b)
{
    return cairn__ckpt_better((m->flags & CAIRN_CKPT_MODE_MAX) != 0, a, b);
}

/* --------------------------------------------------------------- scanning */

/* "<prefix>ckpt-<digits>" -> seq, with *rest at what follows the digits;
 * 0 if the name does not start so. */
static uint64_t parse_seq(const cairn_ckpt *m, const char *name, const char **rest)
{
    size_t pl = strlen(m->prefix);
    if (strncmp(name, m->prefix, pl) != 0 || strncmp(name + pl, "ckpt-", 5) != 0)
        return 0;
    const char *p = name + pl + 5;
    uint64_t seq = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 19; p++, digits++)
        seq = seq * 10 + (uint64_t)(*p - '0');
    *rest = p;
    return digits ? seq : 0;
}

/* "<prefix>ckpt-<digits>.cairn" -> seq; 0 if the name does not match. */
static uint64_t parse_name(const cairn_ckpt *m, const char *name)
{
    const char *rest;
    uint64_t seq = parse_seq(m, name, &rest);
    return seq && strcmp(rest, ".cairn") == 0 ? seq : 0;
}

static int is_leftover(const cairn_ckpt *m, const char *name)
{
    size_t pl = strlen(m->prefix);
    return name[0] == '.' && strncmp(name + 1, m->prefix, pl) == 0 &&
           strncmp(name + 1 + pl, "ckpt-", 5) == 0 && strstr(name, ".cairn-tmp-") != NULL;
}

/* DIR/<prefix>ckpt-<seq>.cairn, or NULL when out of memory. */
static char *seq_path(const cairn_ckpt *m, uint64_t seq)
{
    char name[300];
    snprintf(name, sizeof name, "%sckpt-%08llu.cairn", m->prefix, (unsigned long long)seq);
    return cairn__path_join(m->dir, name);
}

/* The smallest sequence number above `seq` and above every checkpoint and
 * every save in progress (temporary file) of this prefix in the directory:
 * where a save goes when another writer took its name. */
typedef struct max_seq {
    const cairn_ckpt *m;
    uint64_t seq;
} max_seq;

static int remote_max_seq(void *ctx, const char *name, uint64_t size)
{
    max_seq *x = ctx;
    uint64_t s = strchr(name, '/') ? 0 : parse_name(x->m, name);
    if (s > x->seq)
        x->seq = s;
    return 0;
}

static uint64_t next_free_seq(const cairn_ckpt *m, uint64_t seq)
{
    if (cairn__remote_is_url(m->dir)) { /* a listing of the prefix (no temporaries there) */
        max_seq x = {m, seq};
        char *pfx = cairn__path_join(m->dir, "");
        if (pfx)
            (void)cairn__remote_list(pfx, remote_max_seq, &x, NULL);
        free(pfx);
        return x.seq + 1;
    }
    DIR *d = opendir(m->dir);
    struct dirent *de;
    const char *rest;
    while (d && (de = readdir(d))) {
        uint64_t s = parse_name(m, de->d_name);
        if (!s && is_leftover(m, de->d_name))
            s = parse_seq(m, de->d_name + 1, &rest);
        if (s > seq)
            seq = s;
    }
    if (d)
        closedir(d);
    return seq + 1;
}

/* Reads a checkpoint's own record. A file that does not open (truncated,
 * not committed, damaged index) or lacks the record is listed as invalid. */
static void read_entry(const cairn_ckpt *m, ckpt_entry *e)
{
    cairn_file *f;
    cairn_error err;
    struct stat st = {0};
    if (!cairn__remote_is_url(e->path) && stat(e->path, &st) == 0)
        e->bytes = (uint64_t)st.st_size;
    if (cairn_file_open(e->path, NULL, &f, &err) != CAIRN_OK)
        return;
    cairn_value *meta;
    if (cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK) {
        const cairn_value *rec = cairn_value_get(meta, "checkpoint");
        int found, has_seq;
        double seq = cairn__ckpt_number_at(rec, "seq", &has_seq);
        e->epoch = (uint64_t)cairn__ckpt_number_at(rec, "epoch", &found);
        e->step = (uint64_t)cairn__ckpt_number_at(rec, "step", &found);
        e->time = cairn__ckpt_number_at(rec, "time", &found);
        e->metric = cairn__ckpt_number_at(rec, "metric", &e->has_metric);
        const void *r;
        size_t n;
        if (cairn_value_get_data(cairn_value_get(rec, "reasons"), &r, &n) == CAIRN_OK)
            e->reasons = strndup(r, n);
        e->valid = rec && has_seq && (uint64_t)seq == e->seq;
        cairn_value_free(meta);
    }
    /* a distributed checkpoint: valid only when every rank file it names
     * checks out too; its bytes are the manifest's and the rank files' */
    cairn_file_info fi;
    if (e->valid && cairn__dist_check_parts(f, &err) != CAIRN_OK)
        e->valid = 0;
    if (cairn__dist_is(f) && cairn_file_get_info(f, &fi, &err) == CAIRN_OK)
        e->bytes = fi.file_size;
    cairn_file_close(f);
}

static int entry_cmp(const void *a, const void *b)
{
    const ckpt_entry *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static cairn_status push_entry(cairn_ckpt *m, const ckpt_entry *e, cairn_error *err)
{
    if (!CAIRN__GROW(m->entries, m->cap, m->count, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    m->entries[m->count++] = *e;
    return CAIRN_OK;
}

/* A read-only manager also lists distributed checkpoints, the directories
 * <prefix>ckpt-<seq>/ that libcairn_mpi's manager writes (docs/DISTRIBUTED.md):
 * `cairn ckpt` reads those without MPI. A writer never touches them. */
static uint64_t parse_dist_name(const cairn_ckpt *m, const char *name)
{
    const char *rest;
    uint64_t seq = parse_seq(m, name, &rest);
    if (!seq || !(m->flags & CAIRN_CKPT_READ_ONLY))
        return 0;
    if (cairn__remote_is_url(m->dir)) /* listed by its manifest: a committed one */
        return strcmp(rest, "/" CAIRN__DIST_MANIFEST) == 0 ? seq : 0;
    if (*rest)
        return 0;
    char *p = cairn__path_join(m->dir, name);
    struct stat st;
    int dir = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return dir ? seq : 0;
}

/* Adds the checkpoint `name` (relative to the directory) if it is one. */
static cairn_status add_listed(cairn_ckpt *m, const char *name, uint64_t bytes, cairn_error *err)
{
    uint64_t seq = parse_name(m, name);
    if (!seq)
        seq = parse_dist_name(m, name);
    if (!seq)
        return CAIRN_OK;
    size_t len = strcspn(name, "/"); /* a distributed checkpoint's manifest key */
    char *leaf = strndup(name, len);
    ckpt_entry e = {.seq = seq, .path = leaf ? cairn__path_join(m->dir, leaf) : NULL,
                    .bytes = bytes};
    free(leaf);
    if (!e.path)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    cairn_status st = push_entry(m, &e, err);
    if (st != CAIRN_OK)
        free(e.path);
    return st;
}

typedef struct remote_scan {
    cairn_ckpt *m;
    cairn_status st;
    cairn_error *err;
} remote_scan;

static int remote_listed(void *ctx, const char *name, uint64_t size)
{
    remote_scan *r = ctx;
    const char *slash = strchr(name, '/');
    /* a "subdirectory": not ours, unless it is a distributed checkpoint's
     * manifest (its rank objects are deeper still) */
    if (slash && strcmp(slash + 1, CAIRN__DIST_MANIFEST) != 0)
        return 0;
    r->st = add_listed(r->m, name, size, r->err);
    return r->st != CAIRN_OK;
}

/* How old an unfinished upload of one of our checkpoint keys must be before
 * opening the prefix aborts it as the leftover of a killed writer: a live
 * writer's upload is younger (docs/STORAGE.md). */
#define REMOTE_STALE_SECONDS 3600

/* Lists an object-storage prefix: one ListObjectsV2 (by pages) instead of
 * readdir; unfinished uploads of killed writers are aborted, as a local
 * directory's leftover temporaries are removed. */
static cairn_status scan_remote(cairn_ckpt *m, cairn_error *err)
{
    char *pfx = cairn__path_join(m->dir, "");
    char stale[300];
    if (!pfx)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    snprintf(stale, sizeof stale, "%sckpt-", m->prefix);
    remote_scan r = {m, CAIRN_OK, err};
    cairn_status st = cairn__remote_gc(pfx, stale, m->stale_seconds, NULL, err);
    if (st == CAIRN_E_UNSUPPORTED) { /* no ListMultipartUploads (s3rver): nothing to clean */
        cairn__clear(err);
        st = CAIRN_OK;
    }
    if (st == CAIRN_OK)
        st = cairn__remote_list(pfx, remote_listed, &r, err);
    free(pfx);
    return st != CAIRN_OK ? st : r.st;
}

/* Rebuilds the table from the directory alone. Temporary files of this
 * prefix are removed only under the series' lock: then no live writer can
 * own them (saves that died before their rename). */
static cairn_status scan(cairn_ckpt *m, cairn_error *err)
{
    if (cairn__remote_is_url(m->dir)) {
        CAIRN_TRY(scan_remote(m, err));
        goto listed;
    }
    DIR *d = opendir(m->dir);
    if (!d)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot list: %s", m->dir, strerror(errno));
    struct dirent *de;
    cairn_status st = CAIRN_OK;
    while (st == CAIRN_OK && (de = readdir(d))) {
        if (m->lock_fd >= 0 && is_leftover(m, de->d_name)) {
            char *p = cairn__path_join(m->dir, de->d_name);
            if (p)
                unlink(p);
            free(p);
            continue;
        }
        st = add_listed(m, de->d_name, 0, err);
    }
    closedir(d);
    CAIRN_TRY(st);
listed:
    if (m->count > 1)
        qsort(m->entries, m->count, sizeof *m->entries, entry_cmp);
    for (size_t i = 0; i < m->count; i++) {
        ckpt_entry *e = &m->entries[i];
        read_entry(m, e);
        if (e->seq >= m->next_seq)
            m->next_seq = e->seq + 1;
        if (e->valid)
            cairn__ckpt_trig_found(&m->trig, e->step, e->time, e->has_metric, e->metric);
    }
    return CAIRN_OK;
}

/* ------------------------------------------------------------ open, close */

static cairn_status copy_opts(cairn_ckpt *m, const cairn_ckpt_opts *o, cairn_error *err)
{
    m->dir = strdup(o->dirname);
    m->stale_seconds = REMOTE_STALE_SECONDS;
    /* "s3://bucket/run/" and "s3://bucket/run" name one prefix. */
    if (m->dir && cairn__remote_is_url(m->dir))
        for (size_t n = strlen(m->dir); n > 5 && m->dir[n - 1] == '/'; n--)
            m->dir[n - 1] = '\0';
    m->prefix = strdup(o->fn_prefix ? o->fn_prefix : "");
    m->monitor = o->monitor ? strdup(o->monitor) : NULL;
    if (!m->dir || !m->prefix || (o->monitor && !m->monitor))
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory");
    if (strchr(m->prefix, '/'))
        return cairn__fail(err, CAIRN_E_ARG, "%s: fn_prefix '%s' must not contain '/'", m->dir,
                           m->prefix);
    m->flags = o->flags;
    m->no_lock = o->test_no_lock;
    if ((m->flags & CAIRN_CKPT_READ_ONLY) && (m->flags & (CAIRN_CKPT_ASYNC | CAIRN_CKPT_SIGNALS)))
        return cairn__fail(err, CAIRN_E_ARG, "%s: a read-only manager does not save "
                           "(CAIRN_CKPT_ASYNC, CAIRN_CKPT_SIGNALS)", m->dir);
    m->trig.every_epochs = o->every_epochs;
    m->trig.every_steps = o->every_steps;
    m->trig.every_seconds = o->every_seconds;
    m->trig.monitor = m->monitor != NULL;
    m->trig.maximize = (m->flags & CAIRN_CKPT_MODE_MAX) != 0;
    m->keep_best = o->keep_best;
    m->keep_last = o->keep_last;
    m->keep_every = o->keep_every;
    m->next_seq = 1;
    if (m->keep_best && !m->monitor)
        return cairn__fail(err, CAIRN_E_ARG, "%s: keep_best needs a monitored metric", m->dir);
    return CAIRN_OK;
}

static cairn_status install_signals(cairn_ckpt *m, cairn_error *err)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, &m->old_term) != 0 || sigaction(SIGINT, &sa, &m->old_int) != 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot install signal handlers: %s", m->dir,
                           strerror(errno));
    m->signals_installed = 1;
    signal_seen = 0;
    return CAIRN_OK;
}

static void free_manager(cairn_ckpt *m)
{
    cairn__ckpt_async_stop(m);
    cairn__ckpt_unlock(m);
    if (m->signals_installed) {
        sigaction(SIGTERM, &m->old_term, NULL);
        sigaction(SIGINT, &m->old_int, NULL);
    }
    for (size_t i = 0; i < m->count; i++)
        cairn__ckpt_entry_free(&m->entries[i]);
    free(m->entries);
    free(m->staging);
    free(m->dir);
    free(m->prefix);
    free(m->monitor);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    free(m);
}

cairn_status cairn_ckpt_open(const cairn_ckpt_opts *opts, cairn_ckpt **out, cairn_error *err)
{
    if (out)
        *out = NULL;
    cairn_ckpt_opts have = {.struct_size = sizeof have};
    if (!opts || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_open: opts, dirname and out are needed");
    CAIRN_TRY(CAIRN__OPTS_COPY(&have, opts, cairn_ckpt_opts, dirname, err));
    opts = &have;
    if (!opts->dirname || !*opts->dirname)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_open: opts, dirname and out are needed");
    int read_only = (opts->flags & CAIRN_CKPT_READ_ONLY) != 0;
    /* A key prefix in object storage is no directory: nothing to create,
     * and no lock file (create-only uploads keep writers apart there). */
    int remote = cairn__remote_is_url(opts->dirname);
    if (!read_only && !remote && mkdir(opts->dirname, 0777) != 0 && errno != EEXIST)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot create directory: %s", opts->dirname,
                           strerror(errno));
    cairn_ckpt *m = calloc(1, sizeof *m);
    if (!m)
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory");
    m->lock_fd = -1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    cairn_status st = copy_opts(m, opts, err);
    if (st == CAIRN_OK && !read_only && !remote && !m->no_lock)
        st = cairn__ckpt_lock(m, err); /* before listing: the table then stays true */
    if (st == CAIRN_OK)
        st = scan(m, err);
    if (st == CAIRN_OK && (m->flags & CAIRN_CKPT_SIGNALS))
        st = install_signals(m, err);
    if (st == CAIRN_OK && (m->flags & CAIRN_CKPT_ASYNC))
        st = cairn__ckpt_async_start(m, err);
    if (st != CAIRN_OK) {
        free_manager(m);
        return st;
    }
    *out = m;
    return CAIRN_OK;
}

cairn_status cairn_ckpt_wait(cairn_ckpt *m, cairn_error *err)
{
    if (!m)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_ckpt");
    return cairn__ckpt_async_collect(m, err);
}

cairn_status cairn_ckpt_close(cairn_ckpt *m, cairn_error *err)
{
    if (!m)
        return CAIRN_OK;
    cairn_status st = cairn__ckpt_async_collect(m, err);
    free_manager(m);
    return st;
}

/* ---------------------------------------------------------------- saving */

static cairn_status write_once(const cairn_ckpt *m, const char *path,
                               const cairn_model_parts *parts, const cairn_value *record,
                               cairn_error *err)
{
    unsigned flags = CAIRN_WRITE_NO_REPLACE;
    if (m->flags & CAIRN_CKPT_NO_SYNC)
        flags |= CAIRN_WRITE_NO_SYNC;
    cairn_write_opts wo = {.struct_size = sizeof wo, .flags = flags,
                           .format = CAIRN_FORMAT_NATIVE};
    cairn_writer *w;
    CAIRN_TRY(cairn_writer_open_path(path, &wo, &w, err));
    cairn_status st = cairn__model_write_tagged(w, parts, "checkpoint", record, err);
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return cairn_writer_commit(w, err);
}

cairn_status cairn__ckpt_write(const cairn_ckpt *m, ckpt_entry *e,
                               const cairn_model_parts *parts, cairn_value *record,
                               cairn_error *err)
{
    /* Each lost race means the other writer committed one checkpoint while
     * this save was written; a writer slowed down (idle priority on a busy
     * machine) can lose several in a row, so the bound is generous. */
    enum { ATTEMPTS = 64 };
    cairn_status st = write_once(m, e->path, parts, record, err);
    /* Only another writer (no lock, or a file system ignoring it) can have
     * taken the name: the file is not ours to replace. */
    for (int a = 1; a < ATTEMPTS && st == CAIRN_E_EXISTS; a++) {
        uint64_t seq = next_free_seq(m, e->seq);
        char *path = seq_path(m, seq);
        if (!path)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
        st = cairn_value_set(record, "seq", cairn_value_int((int64_t)seq), err);
        if (st != CAIRN_OK) {
            free(path);
            return st;
        }
        free(e->path);
        e->path = path;
        e->seq = seq;
        st = write_once(m, e->path, parts, record, err);
    }
    if (st == CAIRN_E_EXISTS)
        return cairn__fail(err, st, "%s: %d sequence numbers in a row were taken by another "
                           "writer of %sckpt-*.cairn; nothing was replaced, this checkpoint was "
                           "not saved", m->dir, ATTEMPTS, m->prefix);
    return st;
}

/* Why this step saves, as "improved,every" (empty: it does not). */
static cairn_status reasons_for(cairn_ckpt *m, uint64_t epoch, uint64_t step,
                                const cairn_value *metrics, unsigned flags, double *metric,
                                int *has_metric, char *out, size_t size, cairn_error *err)
{
    out[0] = '\0';
    *has_metric = 0;
    if (m->monitor) {
        int found;
        *metric = cairn__ckpt_number_at(metrics, m->monitor, &found);
        if (!found)
            return cairn__fail(err, CAIRN_E_ARG, "%s: metric '%s' is missing from this step's "
                               "metrics", m->dir, m->monitor);
        *has_metric = 1;
    }
    cairn__ckpt_reasons(&m->trig, epoch, step, *has_metric, *metric, (flags & CAIRN_STEP_FORCE) != 0,
                        (m->flags & CAIRN_CKPT_SIGNALS) && signal_seen, now(), out, size);
    return CAIRN_OK;
}

static cairn_value *make_record(const cairn_ckpt *m, const ckpt_entry *e,
                                const cairn_value *metrics, cairn_error *err)
{
    return cairn__ckpt_record(e->seq, e->epoch, e->step, e->time, e->has_metric, e->metric,
                              m->monitor, (m->flags & CAIRN_CKPT_MODE_MAX) != 0, e->reasons,
                              metrics, err);
}

cairn_status cairn_ckpt_step(cairn_ckpt *m, uint64_t epoch, uint64_t step,
                             const cairn_value *metrics, const cairn_model_parts *parts,
                             unsigned flags, int *saved, cairn_error *err)
{
    if (saved)
        *saved = CAIRN_SAVED_NO;
    if (!m || !parts)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_step: NULL argument");
    if (m->flags & CAIRN_CKPT_READ_ONLY)
        return cairn__fail(err, CAIRN_E_STATE, "%s: the manager was opened read-only", m->dir);
    if (metrics && cairn_value_get_type(metrics) != CAIRN_VALUE_MAP)
        return cairn__fail(err, CAIRN_E_ARG, "%s: metrics must be a map", m->dir);
    /* an earlier background save's failure is reported before anything else */
    CAIRN_TRY(cairn__ckpt_async_collect(m, err));
    char reasons[128];
    double metric = 0;
    int has_metric;
    CAIRN_TRY(reasons_for(m, epoch, step, metrics, flags, &metric, &has_metric, reasons,
                          sizeof reasons, err));
    if (!reasons[0])
        return CAIRN_OK;
    ckpt_entry e = {.seq = m->next_seq, .epoch = epoch, .step = step, .time = now(),
                    .has_metric = has_metric, .metric = metric, .valid = 1, .mine = 1,
                    .path = seq_path(m, m->next_seq), .reasons = strdup(reasons)};
    cairn_value *record = e.path && e.reasons ? make_record(m, &e, metrics, err) : NULL;
    if (!record) {
        cairn__ckpt_entry_free(&e);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    }
    int by_signal = strstr(reasons, "signal") != NULL;
    cairn_status st;
    if (m->flags & CAIRN_CKPT_ASYNC) {
        st = cairn__ckpt_async_submit(m, parts, record, &e, err);
    } else {
        st = cairn__ckpt_write(m, &e, parts, record, err);
        if (st == CAIRN_OK)
            st = cairn__ckpt_committed(m, &e, err);
        else
            cairn__ckpt_entry_free(&e);
    }
    cairn_value_free(record);
    if (st == CAIRN_OK) {
        /* next_seq is raised by cairn__ckpt_committed (for an async save,
         * when it is collected: before the next save picks its number) */
        cairn__ckpt_trig_saved(&m->trig, step, e.time, has_metric, metric);
        if (by_signal)
            signal_seen = 0;
        if (saved)
            *saved = by_signal ? CAIRN_SAVED_SIGNAL : CAIRN_SAVED_YES;
    }
    return st;
}

/* -------------------------------------------------------------- retention */

static void entry_rec(const void *entries, size_t i, cairn__ckpt_rec *out)
{
    const ckpt_entry *e = (const ckpt_entry *)entries + i;
    *out = (cairn__ckpt_rec){.epoch = e->epoch, .valid = e->valid, .mine = e->mine,
                             .has_metric = e->has_metric, .metric = e->metric};
}

/* Marks in keep[] what the policy keeps (ckpt_policy.h, the same rules as
 * the distributed manager's). */
static cairn_status mark_kept(const cairn_ckpt *m, uint32_t best, uint32_t last, uint32_t every,
                              int earlier, unsigned char *keep, cairn_error *err)
{
    if (cairn__ckpt_mark_kept(m->entries, m->count, entry_rec, best, last, every, earlier,
                              (m->flags & CAIRN_CKPT_MODE_MAX) != 0, keep) != 0)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    return CAIRN_OK;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static cairn_status apply_retention(cairn_ckpt *m, uint32_t best, uint32_t last, uint32_t every,
                                    int earlier, int dry_run, size_t *removed, cairn_error *err)
{
    unsigned char *keep = calloc(m->count ? m->count : 1, 1);
    if (!keep)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    cairn_status st = mark_kept(m, best, last, every, earlier, keep, err);
    size_t n = 0, out = 0;
    /* Compacts the table in place; after a failed unlink every remaining
     * checkpoint is kept, so the table always matches the directory. */
    for (size_t i = 0; i < m->count; i++) {
        int drop = !keep[i] && st == CAIRN_OK;
        if (drop)
            n++;
        if (drop && !dry_run && cairn__remote_is_url(m->entries[i].path)) {
            if ((st = cairn__remote_remove(m->entries[i].path, err)) != CAIRN_OK)
                drop = 0;
        } else if (drop && !dry_run && unlink(m->entries[i].path) != 0 && errno != ENOENT) {
            st = cairn__fail(err, CAIRN_E_IO, "%s: cannot remove old checkpoint: %s",
                             m->entries[i].path, strerror(errno));
            drop = 0;
        }
        if (drop && !dry_run)
            cairn__ckpt_entry_free(&m->entries[i]);
        else
            m->entries[out++] = m->entries[i];
    }
    m->count = out;
    if (n && !dry_run && !(m->flags & CAIRN_CKPT_NO_SYNC) && !cairn__remote_is_url(m->dir))
        sync_dir(m->dir);
    free(keep);
    if (removed)
        *removed = n;
    return st;
}

cairn_status cairn__ckpt_committed(cairn_ckpt *m, ckpt_entry *e, cairn_error *err)
{
    if (e->seq >= m->next_seq)
        m->next_seq = e->seq + 1;
    struct stat st;
    if (cairn__remote_is_url(e->path))
        (void)cairn__remote_size(e->path, &e->bytes, NULL); /* for listings only */
    else if (stat(e->path, &st) == 0)
        e->bytes = (uint64_t)st.st_size;
    cairn_status s = push_entry(m, e, err);
    if (s != CAIRN_OK) {
        cairn__ckpt_entry_free(e);
        return s;
    }
    if (!m->keep_best && !m->keep_last && !m->keep_every)
        return CAIRN_OK;
    return apply_retention(m, m->keep_best, m->keep_last, m->keep_every,
                           (m->flags & CAIRN_CKPT_PRUNE_EARLIER) != 0, 0, NULL, err);
}

cairn_status cairn_ckpt_prune(cairn_ckpt *m, uint32_t keep_best, uint32_t keep_last,
                              uint32_t keep_every, int dry_run, size_t *removed, cairn_error *err)
{
    if (removed)
        *removed = 0;
    if (!m)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_ckpt");
    if ((m->flags & CAIRN_CKPT_READ_ONLY) && !dry_run)
        return cairn__fail(err, CAIRN_E_STATE, "%s: the manager was opened read-only", m->dir);
    if (keep_best && !m->monitor)
        return cairn__fail(err, CAIRN_E_ARG, "%s: keep_best needs a monitored metric", m->dir);
    CAIRN_TRY(cairn__ckpt_async_collect(m, err));
    if (!keep_best && !keep_last && !keep_every)
        return CAIRN_OK;
    /* an explicit policy: it applies to every checkpoint of the series */
    return apply_retention(m, keep_best, keep_last, keep_every, 1, dry_run, removed, err);
}

/* --------------------------------------------------------------- queries */

size_t cairn_ckpt_count(const cairn_ckpt *m) { return m ? m->count : 0; }

cairn_status cairn_ckpt_info_at(const cairn_ckpt *m, size_t i, cairn_ckpt_info *out,
                                cairn_error *err)
{
    if (!m || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_info_at: NULL argument");
    if (i >= m->count)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: checkpoint index %zu out of range (%zu)",
                           m->dir, i, m->count);
    const ckpt_entry *e = &m->entries[i];
    *out = (cairn_ckpt_info){e->seq, e->epoch, e->step, e->time, e->has_metric, e->metric,
                             e->bytes, e->valid, e->path, e->reasons ? e->reasons : ""};
    return CAIRN_OK;
}

cairn_status cairn_ckpt_latest(const cairn_ckpt *m, size_t *index, cairn_error *err)
{
    if (!m || !index)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_latest: NULL argument");
    for (size_t i = m->count; i-- > 0;)
        if (m->entries[i].valid) {
            *index = i;
            return CAIRN_OK;
        }
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no valid %sckpt-*.cairn checkpoint", m->dir,
                       m->prefix);
}

cairn_status cairn_ckpt_best(const cairn_ckpt *m, size_t *index, cairn_error *err)
{
    if (!m || !index)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_best: NULL argument");
    if (!m->monitor)
        return cairn_ckpt_latest(m, index, err);
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < m->count; i++) {
        const ckpt_entry *e = &m->entries[i];
        if (e->valid && e->has_metric && !isnan(e->metric) &&
            (found == SIZE_MAX || !better(m, m->entries[found].metric, e->metric)))
            found = i; /* ties go to the newer checkpoint */
    }
    if (found == SIZE_MAX)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no valid checkpoint with metric '%s'",
                           m->dir, m->monitor);
    *index = found;
    return CAIRN_OK;
}

/* ---------------------------------------------------------- load, resume */

static cairn_status load_verified(cairn_ckpt *m, size_t index, const cairn_model_parts *parts,
                                  const cairn_load_opts *opts, cairn_value **meta,
                                  cairn_error *err)
{
    cairn_file *f;
    cairn_open_opts oo = {.struct_size = sizeof oo, .flags = CAIRN_OPEN_VERIFY, .format = CAIRN_FORMAT_NATIVE};
    CAIRN_TRY(cairn_file_open(m->entries[index].path, &oo, &f, err));
    cairn_status st = cairn_model_load(f, parts, opts, meta, err);
    cairn_file_close(f);
    return st;
}

cairn_status cairn_ckpt_load(cairn_ckpt *m, size_t index, const cairn_model_parts *parts,
                             const cairn_load_opts *opts, cairn_value **meta, cairn_error *err)
{
    if (meta)
        *meta = NULL;
    if (!m || !parts)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_load: NULL argument");
    CAIRN_TRY(cairn__ckpt_async_collect(m, err));
    if (index >= m->count)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: checkpoint index %zu out of range (%zu)",
                           m->dir, index, m->count);
    return load_verified(m, index, parts, opts, meta, err);
}

cairn_status cairn_ckpt_resume(cairn_ckpt *m, const cairn_model_parts *parts,
                               const cairn_load_opts *opts, cairn_value **meta,
                               cairn_ckpt_resume_info *info, cairn_error *err)
{
    cairn_ckpt_resume_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (meta)
        *meta = NULL;
    if (!m || !parts)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_ckpt_resume: NULL argument");
    CAIRN_TRY(cairn__ckpt_async_collect(m, err));
    size_t used = 0;
    for (size_t i = m->count; i-- > 0;) {
        ckpt_entry *e = &m->entries[i];
        cairn_error why;
        cairn__clear(&why);
        cairn_status st = e->valid ? load_verified(m, i, parts, opts, meta, &why)
                                   : cairn__fail(&why, CAIRN_E_CORRUPT, "%s: not a complete "
                                                 "checkpoint", e->path);
        if (st == CAIRN_OK) {
            info->index = i;
            info->next_epoch = e->epoch + 1;
            info->step = e->step;
            return CAIRN_OK;
        }
        /* A checkpoint that does not match the model is the caller's
         * problem, not damage: do not silently fall back past it. */
        if (st == CAIRN_E_MISMATCH || st == CAIRN_E_ARG || st == CAIRN_E_NOMEM)
            return cairn__fail(err, st, "%s", why.message);
        e->valid = 0;
        info->skipped++;
        used += (size_t)snprintf(info->why + used, used < sizeof info->why ? sizeof info->why - used : 0,
                                 "%sskipped %s", used ? "; " : "", why.message);
        if (used >= sizeof info->why)
            used = sizeof info->why;
    }
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no valid %sckpt-*.cairn checkpoint%s%s",
                       m->dir, m->prefix, info->skipped ? " (" : "",
                       info->skipped ? "all failed to verify)" : "");
}
