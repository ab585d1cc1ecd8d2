/* bench_io.c -- times cairn save / open / read against raw write()/read() of the same bytes. */
#define _GNU_SOURCE
#include "cairn.h"

#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ workloads */

typedef struct tensor {
    char name[48];
    uint32_t rank;
    uint64_t dims[2];
    size_t bytes;
    float *data; /* the source (save) */
    float *dst;  /* the caller buffer (read); allocated only for read modes */
} tensor;

typedef struct workload {
    const char *name;
    size_t count;
    tensor *t;
    uint64_t total; /* payload bytes: sum of t[i].bytes */
} workload;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_io: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    /* 64-byte alignment so neither contender pays for a misaligned source. */
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        die("out of memory for %zu bytes", bytes);
    return p;
}

static void set_shape(tensor *t, uint32_t rank, uint64_t d0, uint64_t d1)
{
    t->rank = rank;
    t->dims[0] = d0;
    t->dims[1] = rank > 1 ? d1 : 0;
    t->bytes = (size_t)(d0 * (rank > 1 ? d1 : 1)) * sizeof(float);
}

/* 'big': 1 GiB exactly, 256 tensors, laid out layer by layer like a model:
 * per layer 1 large matrix (64 MiB), 15 medium blocks (4.25 MiB, four shapes)
 * and 16 small vectors (8-24 KiB, sizes pair up around 16 KiB). */
static void shape_big(workload *w)
{
    static const uint64_t medium[4][2] = {{1024, 1088}, {2176, 512}, {4352, 256}, {544, 2048}};
    size_t i = 0, small = 0, med = 0;
    for (int layer = 0; layer < 8; layer++) {
        tensor *t = &w->t[i];
        snprintf(t->name, sizeof t->name, "t%03zu.l%d.large.weight", i, layer);
        set_shape(t, 2, 4096, 4096);
        i++;
        for (int k = 0; k < 15; k++, i++, med++) {
            t = &w->t[i];
            snprintf(t->name, sizeof t->name, "t%03zu.l%d.block%d.weight", i, layer, k);
            set_shape(t, 2, medium[med % 4][0], medium[med % 4][1]);
        }
        for (int k = 0; k < 16; k++, i++, small++) {
            t = &w->t[i];
            uint64_t delta = 64 * ((small / 2) % 32);
            snprintf(t->name, sizeof t->name, "t%03zu.l%d.norm%d.bias", i, layer, k);
            set_shape(t, 1, small % 2 ? 4096 + delta : 4096 - delta, 0);
        }
    }
}

/* 'many': 20,000 vectors of 500..1500 floats (about 80 MB). */
static void shape_many(workload *w)
{
    for (size_t i = 0; i < w->count; i++) {
        snprintf(w->t[i].name, sizeof w->t[i].name, "t%05zu.bias", i);
        set_shape(&w->t[i], 1, 500 + (i * 7919) % 1001, 0);
    }
}

static void shape_tiny(workload *w)
{
    snprintf(w->t[0].name, sizeof w->t[0].name, "weight");
    set_shape(&w->t[0], 2, 10, 10);
}

/* Deterministic values in [-1, 1): the content does not matter to the I/O
 * path (no compression), only that it is not all zero pages. */
static void fill(float *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (float)(x >> 40) * (1.0f / 8388608.0f) - 1.0f;
    }
}

static workload make_workload(const char *name, int generate)
{
    workload w = {name, 0, NULL, 0};
    if (!strcmp(name, "big"))
        w.count = 256;
    else if (!strcmp(name, "many"))
        w.count = 20000;
    else if (!strcmp(name, "tiny"))
        w.count = 1;
    else
        die("unknown workload '%s' (big, many, tiny)", name);
    w.t = calloc(w.count, sizeof *w.t);
    if (!w.t)
        die("out of memory");
    if (w.count == 256)
        shape_big(&w);
    else if (w.count == 20000)
        shape_many(&w);
    else
        shape_tiny(&w);
    for (size_t i = 0; i < w.count; i++) {
        w.total += w.t[i].bytes;
        if (generate) {
            w.t[i].data = xalloc(w.t[i].bytes);
            fill(w.t[i].data, w.t[i].bytes / sizeof(float), i + 1);
        }
    }
    return w;
}

