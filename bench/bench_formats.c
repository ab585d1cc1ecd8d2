/* bench_formats.c -- the interop targets, measured against cairn's own
 * native format and the raw limit in the same run:
 *   open + find one tensor: safetensors (JSON header) vs native (fixed index)
 *   read every tensor of a file: any format, into private buffers (one or
 *   two threads) or as zero-copy views with every page touched
 *   copy the payload the way `cairn convert` does vs mmap + write() of the
 *   same bytes (the convert baseline)
 *
 * usage: bench_formats open FILE NAME [REPS]
 *        bench_formats readall FILE [RUNS] [copy|views|copy2]
 *        bench_formats rawread FILE copy|views (the raw baselines for readall)
 *        bench_formats mmapwrite IN OUT      (the raw baseline for convert) */
#define _GNU_SOURCE
#include <cairn.h>

#include "bench_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int bench_open(const char *path, const char *name, int reps)
{
    double *t = malloc((size_t)reps * sizeof *t);
    cairn_error err;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        cairn_file *f;
        cairn_tensor_info info;
        if (cairn_file_open(path, NULL, &f, &err) != CAIRN_OK ||
            cairn_tensor_find(f, name, NULL, &info, &err) != CAIRN_OK) {
            fprintf(stderr, "bench_formats: %s\n", err.message);
            return 1;
        }
        cairn_file_close(f);
        t[r] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
    printf("RESULT bench=open file=%s reps=%d median_us=%.1f min_us=%.1f\n", path, reps,
           t[reps / 2] * 1e6, t[0] * 1e6);
    free(t);
    return 0;
}

/* How readall leaves the tensors in memory:
 *   copy   - private buffers, one cairn_tensor_read each (what torch.load
 *            does: every storage copied into fresh memory);
 *   views  - zero-copy cairn_tensor_data pointers into the mapped file, every
 *            page touched so the bytes are resident and mapped, nothing
 *            copied (read-only; what cairn offers when the bytes allow);
 *   copy2  - like copy, the tensors split between two threads (reads are
 *            thread-safe; the page faults of fresh memory run in parallel). */
enum readall_mode { READ_COPY, READ_VIEWS, READ_COPY2 };

typedef struct readall_job {
    const cairn_file *f;
    void **bufs;
    uint64_t first, step, n;
    int failed;
    cairn_error err;
} readall_job;

static void *read_some(void *arg)
{
    readall_job *j = arg;
    for (uint64_t i = j->first; i < j->n && !j->failed; i += j->step) {
        cairn_tensor_info info;
        if (cairn_tensor_info_at(j->f, i, &info, &j->err) != CAIRN_OK) {
            j->failed = 1;
            break;
        }
        j->bufs[i] = malloc(info.raw_size ? (size_t)info.raw_size : 1);
        j->failed = !j->bufs[i] || cairn_tensor_read(j->f, i, info.dtype, j->bufs[i],
                                                     (size_t)info.raw_size, 0, &j->err) != CAIRN_OK;
    }
    return NULL;
}

/* Every page of every tensor is read once; the sum keeps the loads alive. */
static int touch_views(const cairn_file *f, uint64_t n, uint64_t *sum, cairn_error *err)
{
    for (uint64_t i = 0; i < n; i++) {
        const void *data;
        cairn_tensor_info info;
        if (cairn_tensor_info_at(f, i, &info, err) != CAIRN_OK ||
            cairn_tensor_data(f, i, &data, err) != CAIRN_OK)
            return 1;
        const volatile uint8_t *p = data;
        for (uint64_t at = 0; at < info.stored_size; at += 4096)
            *sum += p[at];
    }
    return 0;
}

static int read_tensors(const cairn_file *f, enum readall_mode mode, void **bufs, uint64_t n,
                        uint64_t *sum, cairn_error *err)
{
    if (mode == READ_VIEWS)
        return touch_views(f, n, sum, err);
    readall_job jobs[2];
    int threads = mode == READ_COPY2 ? 2 : 1;
    pthread_t tid[2];
    for (int k = 0; k < threads; k++) {
        jobs[k] = (readall_job){.f = f, .bufs = bufs, .first = (uint64_t)k,
                                .step = (uint64_t)threads, .n = n};
        if (k > 0 && pthread_create(&tid[k], NULL, read_some, &jobs[k]) != 0)
            return 1;
    }
    read_some(&jobs[0]);
    for (int k = 1; k < threads; k++)
        pthread_join(tid[k], NULL);
    for (int k = 0; k < threads; k++)
        if (jobs[k].failed) {
            *err = jobs[k].err;
            return 1;
        }
    return 0;
}

