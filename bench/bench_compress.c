/* bench_compress.c -- compressed native tensors: ratio, save and read speed
 * per codec on trained-like float32 weights, and the bytes a read of one
 * tensor touches in a compressed 1 GiB file. Prints RESULT lines and a
 * summary against the targets of the compression issue. */
#define _GNU_SOURCE
#include "cairn.h"

#include "bench_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_compress: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* CPU seconds of the whole process (all threads): on a shared machine the
 * wall clock also counts other people's work, the CPU time does not. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Trained-like weights: N(0, 0.02), the usual init scale of transformer
 * layers (splitmix64 + Box-Muller, deterministic). */
static void gen_normal(float *w, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        uint64_t z[2];
        for (int k = 0; k < 2; k++) {
            uint64_t x = (s += 0x9E3779B97F4A7C15ull);
            x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
            x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
            z[k] = x ^ (x >> 31);
        }
        double u1 = ((double)(z[0] >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(z[1] >> 11) / 9007199254740992.0;
        double r = sqrt(-2 * log(u1)) * 0.02;
        w[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n)
            w[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

/* Float32 that holds bf16 values (a bf16 checkpoint upcast): the low 16
 * bits are zero after rounding to nearest even. */
static void to_bf16_values(const float *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &src[i], 4);
        x += 0x7FFF + ((x >> 16) & 1);
        x &= 0xFFFF0000u;
        memcpy(&dst[i], &x, 4);
    }
}

typedef struct config {
    const char *name;
    uint32_t codec;
    int32_t level;
    uint32_t filter;
    int slow; /* measured on a smaller slice */
} config;

static const config configs[] = {
    {"none", CAIRN_CODEC_NONE, 0, 0, 0},
    {"zstd:1", CAIRN_CODEC_ZSTD, 1, 0, 0},
    {"zstd:3", CAIRN_CODEC_ZSTD, 3, 0, 0},
    {"zstd:1+shuffle", CAIRN_CODEC_ZSTD, 1, CAIRN_FILTER_SHUFFLE, 0},
    {"zstd:3+shuffle", CAIRN_CODEC_ZSTD, 3, CAIRN_FILTER_SHUFFLE, 0},
    {"zstd:9+shuffle", CAIRN_CODEC_ZSTD, 9, CAIRN_FILTER_SHUFFLE, 1},
    {"lz4+shuffle", CAIRN_CODEC_LZ4, 1, CAIRN_FILTER_SHUFFLE, 0},
    {"lz4hc:9+shuffle", CAIRN_CODEC_LZ4, 9, CAIRN_FILTER_SHUFFLE, 1},
    {"zlib:1+shuffle", CAIRN_CODEC_ZLIB, 1, CAIRN_FILTER_SHUFFLE, 1},
    {"bz2:9+shuffle", CAIRN_CODEC_BZ2, 9, CAIRN_FILTER_SHUFFLE, 1},
};

typedef struct result {
    double ratio, save_gbs, read_gbs;
    double save_cpu_gbs, read_cpu_gbs; /* raw bytes per (CPU seconds / threads) */
} result;

/* Saves `w` (bytes) with one config to DIR/bc.cairn `runs` times (each into
 * the page cache, no fsync: the codec's speed, not the disk's), then reads
 * it back `runs` times from the mapped file. Medians. */
static result measure(const char *dir, const char *label, const config *c, const float *w,
                      size_t bytes, unsigned threads, int runs)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bc.cairn", dir);
    uint64_t n = bytes / 4;
    double save[16], read[16], save_cpu[16], read_cpu[16];
    result r = {0};
    cairn_error err;
    for (int k = 0; k < runs; k++) {
        cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                              .codec = c->codec, .level = c->level, .filter = c->filter,
                              .threads = threads};
        cairn_writer *wr;
        if (cairn_writer_open_path(path, &o, &wr, &err) != CAIRN_OK)
            die("%s", err.message);
        double t0 = bench_now(), c0 = cpu_now();
        if (cairn_writer_add(wr, "w", CAIRN_F32, 1, &n, w, &err) != CAIRN_OK)
            die("%s", err.message);
        save[k] = bench_now() - t0;
        save_cpu[k] = cpu_now() - c0;
        if (cairn_writer_commit(wr, &err) != CAIRN_OK)
            die("%s", err.message);
    }
    float *dst = malloc(bytes);
    cairn_open_opts oo = {.struct_size = sizeof oo, .threads = threads};
    cairn_file *f;
    if (!dst || cairn_file_open(path, &oo, &f, &err) != CAIRN_OK)
        die("open: %s", err.message);
    cairn_tensor_info t;
    cairn_tensor_info_at(f, 0, &t, &err);
    r.ratio = (double)t.raw_size / (double)t.stored_size;
    memset(dst, 0, bytes);
    for (int k = 0; k < runs; k++) {
        double t0 = bench_now(), c0 = cpu_now();
        if (cairn_tensor_read(f, 0, CAIRN_F32, dst, bytes, 0, &err) != CAIRN_OK)
            die("read: %s", err.message);
        read[k] = bench_now() - t0;
        read_cpu[k] = cpu_now() - c0;
    }
    if (memcmp(dst, w, bytes) != 0)
        die("%s: read back differs", c->name);
    cairn_file_close(f);
    free(dst);
    unlink(path);
    r.save_gbs = (double)bytes / bench_median_sort(save, runs) / 1e9;
    r.read_gbs = (double)bytes / bench_median_sort(read, runs) / 1e9;
    r.save_cpu_gbs = (double)bytes / (bench_median_sort(save_cpu, runs) / threads) / 1e9;
    r.read_cpu_gbs = (double)bytes / (bench_median_sort(read_cpu, runs) / threads) / 1e9;
    printf("  %-11s %-16s %6.0f MiB  ratio %6.3f  save %6.2f GB/s (cpu %6.2f)  read %6.2f GB/s "
           "(cpu %6.2f)\n", label, c->name, (double)bytes / 1048576, r.ratio, r.save_gbs,
           r.save_cpu_gbs, r.read_gbs, r.read_cpu_gbs);
    printf("RESULT workload=compress op=codec data=%s config=%s threads=%u mib=%.0f ratio=%.4f "
           "save_gbs=%.3f read_gbs=%.3f save_cpu_gbs=%.3f read_cpu_gbs=%.3f\n", label, c->name,
           threads, (double)bytes / 1048576, r.ratio, r.save_gbs, r.read_gbs, r.save_cpu_gbs,
           r.read_cpu_gbs);
    fflush(stdout);
    return r;
}

