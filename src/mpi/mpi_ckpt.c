/* mpi_ckpt.c -- a checkpoint manager over distributed checkpoints
 * (docs/DISTRIBUTED.md "The checkpoint manager"): ROOT/<prefix>ckpt-<seq>/
 * directories, rank 0 deciding and broadcasting, retention after each
 * commit, resume from the newest checkpoint that verifies, and async saves
 * whose collective commit runs at the next call. */
#include "mpi_internal.h"
#include "../ckpt/ckpt_policy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_LEN 4096
#define LOCK_NAME ".cairn-lock"

/* Rank 0's table, broadcast as bytes (no pointers). */
typedef struct entry {
    uint64_t seq, epoch, step;
    double time;
    int has_metric;
    double metric;
    int valid;
    int ours; /* written by this manager in this run */
    char reasons[96];
} entry;

/* What a signal handler can tell the program goes through a global (the
 * single-process manager has its own, src/ckpt/ckpt.c): the number of
 * SIGTERM, SIGINT or SIGUSR1 received since the handlers were installed.
 * Each manager remembers how many it acted on. */
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    (void)sig;
    signals_seen++;
}

static const int caught[] = {SIGTERM, SIGINT, SIGUSR1};
#define NCAUGHT (sizeof caught / sizeof caught[0])

struct cairn_mpi_ckpt {
    MPI_Comm comm;
    int me, size;
    char *dir, *prefix;
    char *monitor;
    unsigned flags;
    uint32_t keep_best, keep_last, keep_every;
    cairn__ckpt_trig trig; /* the same triggers as the single-process manager's */
    int signals_installed;
    sig_atomic_t signals_handled;
    struct sigaction old[NCAUGHT];
    cairn_write_opts wopts;
    int has_wopts;
    entry *e;
    size_t n, cap;
    uint64_t next_seq;
    int lock_fd; /* rank 0 */
    int remote;  /* dir is an object-store key prefix (mpi_s3_list.c) */
    uint64_t *loose; /* rank 0, remote: uncommitted checkpoints seen (no manifest) */
    size_t nloose, loose_cap;
    char path[PATH_LEN];
    /* a save in flight (async) */
    cairn_mpi_save *pending;
    entry pending_entry;
    pthread_t thread;
    int thread_running;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ckpt_path(const cairn_mpi_ckpt *m, uint64_t seq, char *out, size_t size)
{
    snprintf(out, size, "%s/%sckpt-%08llu", m->dir, m->prefix, (unsigned long long)seq);
}

/* -------------------------------------------------------------- listing */

/* seq when `name` is <prefix>ckpt-<digits>, else 0. */
static uint64_t name_seq(const cairn_mpi_ckpt *m, const char *name)
{
    size_t pl = strlen(m->prefix);
    if (strncmp(name, m->prefix, pl) || strncmp(name + pl, "ckpt-", 5))
        return 0;
    const char *d = name + pl + 5;
    uint64_t seq = 0;
    if (!*d || strlen(d) > 18)
        return 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return 0;
        seq = seq * 10 + (uint64_t)(*d - '0');
    }
    return seq;
}

/* The manifest's dist.files rows (*files: caller frees, 2 words a rank
 * file) and the rank files' paths' middle part ("" or "<rank_dir>/"), read
 * from `path`/manifest.cairn. */
