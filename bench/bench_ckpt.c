/* bench_ckpt.c -- what an async checkpoint costs the training loop.
 *
 * Same bytes, same run, medians of --runs:
 *   memcpy     copying the checkpoint's tensors once (the floor for any save
 *              that lets the caller reuse its buffers at once)
 *   blocking   cairn_ckpt_step, synchronous and durable (write + fsync + rename)
 *   async      the time cairn_ckpt_step blocks with CAIRN_CKPT_ASYNC (the stall)
 * and the step-time inflation of a compute loop while a background save runs:
 *   start      the first 21 steps after cairn_ckpt_step returned (the
 *              measure of issue 18: 1.82x before the writer ran at low
 *              priority)
 *   whole      every step until the background save is durable (steps run
 *              for the median duration of a background save, then wait)
 * With --busy N, N processes spinning at normal priority stand in for the
 * other programs of a shared machine, for the step alone and during the
 * save alike (on 2 cores, --busy 1 leaves no core free).
 *
 * usage: bench_ckpt [--mib N] [--runs N] [--dir DIR] [--busy N] */
#define _GNU_SOURCE
#include <cairn.h>

#include "bench_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { TENSORS = 64 };

/* Writes and deletes a scratch file of `bytes`, untimed, before each timed
 * save: page cache built on memory the VM just gave back fills far slower,
 * and every contender gets the same treatment. */
static void warm_page_cache(const char *dir, size_t bytes, const void *src)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/scratch.bin", dir);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return;
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < (64u << 20) ? bytes - done : (64u << 20);
        fwrite(src, 1, n, fp);
        done += n;
    }
    fclose(fp);
    unlink(path);
}

static void die(const char *what, const cairn_error *err)
{
    fprintf(stderr, "bench_ckpt: %s: %s\n", what, err->message);
    exit(1);
}

/* A compute loop standing in for training steps: a few passes of
 * multiply-adds over a 32 MiB working set. Returns seconds per step. */
static double compute_step(float *work, size_t n)
{
    double t0 = bench_now();
    for (int pass = 0; pass < 4; pass++)
        for (size_t i = 0; i < n; i++)
            work[i] = work[i] * 0.999f + 0.001f;
    return bench_now() - t0;
}

enum { MAX_STEPS = 4096 };

/* Median seconds of compute steps run for `span` seconds (at least 21). */
static double steps_for(float *work, size_t wn, double span, double *steps, int *n)
{
    double t0 = bench_now();
    *n = 0;
    while (*n < MAX_STEPS && (*n < 21 || bench_now() - t0 < span))
        steps[(*n)++] = compute_step(work, wn);
    double copy[MAX_STEPS];
    memcpy(copy, steps, (size_t)*n * sizeof *copy);
    return bench_median_sort(copy, *n);
}

/* Inflation of the compute step while the async manager saves `parts`,
 * against the same step alone just before (the machine's other load
 * drifts; a ratio per run follows it): the first 21 steps (*start) and
 * every step for `span` seconds, the length of a background save (*whole);
 * *tail is how long the save still took after that (at low priority, the
 * writer may yield more than it did alone). */
static void inflation_during_save(cairn_ckpt *ma, const cairn_model_parts *parts, float *work,
                                  size_t wn, double span, double *alone, double *start,
                                  double *whole, double *tail)
{
    static double steps[MAX_STEPS];
    int n;
    cairn_error err;
    *alone = steps_for(work, wn, span, steps, &n);
    if (cairn_ckpt_step(ma, 1000, 0, NULL, parts, CAIRN_STEP_FORCE, NULL, &err))
        die("async save", &err);
    double during = steps_for(work, wn, span, steps, &n);
    double t0 = bench_now();
    if (cairn_ckpt_wait(ma, &err))
        die("async wait", &err);
    *tail = bench_now() - t0;
    *start = bench_median_sort(steps, 21) / *alone;
    *whole = during / *alone;
}

static void stop_spinners(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
}

