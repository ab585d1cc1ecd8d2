/* bench_mpi.c -- overheads of distributed checkpoints (docs/DISTRIBUTED.md);
 * on 2 cores there is no speed-up to show, so every number is a ratio to
 * the raw limit or a fixed cost.
 *
 *   mpirun -np 4 bench_mpi save DIR MIB RUNS [nosync]
 *       each rank saves MIB MiB (its rows of one F32 matrix) with
 *       cairn_mpi_save vs write() + fsync of the same bytes to its own file;
 *       prints both medians, the ratio, and the commit: from the last rank
 *       file durable to the checkpoint durable and visible (agreement,
 *       no-replace rename, parent fsync), with its breakdown and the
 *       manifest steps overlapped with the rank files' fsyncs; nosync:
 *       neither side fsyncs (the commit's own cost without the disk's);
 *   mpirun -np 4 bench_mpi save s3://BUCKET/PREFIX MIB RUNS
 *       on an object store: the commit from the last rank object complete
 *       to the manifest created (agreement, create-only PUT), and the
 *       whole save (each run's checkpoint removed after it);
 *   mpirun -np 3 bench_mpi load DIR MIB RUNS
 *       the last save read back on 3 ranks (row blocks that straddle the
 *       4 saved pieces) with cairn_tensor_read_box vs pread of the same
 *       bytes from the raw files (warm cache for both);
 *   bench_mpi manifest DIR RANKS TENSORS
 *       a synthetic manifest of RANKS x TENSORS boxes: open (parse and check
 *       every table) and plan one rank's load of every tensor.
 */
#include "archive/dist.h"
#include "bench_util.h"
#include "mpi/mpi_internal.h"

#include <cairn_mpi.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SAVE_RANKS 4
#define COLS 1024
#define NBRK 9 /* the commit's breakdown, per run */

static int me, size;

/* CPU seconds of this process: on a shared machine, wall time also counts
 * other people's work. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds from a common barrier until the slowest rank is done. */