static cairn_status manifest_files(const char *path, uint64_t **files, uint64_t *n,
                                   char rank_dir[18], cairn_error *err)
{
    char p[PATH_LEN + 64];
    cairn_file *mf = NULL;
    cairn_value *tree = NULL;
    cairn_tensor_info info;
    uint64_t index;
    *files = NULL;
    *n = 0;
    rank_dir[0] = '\0';
    snprintf(p, sizeof p, "%s/manifest.cairn", path);
    cairn_status st = cairn_file_open(p, NULL, &mf, err);
    if (st == CAIRN_OK)
        st = cairn_tensor_find(mf, "dist.files", &index, &info, err);
    if (st == CAIRN_OK && (info.dtype != CAIRN_U64 || info.rank != 2 || info.dims[1] != 2))
        st = cairn__mpi_fail(err, CAIRN_E_CORRUPT, "%s: dist.files is not U64 [N, 2]", p);
    if (st == CAIRN_OK && !(*files = malloc((size_t)info.raw_size + 1)))
        st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", p);
    if (st == CAIRN_OK)
        st = cairn_tensor_read(mf, index, CAIRN_U64, *files, (size_t)info.raw_size,
                               CAIRN_READ_VERIFY, err);
    if (st == CAIRN_OK)
        st = cairn_file_read_metadata(mf, &tree, err);
    const void *dir;
    size_t len;
    /* its form (16 hex digits) was checked by the directory's open */
    if (st == CAIRN_OK &&
        cairn_value_get_data(cairn_value_get(tree, "rank_dir"), &dir, &len) == CAIRN_OK &&
        len == 16)
        snprintf(rank_dir, 18, "%.16s/", (const char *)dir);
    if (st == CAIRN_OK)
        *n = info.dims[0];
    cairn_value_free(tree);
    cairn_file_close(mf);
    if (st != CAIRN_OK) {
        free(*files);
        *files = NULL;
    }
    return st;
}

static void rank_path(char *out, size_t size, const char *path, const char *rank_dir,
                      uint64_t i)
{
    snprintf(out, size, "%s/%srank-%06llu.cairn", path, rank_dir, (unsigned long long)i);
}

/* Valid: the directory opens as a distributed checkpoint (its manifest
 * parses and checks) and every rank file has the size and index hash the
 * manifest names (read from its trailer: on an object store, the one GET
 * of its open). Fills epoch and step from the "checkpoint" record. */
static int check_ckpt(const char *path, entry *e)
{
    cairn_file *f = NULL;
    char p[PATH_LEN + 64], rdir[18];
    int ok = cairn_file_open(path, NULL, &f, NULL) == CAIRN_OK;
    cairn_value *meta = NULL;
    if (ok && cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK) {
        const cairn_value *rec = cairn_value_get(meta, "checkpoint");
        int64_t v;
        int found;
        const void *why;
        size_t wlen;
        if (rec && cairn_value_get_int(cairn_value_get(rec, "epoch"), &v) == CAIRN_OK)
            e->epoch = (uint64_t)v;
        if (rec && cairn_value_get_int(cairn_value_get(rec, "step"), &v) == CAIRN_OK)
            e->step = (uint64_t)v;
        if (rec && cairn_value_get_float(cairn_value_get(rec, "time"), &e->time) != CAIRN_OK)
            e->time = 0;
        e->metric = rec ? cairn__ckpt_number_at(rec, "metric", &found) : 0;
        e->has_metric = rec && found;
        if (rec && cairn_value_get_type(cairn_value_get(rec, "reasons")) == CAIRN_VALUE_STRING &&
            cairn_value_get_data(cairn_value_get(rec, "reasons"), &why, &wlen) == CAIRN_OK)
            snprintf(e->reasons, sizeof e->reasons, "%.*s", (int)wlen, (const char *)why);
    }
    cairn_value_free(meta);
    cairn_file_close(f);
    uint64_t *files = NULL, n = 0;
    ok = ok && manifest_files(path, &files, &n, rdir, NULL) == CAIRN_OK;
    for (uint64_t i = 0; ok && i < n; i++) {
        cairn_file *rf = NULL;
        cairn_file_id id;
        rank_path(p, sizeof p, path, rdir, i);
        ok = cairn_file_open(p, NULL, &rf, NULL) == CAIRN_OK &&
             cairn_file_get_id(rf, &id, NULL) == CAIRN_OK && id.size == files[2 * i] &&
             id.index_hash == files[2 * i + 1];
        cairn_file_close(rf);
    }
    free(files);
    return ok;
}

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static entry *push_entry(cairn_mpi_ckpt *m, uint64_t seq)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 16;
        entry *ne = realloc(m->e, nc * sizeof *ne);
        if (!ne)
            return NULL;
        m->e = ne;
        m->cap = nc;
    }
    entry *e = &m->e[m->n++];
    memset(e, 0, sizeof *e);
    e->seq = seq;
    return e;
}