/* rchar of /proc/self/io: bytes this process read through read/pread
 * (reading /proc/self/io itself counts too: see rchar_cost). */
static unsigned long long rchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %llu", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

typedef struct access_result {
    unsigned long long file, index_read, tensor_read, tensor_stored, range_read;
} access_result;

/* A compressed 1 GiB file of 256 tensors of 4 MiB: how many bytes do an
 * open, a read of one tensor and a read of 1000 elements pull from it? */
static access_result random_access(const char *dir, const float *w, size_t w_bytes,
                                   unsigned threads)
{
    enum { TENSORS = 256, TENSOR_BYTES = 4 << 20 };
    char path[4096];
    snprintf(path, sizeof path, "%s/bc-1g.cairn", dir);
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                          .codec = CAIRN_CODEC_ZSTD, .level = 3, .filter = CAIRN_FILTER_SHUFFLE,
                          .threads = threads};
    cairn_writer *wr;
    cairn_error err;
    if (cairn_writer_open_path(path, &o, &wr, &err) != CAIRN_OK)
        die("%s", err.message);
    uint64_t dims[2] = {1024, 1024};
    size_t slices = w_bytes / TENSOR_BYTES;
    for (int i = 0; i < TENSORS; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%03d.weight", i);
        const float *src = w + (size_t)(i % slices) * (TENSOR_BYTES / 4);
        if (cairn_writer_add(wr, name, CAIRN_F32, 2, dims, src, &err) != CAIRN_OK)
            die("%s", err.message);
    }
    if (cairn_writer_commit(wr, &err) != CAIRN_OK)
        die("%s", err.message);
    access_result a = {0};
    /* what one rchar() call adds by reading /proc/self/io */
    unsigned long long c0 = rchar(), c1 = rchar(), cost = c1 - c0;
    cairn_open_opts oo = {.struct_size = sizeof oo, .flags = CAIRN_OPEN_NO_MMAP, .threads = threads};
    cairn_file *f;
    unsigned long long r0 = rchar();
    if (cairn_file_open(path, &oo, &f, &err) != CAIRN_OK)
        die("%s", err.message);
    unsigned long long r1 = rchar();
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, &err);
    a.file = fi.file_size;
    a.index_read = r1 - r0 - cost;
    uint64_t idx;
    cairn_tensor_info t;
    if (cairn_tensor_find(f, "layer137.weight", &idx, &t, &err) != CAIRN_OK)
        die("%s", err.message);
    float *dst = malloc(TENSOR_BYTES);
    r0 = rchar();
    if (cairn_tensor_read(f, idx, CAIRN_F32, dst, TENSOR_BYTES, 0, &err) != CAIRN_OK)
        die("%s", err.message);
    a.tensor_read = rchar() - r0 - cost;
    a.tensor_stored = t.stored_size;
    if (memcmp(dst, w + (size_t)(137 % slices) * (TENSOR_BYTES / 4), TENSOR_BYTES) != 0)
        die("layer137 reads back wrong");
    r0 = rchar();
    if (cairn_tensor_read_range(f, idx, 500000, 1000, CAIRN_F32, dst, 4000, 0, &err) != CAIRN_OK)
        die("%s", err.message);
    a.range_read = rchar() - r0 - cost;
    free(dst);
    cairn_file_close(f);
    unlink(path);
    printf("  1 GiB file (%d x 4 MiB, zstd:3+shuffle, 1 MiB chunks): %.1f MiB on disk\n", TENSORS,
           (double)a.file / 1048576);
    printf("  open reads %llu bytes; one 4 MiB tensor reads %llu bytes (its stored size %llu); "
           "1000 elements read %llu bytes\n", a.index_read, a.tensor_read, a.tensor_stored,
           a.range_read);
    printf("RESULT workload=compress op=random-access file_bytes=%llu open_bytes=%llu "
           "tensor_read_bytes=%llu tensor_stored_bytes=%llu range_read_bytes=%llu\n", a.file,
           a.index_read, a.tensor_read, a.tensor_stored, a.range_read);
    return a;
}