static int bench_readall(const char *path, int runs, enum readall_mode mode)
{
    static const char *const names[] = {"copy", "views", "copy2"};
    double *t = malloc((size_t)runs * sizeof *t);
    cairn_error err;
    uint64_t bytes = 0, sum = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        cairn_file *f;
        if (cairn_file_open(path, NULL, &f, &err) != CAIRN_OK) {
            fprintf(stderr, "bench_formats: %s\n", err.message);
            return 1;
        }
        /* Every tensor ends up in memory at once, as torch.load leaves them. */
        uint64_t n = cairn_file_count(f);
        void **bufs = calloc(n ? n : 1, sizeof *bufs);
        if (!bufs || read_tensors(f, mode, bufs, n, &sum, &err)) {
            fprintf(stderr, "bench_formats: %s\n", bufs ? err.message : "out of memory");
            return 1;
        }
        t[r] = bench_now() - t0;
        bytes = 0;
        for (uint64_t i = 0; i < n; i++) {
            cairn_tensor_info info;
            cairn_tensor_info_at(f, i, &info, &err);
            bytes += info.raw_size;
            free(bufs[i]);
        }
        cairn_file_close(f);
        free(bufs);
    }
    qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
    printf("RESULT bench=readall mode=%s file=%s runs=%d bytes=%llu median_s=%.4f min_s=%.4f "
           "(check %llu)\n", names[mode], path, runs, (unsigned long long)bytes, t[runs / 2],
           t[0], (unsigned long long)(sum & 1));
    free(t);
    return 0;
}

/* The convert baseline: map the input, write() its bytes to a new file in
 * 1 MiB pieces, fsync, as a plain C program would. */
static int mmap_write(const char *in, const char *out)
{
    int fd = open(in, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return perror(in), 1;
    const char *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (p == MAP_FAILED || o < 0)
        return perror(out), 1;
    for (off_t done = 0; done < st.st_size;) {
        size_t n = st.st_size - done < (1 << 20) ? (size_t)(st.st_size - done) : (1 << 20);
        ssize_t w = write(o, p + done, n);
        if (w <= 0)
            return perror(out), 1;
        done += w;
    }
    fsync(o);
    close(o);
    munmap((void *)p, (size_t)st.st_size);
    close(fd);
    return 0;
}

/* The physical limits for readall, in the same process layout: `copy`
 * reads the whole file with read() into fresh 4 MiB malloc buffers (the
 * same page faults of new memory a private copy pays); `views` maps it and
 * reads one byte per page. */
static int raw_read(const char *path, const char *mode)
{
    double t0 = bench_now();
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return perror(path), 1;
    uint64_t size = (uint64_t)st.st_size, sum = 0;
    if (!strcmp(mode, "views")) {
        const volatile uint8_t *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return perror(path), 1;
        for (uint64_t at = 0; at < size; at += 4096)
            sum += p[at];
        munmap((void *)p, (size_t)size);
    } else {
        enum { PIECE = 4 << 20 };
        size_t pieces = (size_t)((size + PIECE - 1) / PIECE);
        void **bufs = calloc(pieces ? pieces : 1, sizeof *bufs);
        for (size_t i = 0; bufs && i < pieces; i++) {
            size_t n = size - (uint64_t)i * PIECE < PIECE ? (size_t)(size - (uint64_t)i * PIECE)
                                                          : PIECE;
            bufs[i] = malloc(n);
            if (!bufs[i] || read(fd, bufs[i], n) != (ssize_t)n)
                return perror(path), 1;
        }
        double t = bench_now() - t0;
        for (size_t i = 0; bufs && i < pieces; i++)
            free(bufs[i]);
        free(bufs);
        close(fd);
        printf("RESULT bench=rawread mode=copy file=%s bytes=%llu s=%.4f\n", path,
               (unsigned long long)size, t);
        return 0;
    }
    close(fd);
    printf("RESULT bench=rawread mode=views file=%s bytes=%llu s=%.4f (check %llu)\n", path,
           (unsigned long long)size, bench_now() - t0, (unsigned long long)(sum & 1));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "open"))
        return bench_open(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 101);
    if (argc >= 3 && !strcmp(argv[1], "readall")) {
        enum readall_mode mode = READ_COPY;
        if (argc > 4 && !strcmp(argv[4], "views"))
            mode = READ_VIEWS;
        else if (argc > 4 && !strcmp(argv[4], "copy2"))
            mode = READ_COPY2;
        else if (argc > 4 && strcmp(argv[4], "copy"))
            return fprintf(stderr, "bench_formats: readall mode is copy, views or copy2\n"), 2;
        return bench_readall(argv[2], argc > 3 ? atoi(argv[3]) : 5, mode);
    }
    if (argc == 4 && !strcmp(argv[1], "rawread") &&
        (!strcmp(argv[3], "copy") || !strcmp(argv[3], "views")))
        return raw_read(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "mmapwrite"))
        return mmap_write(argv[2], argv[3]);
    fprintf(stderr, "usage: bench_formats open FILE NAME [REPS] | readall FILE [RUNS] [copy|views|copy2] | "
                    "rawread FILE copy|views | mmapwrite IN OUT\n");
    return 2;
}