/* A checkpoint prefix found under an object-store ROOT (ctx: the manager):
 * committed ones are listed (and checked), uncommitted ones only
 * remembered, for cleanup and so that their number is never used again.
 * Out of memory for the table stops the listing with m->n past m->cap. */
static int remote_found(void *ctx, const char *leaf, int committed)
{
    cairn_mpi_ckpt *m = ctx;
    uint64_t seq = name_seq(m, leaf);
    if (!seq)
        return 0;
    if (seq >= m->next_seq)
        m->next_seq = seq + 1;
    if (!committed) {
        if (m->nloose == m->loose_cap) {
            size_t nc = m->loose_cap ? 2 * m->loose_cap : 16;
            uint64_t *nl = realloc(m->loose, nc * sizeof *nl);
            if (!nl)
                return 0; /* out of memory: not cleaned up this time */
            m->loose = nl;
            m->loose_cap = nc;
        }
        m->loose[m->nloose++] = seq;
        return 0;
    }
    entry *e = push_entry(m, seq);
    if (!e) {
        m->n = m->cap + 1;
        return 1;
    }
    char p[PATH_LEN];
    ckpt_path(m, seq, p, sizeof p);
    e->valid = check_ckpt(p, e);
    return 0;
}

/* Rank 0, object store: removes the uncommitted checkpoints older than the
 * newest committed one (saves that died: a live writer's is newer). */
static void drop_loose(cairn_mpi_ckpt *m)
{
    if (!m->remote || (m->flags & CAIRN_CKPT_READ_ONLY) || !m->n)
        return;
    uint64_t newest = m->e[m->n - 1].seq;
    size_t w = 0;
    for (size_t i = 0; i < m->nloose; i++) {
        if (m->loose[i] < newest) {
            char p[PATH_LEN];
            ckpt_path(m, m->loose[i], p, sizeof p);
            cairn__mpi_remove_dir(p);
        } else {
            m->loose[w++] = m->loose[i];
        }
    }
    m->nloose = w;
}

/* Rank 0, object store: unfinished multipart uploads of rank objects of
 * killed saves (older than an hour by the server's clock, so never a live
 * save's), as the single-process manager does (docs/STORAGE.md). */
#define STALE_UPLOAD_SECONDS 3600

static cairn_status scan_remote(cairn_mpi_ckpt *m, cairn_error *err)
{
    if (!(m->flags & CAIRN_CKPT_READ_ONLY)) {
        char pfx[PATH_LEN + 2], name[220];
        snprintf(pfx, sizeof pfx, "%s/", m->dir);
        snprintf(name, sizeof name, "%sckpt-", m->prefix);
        cairn_status st = cairn_store_abort_stale(pfx, name, STALE_UPLOAD_SECONDS, NULL, err);
        if (st != CAIRN_OK && st != CAIRN_E_UNSUPPORTED) /* s3rver has no such listing */
            return st;
    }
    m->n = 0;
    MPI_TRY(cairn__mpi_remote_scan(m->dir, remote_found, m, err));
    if (m->n > m->cap) {
        m->n = m->cap;
        return cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    }
    return CAIRN_OK;
}

/* Rank 0: lists ROOT, removes staging directories of this prefix. */
static cairn_status scan_dir(cairn_mpi_ckpt *m, cairn_error *err)
{
    DIR *d = opendir(m->dir);
    if (!d)
        return cairn__mpi_fail(err, CAIRN_E_IO, "%s: cannot list: %s", m->dir, strerror(errno));
    struct dirent *de;
    char p[PATH_LEN];
    size_t pl = strlen(m->prefix);
    m->n = 0;
    cairn_status st = CAIRN_OK;
    while (st == CAIRN_OK && (de = readdir(d))) {
        snprintf(p, sizeof p, "%s/%s", m->dir, de->d_name);
        if (de->d_name[0] == '.' && !strncmp(de->d_name + 1, m->prefix, pl) &&
            !strncmp(de->d_name + 1 + pl, "ckpt-", 5) && strstr(de->d_name, ".cairn-tmp-")) {
            if (!(m->flags & CAIRN_CKPT_READ_ONLY))
                cairn__mpi_remove_dir(p); /* a save that died: we hold the lock */
            continue;
        }
        uint64_t seq = name_seq(m, de->d_name);
        struct stat sb;
        if (!seq || stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        entry *e = push_entry(m, seq);
        if (!e) {
            st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
            break;
        }
        e->valid = check_ckpt(p, e);
    }
    closedir(d);
    return st;
}

/* Rank 0: the table of checkpoints, from the directory or prefix alone. */
static cairn_status scan(cairn_mpi_ckpt *m, cairn_error *err)
{
    cairn_status st = m->remote ? scan_remote(m, err) : scan_dir(m, err);
    if (m->n > 1)
        qsort(m->e, m->n, sizeof *m->e, entry_cmp);
    /* the triggers count from the directory, as the single-process manager's */
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].valid)
            cairn__ckpt_trig_found(&m->trig, m->e[i].step, m->e[i].time, m->e[i].has_metric,
                                   m->e[i].metric);
    drop_loose(m);
    return st;
}