/* Read modes need caller buffers; they are touched here, untimed, so no
 * contender pays for first-touch page faults. */
static void alloc_dst(workload *w)
{
    for (size_t i = 0; i < w->count; i++) {
        if (w->t[i].dst)
            continue;
        w->t[i].dst = xalloc(w->t[i].bytes);
        memset(w->t[i].dst, 0, w->t[i].bytes);
    }
}

/* ------------------------------------------------------------- helpers */

static void write_all(int fd, const void *data, size_t len, const char *path)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s: write: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void read_all(int fd, void *data, size_t len, const char *path)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s: read: %s", path, n == 0 ? "unexpected end of file" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void check(cairn_status st, const cairn_error *err)
{
    if (st != CAIRN_OK)
        die("cairn: %s: %s", cairn_strerror(st), err->message);
}

/* Writes and deletes a file of `bytes` (untimed). On this VM, page cache
 * built on memory the hypervisor took back (virtio-balloon free page
 * reporting, about 2 s after pages are freed) fills ~5x slower; a scratch
 * file written just before the timed save leaves that many host-backed free
 * pages for it to reuse. */
static void scratch(const char *dir, uint64_t bytes)
{
    enum { BUF = 1 << 20 };
    static char *buf;
    char path[4096];
    if (!buf) {
        buf = xalloc(BUF);
        memset(buf, 0xA5, BUF);
    }
    snprintf(path, sizeof path, "%s/scratch.tmp", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    for (uint64_t done = 0; done < bytes;) {
        size_t n = bytes - done < BUF ? (size_t)(bytes - done) : BUF;
        write_all(fd, buf, n, path);
        done += n;
    }
    close(fd);
    unlink(path);
}

/* ---------------------------------------------------------- contenders */

static void sync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        die("%s: fsync of the directory: %s", dir, strerror(errno));
    close(fd);
}

static void raw_save(const workload *w, const char *path, int sync)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    for (size_t i = 0; i < w->count; i++)
        write_all(fd, w->t[i].data, w->t[i].bytes, path);
    if (sync && fsync(fd) != 0)
        die("%s: fsync: %s", path, strerror(errno));
    close(fd);
    if (sync) /* a new name is durable once its directory is synced: cairn's default does it */
        sync_dir_of(path);
}

static void cairn_save(const workload *w, const char *path, int sync)
{
    cairn_write_opts opts = {.struct_size = sizeof opts, .flags = sync ? 0 : CAIRN_WRITE_NO_SYNC,
                             .format = CAIRN_FORMAT_NATIVE};
    cairn_error err = {0};
    cairn_writer *wr = NULL;
    check(cairn_writer_open_path(path, &opts, &wr, &err), &err);
    for (size_t i = 0; i < w->count; i++) {
        const tensor *t = &w->t[i];
        cairn_status st = cairn_writer_add(wr, t->name, CAIRN_F32, t->rank, t->dims, t->data, &err);
        if (st != CAIRN_OK) {
            cairn_writer_abort(wr);
            check(st, &err);
        }
    }
    check(cairn_writer_commit(wr, &err), &err);
}

static void raw_read(const workload *w, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    for (size_t i = 0; i < w->count; i++)
        read_all(fd, w->t[i].dst, w->t[i].bytes, path);
    close(fd);
}

/* Tensor names start with the zero-padded add order, so index i (name
 * order) is workload tensor i; check_layout() asserts it once, untimed. */
static void cairn_read(const workload *w, const char *path, unsigned open_flags, unsigned flags)
{
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = open_flags};
    cairn_error err = {0};
    cairn_file *f = NULL;
    check(cairn_file_open(path, &opts, &f, &err), &err);
    for (size_t i = 0; i < w->count; i++)
        check(cairn_tensor_read(f, i, CAIRN_F32, w->t[i].dst, w->t[i].bytes, flags, &err), &err);
    cairn_file_close(f);
}