int main(int argc, char **argv)
{
    size_t mib = 1024;
    int runs = 5, busy = 0;
    const char *dir = "/tmp/cairn-bench-ckpt";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib"))
            mib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--busy"))
            busy = atoi(argv[i + 1]);
    }
    if (runs < 1 || runs > 100 || mib < TENSORS / 16 || busy < 0 || busy > 16) {
        fprintf(stderr, "usage: bench_ckpt [--mib N>=4] [--runs 1..100] [--dir DIR] "
                        "[--busy 0..16]\n");
        return 2;
    }
    size_t total = mib << 20, each = total / TENSORS, elems = each / sizeof(float);
    float **t = malloc(TENSORS * sizeof *t);
    float *copy = malloc(total);
    cairn_params *p = cairn_params_new();
    cairn_error err;
    for (int k = 0; k < TENSORS; k++) {
        t[k] = malloc(each);
        for (size_t i = 0; i < elems; i++)
            t[k][i] = (float)((i * 2654435761u + (size_t)k) % 1000) * 0.001f;
        char name[32];
        uint64_t d = elems;
        snprintf(name, sizeof name, "layer%02d.weight", k);
        if (cairn_params_add(p, name, CAIRN_F32, 1, &d, t[k], &err) != CAIRN_OK)
            die("params", &err);
    }
    memset(copy, 1, total); /* fault the destination in: memcpy's floor, not page faults */
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = "bench", .params = p};
    char sync_dir[4096], async_dir[4096], cmd[9000];
    snprintf(sync_dir, sizeof sync_dir, "%s/sync", dir);
    snprintf(async_dir, sizeof async_dir, "%s/async", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
        return 3;
    cairn_ckpt_opts so = {.struct_size = sizeof so, .dirname = sync_dir, .keep_last = 1};
    cairn_ckpt_opts ao = {.struct_size = sizeof ao, .dirname = async_dir, .keep_last = 1,
                          .flags = CAIRN_CKPT_ASYNC};
    cairn_ckpt *ms, *ma;
    if (cairn_ckpt_open(&so, &ms, &err) || cairn_ckpt_open(&ao, &ma, &err))
        die("open", &err);
    /* warm-up: the async manager allocates its staging memory once */
    if (cairn_ckpt_step(ma, 0, 0, NULL, &parts, 0, NULL, &err) || cairn_ckpt_wait(ma, &err))
        die("warm-up", &err);

    double *m_copy = calloc((size_t)runs, sizeof(double)), *m_block = calloc((size_t)runs, sizeof(double));
    double *m_stall = calloc((size_t)runs, sizeof(double)), *m_async_total = calloc((size_t)runs, sizeof(double));
    for (int r = 0; r < runs; r++) {
        double t0 = bench_now();
        for (int k = 0; k < TENSORS; k++)
            memcpy((char *)copy + (size_t)k * each, t[k], each);
        m_copy[r] = bench_now() - t0;

        warm_page_cache(dir, total, copy);
        t0 = bench_now();
        if (cairn_ckpt_step(ms, (uint64_t)r + 1, 0, NULL, &parts, 0, NULL, &err))
            die("blocking save", &err);
        m_block[r] = bench_now() - t0;

        warm_page_cache(dir, total, copy);
        t0 = bench_now();
        if (cairn_ckpt_step(ma, (uint64_t)r + 1, 0, NULL, &parts, 0, NULL, &err))
            die("async save", &err);
        m_stall[r] = bench_now() - t0;
        if (cairn_ckpt_wait(ma, &err))
            die("async wait", &err);
        m_async_total[r] = bench_now() - t0;
    }

    double c = bench_median_sort(m_copy, runs), b = bench_median_sort(m_block, runs), s = bench_median_sort(m_stall, runs);
    double at = bench_median_sort(m_async_total, runs);

    /* step-time inflation: the same compute step alone, then while a
     * background save of the whole checkpoint is in flight (--runs times) */
    size_t wn = (32u << 20) / sizeof(float);
    float *work = calloc(wn, sizeof(float));
    pid_t spinners[16];
    for (int i = 0; i < busy; i++)
        if ((spinners[i] = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
            for (volatile unsigned long x = 0;; x++) {
            }
        }
    double *m_alone = calloc((size_t)runs, sizeof(double)), *m_start = calloc((size_t)runs, sizeof(double)),
           *m_whole = calloc((size_t)runs, sizeof(double)), *m_tail = calloc((size_t)runs, sizeof(double));
    for (int r = 0; r < runs; r++) {
        warm_page_cache(dir, total, copy);
        inflation_during_save(ma, &parts, work, wn, s > at ? 0 : at - s, &m_alone[r], &m_start[r],
                              &m_whole[r], &m_tail[r]);
    }
    stop_spinners(spinners, busy);
    double sa = bench_median_sort(m_alone, runs), ri = bench_median_sort(m_start, runs);
    double rw = bench_median_sort(m_whole, runs), tail = bench_median_sort(m_tail, runs);
    double gib = (double)total / (1u << 30);
    printf("checkpoint of %zu MiB in %d tensors, medians of %d runs\n", mib, TENSORS, runs);
    printf("  memcpy of the tensors          %8.3f s  %6.2f GiB/s\n", c, gib / c);
    printf("  blocking save (durable)        %8.3f s  %6.2f GiB/s\n", b, gib / b);
    printf("  async save: loop stalls for    %8.3f s  (background write done after %.3f s)\n", s, at);
    printf("  stall / memcpy                 %8.2f x  (target <= 1.2)\n", s / c);
    printf("  stall / blocking save          %8.2f x  (target <= 0.25)\n", s / b);
    printf("  compute step alone             %8.4f s%s\n", sa,
           busy ? "  (with --busy spinners)" : "");
    printf("  compute step, first 21 steps   %8.2f x  (inflation, target <= 1.2)\n", ri);
    printf("  compute step, whole save       %8.2f x  (inflation, target <= 1.2; the save "
           "then took %.3f s more)\n", rw, tail);
    printf("RESULT bench=ckpt mib=%zu busy=%d memcpy_s=%.4f blocking_s=%.4f stall_s=%.4f "
           "stall_over_memcpy=%.3f stall_over_blocking=%.3f step_inflation=%.3f "
           "step_inflation_whole=%.3f save_tail_s=%.3f\n",
           mib, busy, c, b, s, s / c, s / b, ri, rw, tail);
    cairn_ckpt_close(ms, &err);
    cairn_ckpt_close(ma, &err);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_ckpt: could not remove %s\n", dir);
    return 0;
}