/* Collective: rank 0's table becomes every rank's. */
static cairn_status share_table(cairn_mpi_ckpt *m, cairn_error *err)
{
    unsigned long long n = m->n;
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, m->comm);
    cairn_status st = CAIRN_OK;
    if (m->me != 0 && n > m->cap) {
        entry *ne = realloc(m->e, (size_t)n * sizeof *ne);
        if (ne) {
            m->e = ne;
            m->cap = (size_t)n;
        } else {
            st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "out of memory for %llu checkpoints", n);
        }
    }
    MPI_TRY(cairn__mpi_agree(m->comm, st, err)); /* every rank can receive, or none does */
    m->n = (size_t)n;
    if (n)
        MPI_Bcast(m->e, (int)(n * sizeof *m->e), MPI_BYTE, 0, m->comm);
    uint64_t next = m->n ? m->e[m->n - 1].seq + 1 : 1;
    if (next > m->next_seq) /* never back to a number a failed save tried */
        m->next_seq = next;
    return CAIRN_OK;
}

/* ----------------------------------------------------------------- lock */

static cairn_status take_lock(cairn_mpi_ckpt *m, cairn_error *err)
{
    char p[PATH_LEN];
    snprintf(p, sizeof p, "%s/%s", m->dir, LOCK_NAME);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return cairn__mpi_fail(err, CAIRN_E_IO, "%s: cannot open: %s", p, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        return cairn__mpi_fail(err, CAIRN_E_STATE, "%s: another checkpoint writer holds this "
                               "directory (pid %s)", m->dir, pid[0] ? pid : "unknown");
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* the lock holds; only the pid note is missing */
    }
    m->lock_fd = fd;
    return CAIRN_OK;
}

/* ---------------------------------------------------------------- open */

static cairn_status install_signals(cairn_mpi_ckpt *m, cairn_error *err)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NCAUGHT; i++)
        if (sigaction(caught[i], &sa, &m->old[i]) != 0) {
            while (i-- > 0)
                sigaction(caught[i], &m->old[i], NULL);
            return cairn__mpi_fail(err, CAIRN_E_IO, "%s: cannot install signal handlers: %s",
                                   m->dir, strerror(errno));
        }
    m->signals_installed = 1;
    m->signals_handled = signals_seen;
    return CAIRN_OK;
}

static void free_manager(cairn_mpi_ckpt *m)
{
    if (!m)
        return;
    if (m->signals_installed)
        for (size_t i = 0; i < NCAUGHT; i++)
            sigaction(caught[i], &m->old[i], NULL);
    if (m->lock_fd >= 0)
        close(m->lock_fd); /* releases the lock; the file stays (it is never deleted) */
    free(m->e);
    free(m->loose);
    free(m->dir);
    free(m->prefix);
    free(m->monitor);
    free(m);
}