static void check_layout(const workload *w, const char *path)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    check(cairn_file_open(path, NULL, &f, &err), &err);
    if (cairn_file_count(f) != w->count)
        die("%s: %llu tensors, expected %zu", path, (unsigned long long)cairn_file_count(f),
            w->count);
    for (size_t i = 0; i < w->count; i++) {
        cairn_tensor_info info;
        check(cairn_tensor_info_at(f, i, &info, &err), &err);
        if (strcmp(info.name, w->t[i].name) || info.raw_size != w->t[i].bytes)
            die("%s: tensor %zu is '%s', expected '%s'", path, i, info.name, w->t[i].name);
    }
    cairn_file_close(f);
}

static void check_dst(const workload *w, const char *who)
{
    for (size_t i = 0; i < w->count; i++)
        if (memcmp(w->t[i].data, w->t[i].dst, w->t[i].bytes) != 0)
            die("%s read wrong bytes for tensor '%s'", who, w->t[i].name);
}

static void clear_dst(const workload *w)
{
    for (size_t i = 0; i < w->count; i++)
        memset(w->t[i].dst, 0, w->t[i].bytes);
}

/* ------------------------------------------------------------- reports */

static double median(const double *v, int n)
{
    double *s = xalloc((size_t)n * sizeof *s);
    memcpy(s, v, (size_t)n * sizeof *s);
    double m = bench_median_sort(s, n);
    free(s);
    return m;
}