static double span(double t0)
{
    double mine = bench_now() - t0, worst;
    MPI_Allreduce(&mine, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

static void raw_path(char *out, size_t n, const char *dir, int r)
{
    snprintf(out, n, "%s/raw-%d.bin", dir, r);
}

static void fill(float *v, size_t n, uint64_t first)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((first + i) % 1000003);
}

/* One rank's bytes written raw (write(), fsync) to its own file: seconds
 * from a common barrier until the slowest rank is done. */
static double raw_save(const char *dir, const float *v, size_t bytes, int sync)
{
    char path[4200];
    raw_path(path, sizeof path, dir, me);
    unlink(path);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t done = 0;
    while (fd >= 0 && done < bytes) {
        ssize_t w = write(fd, (const char *)v + done, bytes - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (fd >= 0) {
        if (sync)
            fsync(fd);
        close(fd);
    }
    return span(t0);
}

/* One save of `v` (this rank's rows) as checkpoint `ck`, through
 * cairn_mpi_save_commit's steps so that the finish reports its times:
 * seconds from a common barrier until the slowest rank is done (negative
 * on failure). */
static double one_save(const char *ck, const float *v, const uint64_t *dims, uint64_t rows,
                       int sync, cairn__mpi_times *tm)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    cairn_mpi_save *s;
    cairn_error err;
    uint64_t off[2] = {rows * (uint64_t)me, 0}, ext[2] = {rows, COLS};
    cairn_write_opts wo = {.struct_size = sizeof wo, .threads = 1,
                           .flags = sync ? 0 : CAIRN_WRITE_NO_SYNC};
    cairn_status st = cairn_mpi_save_begin(MPI_COMM_WORLD, ck, &wo, &s, &err);
    if (st == CAIRN_OK)
        st = cairn_mpi_save_add(s, "w", CAIRN_F32, 2, dims, off, ext, v, &err);
    if (st == CAIRN_OK)
        st = cairn__mpi_save_plan(s, &err);
    if (st == CAIRN_OK) {
        cairn__mpi_save_write(s, 0);
        st = cairn__mpi_save_finish(s, tm, &err);
    }
    double t = span(t0);
    if (st != CAIRN_OK) {
        fprintf(stderr, "rank %d: save %s: %s\n", me, ck, err.message);
        return -1;
    }
    return t;
}

/* Saves on an object store (URL a key prefix): no raw baseline, the
 * commit from the last rank object complete to the manifest created. */
static int do_save_s3(const char *url, uint64_t mib, int runs)
{
    uint64_t rows = (mib << 20) / (COLS * 4), dims[2] = {rows * (uint64_t)size, COLS};
    size_t n = (size_t)(rows * COLS);
    float *v = malloc(n * 4);
    fill(v, n, (uint64_t)me * n);
    double *k = calloc((size_t)runs * 4, sizeof *k), *col = calloc((size_t)runs, sizeof *col);
    char tag[17];
    cairn_error err;
    if (cairn__mpi_random_hex(url, tag, &err) != CAIRN_OK)
        return 1;
    MPI_Bcast(tag, sizeof tag, MPI_CHAR, 0, MPI_COMM_WORLD);
    for (int r = 0; r < runs; r++) {
        char ck[4200];
        snprintf(ck, sizeof ck, "%s/%s-%d", url, tag, r);
        cairn__mpi_times tm = {0};
        double t = one_save(ck, v, dims, rows, 1, &tm);
        if (t < 0)
            return 1;
        double complete_at; /* the last rank object's upload completed */
        MPI_Allreduce(&tm.written, &complete_at, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (me == 0) {
            k[4 * r] = tm.parent_synced - complete_at;
            k[4 * r + 1] = tm.agreed - complete_at;
            k[4 * r + 2] = tm.parent_synced - tm.agreed;
            k[4 * r + 3] = t;
            cairn__mpi_remove_dir(ck);
        }
    }
    if (me == 0) {
        double m[4];
        for (int j = 0; j < 4; j++) {
            for (int r = 0; r < runs; r++)
                col[r] = k[4 * r + j];
            m[j] = bench_median_sort(col, runs) * 1e3;
        }
        printf("RESULT bench=mpi_s3_commit ranks=%d mib_per_rank=%llu commit_ms=%.2f (from the "
               "last rank object complete to the manifest created) agree_ms=%.2f "
               "manifest_put_ms=%.2f save_ms=%.1f runs=%d\n", size, (unsigned long long)mib,
               m[0], m[1], m[2], m[3], runs);
    }
    free(v);
    free(k);
    free(col);
    return 0;
}

static int do_save(const char *dir, uint64_t mib, int runs, int sync)
{
    uint64_t rows = (mib << 20) / (COLS * 4), dims[2] = {rows * (uint64_t)size, COLS};
    size_t n = (size_t)(rows * COLS);
    float *v = malloc(n * 4);
    fill(v, n, (uint64_t)me * n);
    double *traw = calloc((size_t)runs, sizeof *traw), *tcairn = calloc((size_t)runs, sizeof *traw),
           *brk = calloc((size_t)runs * NBRK, sizeof *brk), *col = calloc((size_t)runs, sizeof *col);
    for (int run = 0; run < runs * 2; run++) {
        /* raw first on even runs, cairn first on odd ones */
        int r = run / 2;
        if ((run & 1) == (r & 1)) {
            traw[r] = raw_save(dir, v, n * 4, sync);
            continue;
        }
        char ck[4200];
        snprintf(ck, sizeof ck, "%s/ckpt-%d", dir, r);
        if (me == 0 && r > 0) {
            char old[4200];
            snprintf(old, sizeof old, "%s/ckpt-%d", dir, r - 1);
            cairn__mpi_remove_dir(old);
        }
        cairn__mpi_times tm = {0};
        if ((tcairn[r] = one_save(ck, v, dims, rows, sync, &tm)) < 0)
            return 1;
        /* The commit: from the last rank file durable (every rank's clock
         * is this machine's CLOCK_MONOTONIC) to the checkpoint durable and
         * visible under its name on rank 0. */
        double durable_at;
        MPI_Allreduce(&tm.file_synced, &durable_at, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (me == 0) {
            double *b = brk + (size_t)r * NBRK;
            b[0] = tm.parent_synced - durable_at;
            b[1] = tm.agreed - durable_at;
            b[2] = tm.renamed - tm.agreed;
            b[3] = tm.parent_synced - tm.renamed;
            b[4] = tm.manifest_written - tm.gathered;
            b[5] = tm.manifest_synced - tm.manifest_written;
            b[6] = tm.staging_synced - tm.manifest_synced;
            b[7] = tm.staging_synced - durable_at; /* < 0: hidden behind the rank files */
            b[8] = tm.result - durable_at;
        }
    }
    for (int run = 0; run < runs; run++)
        col[run] = tcairn[run] / traw[run];
    double paired = bench_median_sort(col, runs);
    if (me == 0) {
        double r = bench_median_sort(traw, runs), c = bench_median_sort(tcairn, runs), k[NBRK];
        for (int j = 0; j < NBRK; j++) {
            for (int run = 0; run < runs; run++)
                col[run] = brk[(size_t)run * NBRK + j];
            k[j] = bench_median_sort(col, runs) * 1e3;
        }
        const char *mode = sync ? "durable" : "nosync";
        printf("RESULT bench=mpi_save mode=%s ranks=%d mib_per_rank=%llu raw_s=%.4f "
               "cairn_s=%.4f ratio=%.3f paired_ratio=%.3f (target <= 1.10; paired: the "
               "median of each run's cairn/raw, the order alternating)\n", mode, size,
               (unsigned long long)mib, r, c, c / r, paired);
        printf("RESULT bench=mpi_commit mode=%s ranks=%d commit_ms=%.2f (target <= 5; from "
               "the last rank file durable to the checkpoint durable and visible) "
               "agree_ms=%.2f rename_ms=%.2f parent_fsync_ms=%.2f all_ranks_return_ms=%.2f\n",
               mode, size, k[0], k[1], k[2], k[3], k[8]);
        printf("RESULT bench=mpi_commit_overlap mode=%s ranks=%d manifest_write_ms=%.2f "
               "manifest_fsync_ms=%.2f staging_dir_fsync_ms=%.2f "
               "staging_synced_after_files_ms=%.2f (negative: hidden behind the rank files' "
               "fsyncs)\n", mode, size, k[4], k[5], k[6], k[7]);
    }
    free(v);
    free(traw);
    free(tcairn);
    free(brk);
    free(col);
    return 0;
}

/* Rows [lo, hi) of the 4 raw files (`rows` each) read with pread into a. */
static double raw_load(const char *dir, float *a, uint64_t lo, uint64_t hi, uint64_t rows)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    for (uint64_t r = lo; r < hi;) {
        uint64_t file = r / rows, end = (file + 1) * rows < hi ? (file + 1) * rows : hi;
        char path[4200];
        raw_path(path, sizeof path, dir, (int)file);
        int fd = open(path, O_RDONLY);
        size_t want = (size_t)((end - r) * COLS * 4), got = 0;
        while (fd >= 0 && got < want) {
            ssize_t k = pread(fd, (char *)a + (r - lo) * COLS * 4 + got, want - got,
                              (off_t)((r - file * rows) * COLS * 4 + got));
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (fd >= 0)
            close(fd);
        r = end;
    }
    return span(t0);
}

/* The same rows as a box of checkpoint `ck` (cairn_mpi_open and
 * cairn_tensor_read_box); a negative time on failure. */
static double cairn_load(const char *ck, float *b, uint64_t lo, uint64_t hi)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    cairn_file *f;
    cairn_error err;
    cairn_open_opts oo = {.struct_size = sizeof oo, .threads = 1};
    uint64_t off[2] = {lo, 0}, ext[2] = {hi - lo, COLS};
    size_t bytes = (size_t)((hi - lo) * COLS * 4);
    if (cairn_mpi_open(MPI_COMM_WORLD, ck, &oo, &f, &err) != CAIRN_OK ||
        cairn_tensor_read_box(f, 0, off, ext, CAIRN_F32, b, bytes, 0, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: load: %s\n", me, err.message);
        return -1;
    }
    cairn_file_close(f);
    return span(t0);
}

static int do_load(const char *dir, uint64_t mib, int runs)
{
    uint64_t rows = (mib << 20) / (COLS * 4), total = rows * SAVE_RANKS;
    uint64_t lo = total * (uint64_t)me / (uint64_t)size, hi = total * (uint64_t)(me + 1) / (uint64_t)size;
    size_t n = (size_t)((hi - lo) * COLS);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    double *traw = calloc((size_t)runs, sizeof *traw), *tcairn = calloc((size_t)runs, sizeof *traw),
           *pair = calloc((size_t)runs, sizeof *pair);
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/ckpt-%d", dir, runs - 1);
    int bad = 0;
    for (int run = 0; run < runs + 1; run++) { /* run 0 warms the cache */
        double tr, tc;
        if (run & 1) { /* the order alternates */
            tc = cairn_load(ck, b, lo, hi);
            tr = raw_load(dir, a, lo, hi, rows);
        } else {
            tr = raw_load(dir, a, lo, hi, rows);
            tc = cairn_load(ck, b, lo, hi);
        }
        if (tc < 0)
            return 1;
        bad += memcmp(a, b, n * 4) != 0;
        if (run > 0) {
            traw[run - 1] = tr;
            tcairn[run - 1] = tc;
            pair[run - 1] = tc / tr;
        }
    }
    if (me == 0) {
        double r = bench_median_sort(traw, runs), c = bench_median_sort(tcairn, runs),
               p = bench_median_sort(pair, runs);
        printf("RESULT bench=mpi_load from=%d to=%d mib_total=%llu raw_s=%.4f cairn_s=%.4f "
               "ratio=%.3f paired_ratio=%.3f (target <= 1.2)%s\n", SAVE_RANKS, size,
               (unsigned long long)(mib * SAVE_RANKS), r, c, c / r, p,
               bad ? " MISMATCH" : "");
    }
    free(a);
    free(b);
    free(traw);
    free(tcairn);
    free(pair);
    return bad != 0;
}

/* A manifest of `ranks` x `tensors` boxes (each tensor [8 * ranks, 64] F32,
 * 8 rows per rank) written straight, with no rank files. */
static int write_synthetic(const char *dir, uint64_t ranks, uint64_t tensors)
{
    mkdir(dir, 0777);
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.cairn", dir);
    uint64_t *files = calloc((size_t)ranks * 2, 8), *trows = calloc((size_t)tensors * 11, 8);
    uint64_t nwords = tensors * ranks * 5;
    uint64_t *boxes = malloc((size_t)nwords * 8);
    char *names = malloc((size_t)tensors * 32);
    size_t nlen = 0;
    uint64_t *w = boxes;
    for (uint64_t t = 0; t < tensors; t++) {
        nlen += (size_t)sprintf(names + nlen, "layer%06llu.weight", (unsigned long long)t) + 1;
        uint64_t row[11] = {CAIRN_F32, 2, ranks, 8 * ranks, 64};
        memcpy(trows + 11 * t, row, sizeof row);
        for (uint64_t r = 0; r < ranks; r++) {
            uint64_t box[5] = {r, 8 * r, 0, 8, 64};
            memcpy(w, box, sizeof box);
            w += 5;
        }
    }
    cairn_value *tree = cairn_value_map();
    cairn_value_set(tree, "cairn_dist", cairn_value_int(1), NULL);
    cairn_value_set(tree, "ranks", cairn_value_int((int64_t)ranks), NULL);
    cairn_value_set(tree, "metadata", cairn_value_map(), NULL);
    cairn_write_opts wo = {.struct_size = sizeof wo, .flags = CAIRN_WRITE_NO_SYNC};
    cairn_writer *wr;
    uint64_t df[2] = {ranks, 2}, dn = nlen, dt[2] = {tensors, 11}, db = nwords;
    int ok = cairn_writer_open_path(path, &wo, &wr, NULL) == CAIRN_OK &&
             cairn_writer_set_metadata(wr, tree, NULL) == CAIRN_OK &&
             cairn_writer_add(wr, "dist.files", CAIRN_U64, 2, df, files, NULL) == CAIRN_OK &&
             cairn_writer_add(wr, "dist.names", CAIRN_U8, 1, &dn, names, NULL) == CAIRN_OK &&
             cairn_writer_add(wr, "dist.tensors", CAIRN_U64, 2, dt, trows, NULL) == CAIRN_OK &&
             cairn_writer_add(wr, "dist.boxes", CAIRN_U64, 1, &db, boxes, NULL) == CAIRN_OK &&
             cairn_writer_commit(wr, NULL) == CAIRN_OK;
    cairn_value_free(tree);
    free(files);
    free(trows);
    free(boxes);
    free(names);
    return ok;
}

static int do_manifest(const char *dir, uint64_t ranks, uint64_t tensors)
{
    if (!write_synthetic(dir, ranks, tensors)) {
        fprintf(stderr, "cannot write the synthetic manifest\n");
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.cairn", dir);
    struct stat st;
    stat(path, &st);
    double t[5], cpu[5];
    size_t pieces = 0;
    for (int run = 0; run < 5; run++) {
        double t0 = bench_now(), c0 = cpu_now();
        cairn_file *mf;
        cairn__dist_manifest m;
        cairn_error err;
        if (cairn_file_open(path, NULL, &mf, &err) != CAIRN_OK ||
            cairn__dist_manifest_parse(mf, path, &m, &err) != CAIRN_OK) {
            fprintf(stderr, "open: %s\n", err.message);
            return 1;
        }
        /* one rank of a 1,000-rank load whose rows are split 3 ways finer */
        pieces = 0;
        for (uint64_t i = 0; i < m.ntensors; i++) {
            uint64_t rows = m.tensors[i].dims[0], r = ranks / 2;
            uint64_t off[2] = {rows * r / ranks + 3, 0}, ext[2] = {rows / ranks, 64};
            cairn__dist_piece *p;
            size_t n;
            if (cairn__dist_plan(&m, path, i, off, ext, &p, &n, &err) != CAIRN_OK) {
                fprintf(stderr, "plan: %s\n", err.message);
                return 1;
            }
            pieces += n;
            free(p);
        }
        cairn__dist_manifest_free(&m);
        cairn_file_close(mf); /* the tables were views into it */
        t[run] = bench_now() - t0;
        cpu[run] = cpu_now() - c0;
    }
    printf("RESULT bench=mpi_manifest ranks=%llu tensors=%llu manifest_mib=%.1f "
           "open_and_plan_ms=%.1f cpu_ms=%.1f pieces=%zu (target <= 50)\n",
           (unsigned long long)ranks, (unsigned long long)tensors, st.st_size / 1048576.0,
           bench_median_sort(t, 5) * 1e3, bench_median_sort(cpu, 5) * 1e3, pieces);
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rc = 2;
    if (argc == 5 && !strcmp(argv[1], "save") && cairn_path_is_url(argv[2]))
        rc = do_save_s3(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]));
    else if ((argc == 5 || argc == 6) && !strcmp(argv[1], "save"))
        rc = do_save(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]),
                     !(argc == 6 && !strcmp(argv[5], "nosync")));
    else if (argc == 5 && !strcmp(argv[1], "load"))
        rc = do_load(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]));
    else if (argc == 5 && !strcmp(argv[1], "manifest"))
        rc = me == 0 ? do_manifest(argv[2], strtoull(argv[3], NULL, 10),
                                   strtoull(argv[4], NULL, 10)) : 0;
    else if (me == 0)
        fprintf(stderr, "usage: bench_mpi save DIR MIB RUNS [nosync] | load DIR MIB RUNS | "
                "manifest DIR RANKS TENSORS\n");
    MPI_Finalize();
    return rc;
}