cairn_status cairn_mpi_ckpt_open(MPI_Comm comm, const cairn_mpi_ckpt_opts *opts,
                                 cairn_mpi_ckpt **out, cairn_error *err)
{
    if (out)
        *out = NULL;
    cairn_mpi_ckpt_opts o = {0};
    cairn_status st = CAIRN_OK;
    if (!opts || !out || !opts->dirname || strlen(opts->dirname) > PATH_LEN - 300)
        st = cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_ckpt_open: options with a dirname "
                             "and out are needed");
    else
        memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    cairn_mpi_ckpt *m = st == CAIRN_OK ? calloc(1, sizeof *m) : NULL;
    if (st == CAIRN_OK && m) {
        m->dir = strdup(o.dirname);
        m->prefix = strdup(o.fn_prefix ? o.fn_prefix : "");
        m->monitor = o.monitor ? strdup(o.monitor) : NULL;
    }
    if (st == CAIRN_OK && (!m || !m->dir || !m->prefix || (o.monitor && !m->monitor)))
        st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "out of memory");
    if (st == CAIRN_OK && o.keep_best && !o.monitor)
        st = cairn__mpi_fail(err, CAIRN_E_ARG, "%s: keep_best needs a monitored metric",
                             o.dirname);
    if (st == CAIRN_OK && (o.flags & CAIRN_CKPT_READ_ONLY) &&
        (o.flags & (CAIRN_CKPT_ASYNC | CAIRN_CKPT_SIGNALS)))
        st = cairn__mpi_fail(err, CAIRN_E_ARG, "%s: a read-only manager neither saves nor "
                             "catches signals (CAIRN_CKPT_ASYNC, CAIRN_CKPT_SIGNALS)", o.dirname);
    if (st == CAIRN_OK && (strchr(m->prefix, '/') || strlen(m->prefix) > 200))
        st = cairn__mpi_fail(err, CAIRN_E_ARG, "%s: a file name prefix has no '/' and at most "
                             "200 bytes", o.dirname);
    if (m) {
        m->comm = comm;
        m->lock_fd = -1;
        m->remote = m->dir && cairn_path_is_url(m->dir);
        for (size_t len = m->dir ? strlen(m->dir) : 0; len > 1 && m->dir[len - 1] == '/';)
            m->dir[--len] = '\0';
        MPI_Comm_rank(comm, &m->me);
        MPI_Comm_size(comm, &m->size);
        m->flags = o.flags;
        m->trig.every_epochs = o.every_epochs;
        m->trig.every_steps = o.every_steps;
        m->trig.every_seconds = o.every_seconds;
        m->trig.monitor = o.monitor != NULL;
        m->trig.maximize = (o.flags & CAIRN_CKPT_MODE_MAX) != 0;
        m->keep_best = o.keep_best;
        m->keep_last = o.keep_last;
        m->keep_every = o.keep_every;
        m->wopts.struct_size = sizeof m->wopts;
        if (o.write)
            memcpy(&m->wopts, o.write, o.write->struct_size < sizeof m->wopts
                                           ? o.write->struct_size : sizeof m->wopts);
        m->wopts.struct_size = sizeof m->wopts;
        if (o.flags & CAIRN_CKPT_NO_SYNC)
            m->wopts.flags |= CAIRN_WRITE_NO_SYNC;
    }
    /* an object-store prefix has nothing to create and no lock (its saves
     * are create-only: docs/DISTRIBUTED.md "On an object store") */
    int writer = st == CAIRN_OK && !(m->flags & CAIRN_CKPT_READ_ONLY) && !m->remote;
    if (writer && m->me == 0 && mkdir(m->dir, 0777) != 0 && errno != EEXIST)
        st = cairn__mpi_fail(err, CAIRN_E_IO, "%s: cannot create: %s", m->dir, strerror(errno));
    if (writer && st == CAIRN_OK && m->me == 0)
        st = take_lock(m, err);
    if (st == CAIRN_OK && m->me == 0)
        st = scan(m, err);
    /* every rank catches the signals: any rank's counts (agreed at begin) */
    if (st == CAIRN_OK && (m->flags & CAIRN_CKPT_SIGNALS))
        st = install_signals(m, err);
    st = cairn__mpi_agree(comm, st, err);
    if (st == CAIRN_OK)
        st = share_table(m, err);
    if (st != CAIRN_OK) {
        free_manager(m);
        return st;
    }
    *out = m;
    return CAIRN_OK;
}

/* ------------------------------------------------------------ retention */