static double vmin(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double vmax(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static void print_header(const char *wl, const char *op, const char *note)
{
    printf("\n== %s / %s  (%s)\n", wl, op, note);
    printf("  %-12s %12s %12s %12s %10s %8s %8s\n", "who", "median s", "min s", "max s", "MB/s",
           "ratio", "paired");
}

/* One row and one machine-readable line. `ratio` is median(cairn) /
 * median(raw); `paired` is the median of per-run cairn/raw ratios, which
 * cancels slow drift on a shared machine. Both are 1 for the raw row. */
static void report(const char *wl, const char *op, const char *who, const double *s, int n,
                   uint64_t bytes, const double *raw)
{
    double med = median(s, n), mbs = (double)bytes / med / 1e6;
    double ratio = raw ? med / median(raw, n) : 1.0, paired = 1.0;
    if (raw) {
        double *r = xalloc((size_t)n * sizeof *r);
        for (int i = 0; i < n; i++)
            r[i] = s[i] / raw[i];
        paired = median(r, n);
        free(r);
    }
    printf("  %-12s %12.6f %12.6f %12.6f %10.1f %8.3f %8.3f\n", who, med, vmin(s, n), vmax(s, n),
           mbs, ratio, paired);
    printf("RESULT workload=%s op=%s contender=%s runs=%d bytes=%llu median_s=%.6f min_s=%.6f "
           "max_s=%.6f mb_s=%.1f ratio=%.4f paired_ratio=%.4f\n", wl, op, who, n,
           (unsigned long long)bytes, med, vmin(s, n), vmax(s, n), mbs, ratio, paired);
    fflush(stdout);
}

/* --------------------------------------------------------------- modes */

typedef struct config {
    const char *dir;
    int runs;
    int open_reps;
    int do_raw, do_cairn; /* --only */
    double settle;        /* seconds to wait before each scratch write */
    int read_runs;        /* reads are cheap and need no settling: more runs */
} config;

static void out_paths(const config *c, const workload *w, char *raw, char *cairn, size_t size)
{
    snprintf(raw, size, "%s/%s.raw", c->dir, w->name);
    snprintf(cairn, size, "%s/%s.cairn", c->dir, w->name);
}

static void pause_s(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Untimed preparation before every timed save, the same for both
 * contenders: remove old outputs (so neither pays to free a previous file);
 * sync (so no earlier dirty data is flushed in the timed region); for
 * payloads of 1 MiB and more, wait until the balloon driver has handed the
 * freed memory back to the host (it does so ~2 s after a large free, and a
 * pass that lands inside the timed region makes the save up to ~5x slower),
 * then write and delete a scratch file twice the payload, so the save reuses
 * pages the host still backs. 'tiny' (one page) needs neither, and a scratch
 * file there is not neutral: its open(O_CREAT) + write + close + unlink,
 * microseconds before the timed region, warm exactly the raw contender's
 * kernel path (4.5 us instead of 8.5 us after sync(); cairn's O_TMPFILE +
 * linkat path 10.8 instead of 14.5). The measurements behind this are in
 * bench/README.md ("Traps"). */
static void before_save(const config *c, const workload *w, const char *raw, const char *cairn)
{
    unlink(raw);
    unlink(cairn);
    sync();
    if (w->total < (1u << 20))
        return;
    pause_s(c->settle);
    scratch(c->dir, 2 * w->total);
}

static void bench_save(const config *c, const workload *w, int sync_mode)
{
    char raw[4096], cpath[4096];
    out_paths(c, w, raw, cpath, sizeof raw);
    double *tr = xalloc((size_t)c->runs * sizeof *tr), *tc = xalloc((size_t)c->runs * sizeof *tc);
    const char *op = sync_mode ? "save-sync" : "save";
    for (int r = 0; r < c->runs; r++) {
        if (c->do_raw) { /* A */
            before_save(c, w, raw, cpath);
            double t0 = bench_now();
            raw_save(w, raw, sync_mode);
            tr[r] = bench_now() - t0;
        }
        if (c->do_cairn) { /* B */
            before_save(c, w, raw, cpath);
            double t0 = bench_now();
            cairn_save(w, cpath, sync_mode);
            tc[r] = bench_now() - t0;
        }
    }
    print_header(w->name, op, sync_mode ? "durable: raw = write + fsync + fsync of the directory; cairn = "
                 "default commit (fsync file, link in, fsync dir)" : "into the page cache: no fsync on either side");
    if (c->do_raw)
        report(w->name, op, "raw", tr, c->runs, w->total, NULL);
    if (c->do_cairn)
        report(w->name, op, "cairn", tc, c->runs, w->total, c->do_raw ? tr : NULL);
    free(tr);
    free(tc);
}

/* Writes both files untimed, reads each once untimed (warms the page cache
 * and checks the bytes), so the timed reads measure copies from a warm cache. */
static void prepare_read(const config *c, workload *w, const char *raw, const char *cpath)
{
    alloc_dst(w);
    raw_save(w, raw, 0);
    cairn_save(w, cpath, 0);
    check_layout(w, cpath);
    raw_read(w, raw);
    check_dst(w, "raw");
    clear_dst(w);
    cairn_read(w, cpath, 0, CAIRN_READ_VERIFY);
    check_dst(w, "cairn");
}

/* A third row, cairn-nommap (CAIRN_OPEN_NO_MMAP: pread into the buffers),
 * is not a target: it shows what the default mmap + memcpy path costs. */
static void bench_read(const config *c, workload *w, unsigned flags)
{
    char raw[4096], cpath[4096];
    out_paths(c, w, raw, cpath, sizeof raw);
    prepare_read(c, w, raw, cpath);
    int runs = c->read_runs;
    size_t n = (size_t)runs;
    double *tr = xalloc(n * sizeof *tr), *tc = xalloc(n * sizeof *tc), *tp = xalloc(n * sizeof *tp);
    const char *op = flags & CAIRN_READ_VERIFY ? "read-verify" : "read";
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        raw_read(w, raw);
        tr[r] = bench_now() - t0;
        t0 = bench_now();
        cairn_read(w, cpath, 0, flags);
        tc[r] = bench_now() - t0;
        t0 = bench_now();
        cairn_read(w, cpath, CAIRN_OPEN_NO_MMAP, flags);
        tp[r] = bench_now() - t0;
    }
    print_header(w->name, op, flags & CAIRN_READ_VERIFY
                 ? "warm page cache; raw = open + read() per tensor; cairn = open + "
                   "cairn_tensor_read(CAIRN_READ_VERIFY) per tensor"
                 : "warm page cache; raw = open + read() per tensor; cairn = open + "
                   "cairn_tensor_read per tensor");
    report(w->name, op, "raw", tr, runs, w->total, NULL);
    report(w->name, op, "cairn", tc, runs, w->total, tr);
    report(w->name, op, "cairn-nommap", tp, runs, w->total, tr);
    free(tr);
    free(tc);
    free(tp);
}

/* cairn_file_open + cairn_tensor_find of one name + close, in microseconds:
 * what a loader pays before it touches any payload. */
static void bench_open(const config *c, const workload *w)
{
    char raw[4096], cpath[4096];
    out_paths(c, w, raw, cpath, sizeof raw);
    struct stat sb;
    if (stat(cpath, &sb) != 0)
        cairn_save(w, cpath, 0);
    const char *name = w->t[w->count / 2].name;
    double *us = xalloc((size_t)c->open_reps * sizeof *us);
    for (int r = -1; r < c->open_reps; r++) { /* r = -1 warms the cache, untimed */
        cairn_error err = {0};
        cairn_file *f = NULL;
        cairn_tensor_info info;
        double t0 = bench_now();
        check(cairn_file_open(cpath, NULL, &f, &err), &err);
        check(cairn_tensor_find(f, name, NULL, &info, &err), &err);
        cairn_file_close(f);
        if (r >= 0)
            us[r] = (bench_now() - t0) * 1e6;
    }
    printf("\n== %s / open  (warm page cache; cairn_file_open + cairn_tensor_find('%s') + close, "
           "%d reps)\n", w->name, name, c->open_reps);
    printf("  median %.1f us   min %.1f us   max %.1f us\n", median(us, c->open_reps),
           vmin(us, c->open_reps), vmax(us, c->open_reps));
    printf("RESULT workload=%s op=open contender=cairn runs=%d tensors=%zu median_us=%.1f "
           "min_us=%.1f max_us=%.1f\n", w->name, c->open_reps, w->count, median(us, c->open_reps),
           vmin(us, c->open_reps), vmax(us, c->open_reps));
    fflush(stdout);
    free(us);
}

/* Writes every tensor of the workload as DIR/npy/NAME.npy (the library's
 * .npy writer) and DIR/npy/pack-args.txt, one NAME=PATH per line, for the
 * `cairn pack` benchmark. */
static void gen_npy(const config *c, const workload *w)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/npy", c->dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("%s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/npy/pack-args.txt", c->dir);
    FILE *args = fopen(path, "w");
    if (!args)
        die("%s: %s", path, strerror(errno));
    for (size_t i = 0; i < w->count; i++) {
        const tensor *t = &w->t[i];
        cairn_write_opts opts = {.struct_size = sizeof opts, .flags = CAIRN_WRITE_NO_SYNC,
                                 .format = CAIRN_FORMAT_NPY};
        cairn_error err = {0};
        cairn_writer *wr = NULL;
        snprintf(path, sizeof path, "%s/npy/%s.npy", c->dir, t->name);
        check(cairn_writer_open_path(path, &opts, &wr, &err), &err);
        cairn_status st = cairn_writer_add(wr, t->name, CAIRN_F32, t->rank, t->dims, t->data, &err);
        if (st != CAIRN_OK)
            cairn_writer_abort(wr);
        check(st, &err);
        check(cairn_writer_commit(wr, &err), &err);
        fprintf(args, "%s=%s\n", t->name, path);
    }
    fclose(args);
    printf("wrote %zu .npy files (%llu payload bytes) under %s/npy\n", w->count,
           (unsigned long long)w->total, c->dir);
}

/* The shapes, for peers.py: "NAME RANK D0 [D1]" per line. */
static void list_shapes(const workload *w)
{
    for (size_t i = 0; i < w->count; i++) {
        const tensor *t = &w->t[i];
        printf("%s %u", t->name, t->rank);
        for (uint32_t d = 0; d < t->rank; d++)
            printf(" %llu", (unsigned long long)t->dims[d]);
        putchar('\n');
    }
}

static void print_rss(const char *wl, const char *mode, uint64_t payload)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mib = (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
    printf("RESULT workload=%s op=rss-self mode=%s maxrss_mib=%.1f payload_mib=%.1f "
           "overhead_mib=%.1f\n", wl, mode, mib, (double)payload / 1048576.0,
           mib - (double)payload / 1048576.0);
}

/* ---------------------------------------------------------------- main */

static const char usage[] =
    "usage: bench_io --workload big|many|tiny [--runs N] [--read-runs N (3 x runs)] [--dir DIR]\n"
    "                [--open-reps N] [--settle S (2.5)]\n"
    "                [--mode save|save-sync|read|read-verify|open|all|gen|gen-npy|list]\n"
    "                [--only raw|cairn]\n"
    "Times cairn against raw write()/read() of the same bytes; see bench/README.md.\n";

static void parse(int argc, char **argv, config *c, const char **wl, const char **mode)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        }
        if (!v)
            die("%s needs a value\n%s", a, usage);
        i++;
        if (!strcmp(a, "--workload"))
            *wl = v;
        else if (!strcmp(a, "--mode"))
            *mode = v;
        else if (!strcmp(a, "--dir"))
            c->dir = v;
        else if (!strcmp(a, "--runs"))
            c->runs = atoi(v);
        else if (!strcmp(a, "--read-runs"))
            c->read_runs = atoi(v);
        else if (!strcmp(a, "--settle"))
            c->settle = atof(v);
        else if (!strcmp(a, "--open-reps"))
            c->open_reps = atoi(v);
        else if (!strcmp(a, "--only")) {
            c->do_raw = !strcmp(v, "raw");
            c->do_cairn = !strcmp(v, "cairn");
            if (!c->do_raw && !c->do_cairn)
                die("--only wants raw or cairn");
        } else
            die("unknown option '%s'\n%s", a, usage);
    }
    if (c->read_runs == 0)
        c->read_runs = 3 * c->runs;
    if (c->runs < 1 || c->open_reps < 1 || c->read_runs < 1)
        die("--runs, --read-runs and --open-reps must be at least 1");
}