static void verdict(const char *what, const char *target, double value, int met)
{
    printf("%-58s %-12s %10.3f  %s\n", what, target, value, met ? "met" : "MISSED");
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp/cairn-bench";
    size_t mib = 256;
    int runs = 3;
    unsigned threads = 2;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else
            die("usage: bench_compress [--dir DIR] [--mib N (>= 64)] [--runs N] [--threads N] "
                "[--quick: zstd with the shuffle only]");
    }
    if (mib < 64 || runs < 1 || runs > 16)
        die("--mib must be at least 64 and --runs 1..16");
    size_t bytes = mib << 20, slow = 64 << 20;
    float *w = malloc(bytes), *b = malloc(bytes);
    if (!w || !b)
        die("out of memory for %zu MiB", 2 * mib);
    double t0 = bench_now();
    gen_normal(w, bytes / 4, 42);
    to_bf16_values(w, b, bytes / 4);
    printf("== compress: %zu MiB of N(0, 0.02) float32 weights (generated in %.1f s), %u threads, "
           "median of %d runs\n", mib, bench_now() - t0, threads, runs);
    printf("   GB/s are raw bytes per wall-clock second; (cpu ...) per CPU second divided by the\n"
           "   %u threads: what the cores would give with the machine to themselves\n", threads);
    result normal[sizeof configs / sizeof configs[0]], z3bf16 = {0}, none_bf16 = {0};
    memset(normal, 0, sizeof normal);
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
        if (!quick || c == 2 || c == 3 || c == 4)
            normal[c] = measure(dir, "normal", &configs[c], w, configs[c].slow ? slow : bytes,
                                threads, runs);
    none_bf16 = measure(dir, "bf16-in-f32", &configs[2], b, bytes, threads, runs);
    z3bf16 = measure(dir, "bf16-in-f32", &configs[4], b, bytes, threads, runs);
    if (!quick)
        measure(dir, "bf16-in-f32", &configs[6], b, bytes, threads, runs);
    printf("\n== random access\n");
    access_result a = random_access(dir, w, bytes, threads);

    printf("\n== compression targets (from one run)\n");
    verdict("normal weights, zstd:3 alone (reference: 1.08x)", "ratio", normal[2].ratio, 1);
    verdict("normal weights, zstd:3+shuffle", ">= 1.15x", normal[4].ratio, normal[4].ratio >= 1.15);
    verdict("normal weights, zstd:1+shuffle", ">= 1.15x", normal[3].ratio, normal[3].ratio >= 1.15);
    verdict("float32 holding bf16 values, zstd:3 alone", "ratio", none_bf16.ratio, 1);
    verdict("float32 holding bf16 values, zstd:3+shuffle", ">= 2.2x", z3bf16.ratio,
            z3bf16.ratio >= 2.2);
    verdict("save, zstd:1+shuffle (GB/s of raw bytes, wall clock)", ">= 1 GB/s",
            normal[3].save_gbs, normal[3].save_gbs >= 1.0);
    verdict("save, zstd:3+shuffle (GB/s of raw bytes, wall clock)", ">= 1 GB/s",
            normal[4].save_gbs, normal[4].save_gbs >= 1.0);
    verdict("read, zstd:1+shuffle (GB/s of raw bytes, wall clock)", ">= 2 GB/s",
            normal[3].read_gbs, normal[3].read_gbs >= 2.0);
    verdict("read, zstd:3+shuffle (GB/s of raw bytes, wall clock)", ">= 2 GB/s",
            normal[4].read_gbs, normal[4].read_gbs >= 2.0);
    printf("  (per CPU time on %u threads: save zstd:1+shuffle %.2f, zstd:3+shuffle %.2f GB/s; "
           "read %.2f, %.2f GB/s)\n", threads, normal[3].save_cpu_gbs, normal[4].save_cpu_gbs,
           normal[3].read_cpu_gbs, normal[4].read_cpu_gbs);
    double touched = (double)a.tensor_read / (double)a.tensor_stored;
    /* a few bytes of slack: the text of /proc/self/io itself grows a digit now and then */
    verdict("one 4 MiB tensor of a 1 GiB file: bytes read / its stored", "<= 1.0", touched,
            a.tensor_read <= a.tensor_stored + 16);
    verdict("1000 elements: bytes read (MiB; one 1 MiB chunk at most)", "<= 1 MiB",
            (double)a.range_read / 1048576, a.range_read <= (1u << 20));
    free(w);
    free(b);
    return 0;
}