static void entry_rec(const void *entries, size_t i, cairn__ckpt_rec *out)
{
    const entry *e = (const entry *)entries + i;
    *out = (cairn__ckpt_rec){.epoch = e->epoch, .valid = e->valid, .mine = e->ours,
                             .has_metric = e->has_metric, .metric = e->metric};
}

/* Rank 0, after a commit: removes the checkpoints no policy keeps, by the
 * single-process manager's rules (ckpt_policy.h): never the newest valid
 * one, never an invalid one, never one another run wrote unless
 * CAIRN_CKPT_PRUNE_EARLIER. */
static void retain(cairn_mpi_ckpt *m)
{
    if (!m->keep_best && !m->keep_last && !m->keep_every)
        return;
    unsigned char *keep = malloc(m->n ? m->n : 1);
    if (!keep || cairn__ckpt_mark_kept(m->e, m->n, entry_rec, m->keep_best, m->keep_last,
                                       m->keep_every, (m->flags & CAIRN_CKPT_PRUNE_EARLIER) != 0,
                                       m->trig.maximize, keep) != 0) {
        free(keep); /* out of memory: everything stays */
        return;
    }
    size_t w = 0;
    int removed = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (!keep[i]) {
            char p[PATH_LEN];
            ckpt_path(m, m->e[i].seq, p, sizeof p);
            cairn__mpi_remove_dir(p);
            removed = 1;
        } else {
            m->e[w++] = m->e[i];
        }
    }
    m->n = w;
    free(keep);
    if (removed && !(m->flags & CAIRN_CKPT_NO_SYNC) && !m->remote)
        cairn__mpi_sync_dir(m->dir, NULL);
}

/* ---------------------------------------------------------------- saves */

static void *write_thread(void *arg)
{
    cairn__mpi_save_write(arg, 1); /* durable in the background */
    return NULL;
}

/* Collective: finishes the save in flight (agreement, manifest, commit),
 * records it and applies retention. */
static cairn_status collect(cairn_mpi_ckpt *m, cairn_error *err)
{
    if (!m->pending)
        return CAIRN_OK;
    if (m->thread_running)
        pthread_join(m->thread, NULL);
    m->thread_running = 0;
    cairn_mpi_save *s = m->pending;
    m->pending = NULL;
    cairn_status st = cairn__mpi_save_finish(s, NULL, err);
    if (st == CAIRN_OK && m->me == 0) {
        if (m->n == m->cap) {
            size_t nc = m->cap ? 2 * m->cap : 16;
            entry *ne = realloc(m->e, nc * sizeof *ne);
            if (ne) {
                m->e = ne;
                m->cap = nc;
            }
        }
        if (m->n < m->cap)
            m->e[m->n++] = m->pending_entry;
        retain(m);
        drop_loose(m);
    }
    cairn_status st2 = share_table(m, err);
    return st != CAIRN_OK ? st : st2;
}

/* Rank 0: why this step saves (empty: it does not), by the single-process
 * manager's rules; *metric from rank 0's metrics. */
static cairn_status decide(cairn_mpi_ckpt *m, uint64_t epoch, uint64_t step,
                           const cairn_value *metrics, unsigned flags, int signal,
                           entry *e, cairn_error *err)
{
    if (metrics && cairn_value_get_type(metrics) != CAIRN_VALUE_MAP)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: metrics must be a map", m->dir);
    if (m->monitor) {
        int found;
        e->metric = cairn__ckpt_number_at(metrics, m->monitor, &found);
        if (!found)
            return cairn__mpi_fail(err, CAIRN_E_ARG, "%s: metric '%s' is missing from rank 0's "
                                   "metrics of this step", m->dir, m->monitor);
        e->has_metric = 1;
    }
    e->time = now();
    cairn__ckpt_reasons(&m->trig, epoch, step, e->has_metric, e->metric,
                        (flags & CAIRN_STEP_FORCE) != 0, signal, e->time, e->reasons,
                        sizeof e->reasons);
    return CAIRN_OK;
}