int main(int argc, char **argv)
{
    config c = {"/tmp/cairn-bench", 5, 101, 1, 1, 2.5, 0};
    const char *wl = "tiny", *mode = "all";
    parse(argc, argv, &c, &wl, &mode);
    int is_list = !strcmp(mode, "list");
    workload w = make_workload(wl, !is_list);
    if (is_list) {
        list_shapes(&w);
        return 0;
    }
    if (mkdir(c.dir, 0755) != 0 && errno != EEXIST)
        die("%s: %s", c.dir, strerror(errno));
    int all = !strcmp(mode, "all"), known = all;
    printf("workload %s: %zu tensors, %llu payload bytes (%.1f MiB), %d runs, dir %s\n", w.name,
           w.count, (unsigned long long)w.total, (double)w.total / 1048576.0, c.runs, c.dir);
    if (all || !strcmp(mode, "save"))
        known = 1, bench_save(&c, &w, 0);
    if (all || !strcmp(mode, "save-sync"))
        known = 1, bench_save(&c, &w, 1);
    if (all || !strcmp(mode, "read"))
        known = 1, bench_read(&c, &w, 0);
    if (all || !strcmp(mode, "read-verify"))
        known = 1, bench_read(&c, &w, CAIRN_READ_VERIFY);
    if (all || !strcmp(mode, "open"))
        known = 1, bench_open(&c, &w);
    if (!strcmp(mode, "gen-npy"))
        known = 1, gen_npy(&c, &w);
    if (!strcmp(mode, "gen")) /* the harness alone, for the RSS baseline: */
        known = 1, scratch(c.dir, 1); /* count the scratch buffer too */
    if (!known)
        die("unknown mode '%s'\n%s", mode, usage);
    print_rss(w.name, mode, w.total);
    return 0;
}