cairn_status cairn_mpi_ckpt_begin(cairn_mpi_ckpt *m, uint64_t epoch, uint64_t step,
                                  const cairn_value *metrics, unsigned flags,
                                  cairn_mpi_save **save, int *saved, cairn_error *err)
{
    if (save)
        *save = NULL;
    if (saved)
        *saved = CAIRN_SAVED_NO;
    if (!m || !save)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_ckpt_begin: NULL argument");
    if (m->flags & CAIRN_CKPT_READ_ONLY)
        return cairn__mpi_fail(err, CAIRN_E_STATE, "%s: opened read-only: cannot save", m->dir);
    MPI_TRY(collect(m, err));
    /* A signal on any rank counts: every rank saves at this same step. */
    sig_atomic_t seen = signals_seen;
    int mine = m->signals_installed && seen != m->signals_handled, signal = 0;
    MPI_Allreduce(&mine, &signal, 1, MPI_INT, MPI_MAX, m->comm);
    entry e = {.seq = m->next_seq, .epoch = epoch, .step = step, .valid = 1, .ours = 1};
    cairn_status st = m->me == 0 ? decide(m, epoch, step, metrics, flags, signal, &e, err)
                                 : CAIRN_OK;
    MPI_TRY(cairn__mpi_agree(m->comm, st, err));
    MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, 0, m->comm);
    if (!e.reasons[0])
        return CAIRN_OK;
    ckpt_path(m, e.seq, m->path, sizeof m->path);
    cairn_mpi_save *s = NULL;
    st = cairn_mpi_save_begin(m->comm, m->path, &m->wopts, &s, err);
    cairn_value *rec = NULL;
    if (st == CAIRN_OK && m->me == 0) { /* only rank 0's record is written */
        rec = cairn__ckpt_record(e.seq, epoch, step, e.time, e.has_metric, e.metric, m->monitor,
                                 m->trig.maximize, e.reasons, metrics, err);
        if (!rec)
            st = cairn__mpi_fail(err, CAIRN_E_NOMEM, "out of memory");
    }
    if (rec)
        cairn__mpi_save_set_record(s, rec, err);
    st = cairn__mpi_agree(m->comm, st, err);
    if (st != CAIRN_OK) {
        cairn_mpi_save_abort(s);
        return st;
    }
    m->pending_entry = e;
    m->next_seq = e.seq + 1;
    cairn__ckpt_trig_saved(&m->trig, step, e.time, e.has_metric, e.metric);
    if (signal)
        m->signals_handled = seen;
    if (saved)
        *saved = signal ? CAIRN_SAVED_SIGNAL : CAIRN_SAVED_YES;
    *save = s;
    return CAIRN_OK;
}

cairn_status cairn_mpi_ckpt_commit(cairn_mpi_ckpt *m, cairn_mpi_save *save, cairn_error *err)
{
    if (!m || !save)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_ckpt_commit: NULL argument");
    int async = (m->flags & CAIRN_CKPT_ASYNC) != 0;
    if (async)
        cairn__mpi_save_own(save, err); /* a failure is kept and agreed on by the plan */
    cairn_status st = cairn__mpi_save_plan(save, err);
    if (st != CAIRN_OK) {
        cairn_mpi_save_abort(save);
        return st;
    }
    m->pending = save;
    if (async && pthread_create(&m->thread, NULL, write_thread, save) == 0) {
        m->thread_running = 1;
        return CAIRN_OK;
    }
    cairn__mpi_save_write(save, 0); /* sync (fsync in finish), or no thread */
    return collect(m, err);
}

cairn_status cairn_mpi_ckpt_wait(cairn_mpi_ckpt *m, cairn_error *err)
{
    if (!m)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_ckpt_wait: NULL manager");
    return collect(m, err);
}

cairn_status cairn_mpi_ckpt_close(cairn_mpi_ckpt *m, cairn_error *err)
{
    if (!m)
        return CAIRN_OK;
    cairn_status st = collect(m, err);
    free_manager(m);
    return st;
}

/* ---------------------------------------------------------------- query */

size_t cairn_mpi_ckpt_count(const cairn_mpi_ckpt *m)
{
    return m ? m->n : 0;
}

cairn_status cairn_mpi_ckpt_info_at(const cairn_mpi_ckpt *m, size_t i, cairn_mpi_ckpt_info *out,
                                    cairn_error *err)
{
    if (!m || !out || i >= m->n)
        return cairn__mpi_fail(err, CAIRN_E_NOT_FOUND, "checkpoint %zu of %zu", i,
                               m ? m->n : 0);
    cairn_mpi_ckpt *mm = (cairn_mpi_ckpt *)m; /* the path buffer is scratch */
    ckpt_path(m, m->e[i].seq, mm->path, sizeof mm->path);
    const entry *e = &m->e[i];
    *out = (cairn_mpi_ckpt_info){.seq = e->seq, .epoch = e->epoch, .step = e->step,
                                 .valid = e->valid, .path = mm->path, .time = e->time,
                                 .has_metric = e->has_metric, .metric = e->metric,
                                 .reasons = e->reasons};
    return CAIRN_OK;
}

cairn_status cairn_mpi_ckpt_best(const cairn_mpi_ckpt *m, size_t *index, cairn_error *err)
{
    if (!m || !index)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_ckpt_best: NULL argument");
    size_t found = SIZE_MAX;
    if (!m->monitor) { /* as the single-process manager: the newest valid one */
        for (size_t i = m->n; i-- > 0;)
            if (m->e[i].valid) {
                *index = i;
                return CAIRN_OK;
            }
        return cairn__mpi_fail(err, CAIRN_E_NOT_FOUND, "%s: no valid checkpoint", m->dir);
    }
    for (size_t i = 0; i < m->n; i++) { /* the newest of equals */
        const entry *e = &m->e[i];
        if (e->valid && e->has_metric && !isnan(e->metric) &&
            (found == SIZE_MAX ||
             !cairn__ckpt_better(m->trig.maximize, m->e[found].metric, e->metric)))
            found = i;
    }
    if (found == SIZE_MAX)
        return cairn__mpi_fail(err, CAIRN_E_NOT_FOUND, "%s: no valid checkpoint has the "
                               "metric '%s'", m->dir, m->monitor);
    *index = found;
    return CAIRN_OK;
}

/* Collective: every byte of checkpoint `path`, rank files shared out. */
static cairn_status verify_shared(cairn_mpi_ckpt *m, const char *path, cairn_error *err)
{
    cairn_file *f = NULL;
    uint64_t *files = NULL, nfiles = 0;
    char rdir[18];
    cairn_status st = cairn_file_open(path, NULL, &f, err);
    if (st == CAIRN_OK) /* rank files: as many as the manifest's dist.files rows */
        st = manifest_files(path, &files, &nfiles, rdir, err);
    free(files);
    for (uint64_t i = (uint64_t)m->me; st == CAIRN_OK && i < nfiles; i += (uint64_t)m->size) {
        char p[PATH_LEN + 64];
        cairn_file *rf = NULL;
        rank_path(p, sizeof p, path, rdir, i);
        st = cairn_file_open(p, NULL, &rf, err);
        if (st == CAIRN_OK)
            st = cairn_file_verify(rf, err);
        cairn_file_close(rf);
    }
    cairn_file_close(f);
    return cairn__mpi_agree(m->comm, st, err);
}

cairn_status cairn_mpi_ckpt_resume(cairn_mpi_ckpt *m, cairn_file **f, cairn_mpi_ckpt_info *info,
                                   size_t *skipped, cairn_error *err)
{
    if (f)
        *f = NULL;
    if (skipped)
        *skipped = 0;
    if (!m || !f)
        return cairn__mpi_fail(err, CAIRN_E_ARG, "cairn_mpi_ckpt_resume: NULL argument");
    MPI_TRY(collect(m, err));
    for (size_t i = m->n; i-- > 0;) {
        if (!m->e[i].valid)
            continue;
        char p[PATH_LEN];
        ckpt_path(m, m->e[i].seq, p, sizeof p);
        cairn_error verr;
        if (verify_shared(m, p, &verr) != CAIRN_OK) {
            m->e[i].valid = 0;
            if (skipped)
                ++*skipped;
            continue;
        }
        MPI_TRY(cairn_mpi_open(m->comm, p, NULL, f, err));
        if (info)
            cairn_mpi_ckpt_info_at(m, i, info, NULL);
        return CAIRN_OK;
    }
    return cairn__mpi_fail(err, CAIRN_E_NOT_FOUND, "%s: no valid checkpoint", m->dir);
}
