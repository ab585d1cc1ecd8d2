/* test_codec.c -- compressed tensors of the native format (docs/FORMAT.md
 * §4.1-4.2): round trips of every codec x filter x dtype x edge shape, reads
 * of element ranges across chunk borders (for every format), automatic raw
 * storage, per-tensor overrides, versions, threads and argument checks. */
#include "testutil.h"

#include "format/native/native.h"
#include "common/internal.h"
#include "codec/shuffle.h"
#include <cairn.h>
#include <pthread.h>

static const char *dir;

#define CHUNK (UINT64_C(64) << 10) /* the smallest chunk size: many chunks, small tests */

typedef struct codec_case {
    const char *name;
    uint32_t codec;
    int32_t level;
} codec_case;

static const codec_case codecs[] = {
    {"zstd", CAIRN_CODEC_ZSTD, 0}, {"lz4", CAIRN_CODEC_LZ4, 1}, {"lz4hc", CAIRN_CODEC_LZ4, 4},
    {"zlib", CAIRN_CODEC_ZLIB, 0}, {"bz2", CAIRN_CODEC_BZ2, 1},
};

typedef struct shape {
    uint32_t rank;
    uint64_t dims[3];
} shape;

/* empty, empty in one dimension, 0-d, one element, small, and larger than
 * several 64 KiB chunks for every element size (3 x 64 KiB of 1-byte
 * elements up to 49 x 64 KiB of 16-byte ones) */
static const shape shapes[] = {
    {1, {0}}, {2, {3, 0}}, {0, {0}}, {1, {1}}, {2, {5, 7}}, {2, {199, 1009}},
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static uint64_t count_of(const shape *s)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < s->rank; d++)
        n *= s->dims[d];
    return n;
}

/* Low-entropy data that compresses, with structure a shuffle helps: small
 * values around a slow trend, in every dtype's own bit patterns. */
static void fill(uint8_t *p, cairn_dtype dt, uint64_t n, uint64_t seed)
{
    size_t es = cairn_dtype_size(dt);
    uint64_t rng = seed;
    for (uint64_t i = 0; i < n; i++) {
        double v = (double)(i % 1000) / 100.0 + (double)(tu_rand(&rng) % 8) / 64.0;
        uint8_t *e = p + i * es;
        switch (dt) {
        case CAIRN_F64: memcpy(e, &v, 8); break;
        case CAIRN_F32: { float f = (float)v; memcpy(e, &f, 4); break; }
        case CAIRN_C64: { float f[2] = {(float)v, (float)-v}; memcpy(e, f, 8); break; }
        case CAIRN_C128: { double d[2] = {v, v / 3}; memcpy(e, d, 16); break; }
        case CAIRN_F16: case CAIRN_BF16: case CAIRN_I16: case CAIRN_U16: {
            uint16_t x = (uint16_t)(0x3C00 + (i % 97) * 3 + (tu_rand(&rng) & 3));
            memcpy(e, &x, 2);
            break;
        }
        case CAIRN_I32: case CAIRN_U32: { uint32_t x = (uint32_t)(i / 7 + (tu_rand(&rng) & 7)); memcpy(e, &x, 4); break; }
        case CAIRN_I64: case CAIRN_U64: { uint64_t x = i / 3 + (tu_rand(&rng) & 15); memcpy(e, &x, 8); break; }
        case CAIRN_BOOL: e[0] = (uint8_t)(tu_rand(&rng) % 5 == 0); break;
        default: e[0] = (uint8_t)(i % 17 + (tu_rand(&rng) & 1)); break;
        }
    }
}

static char *path_of(const char *name) { return tu_path(dir, name); }

/* Every dtype x shape, saved with one codec and filter to a path and to
 * memory (identical bytes), read back whole, converted and in ranges. */
static void round_trip(const codec_case *c, uint32_t filter)
{
    char file[64];
    snprintf(file, sizeof file, "rt-%s-%u.cairn", c->name, filter);
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                          .codec = c->codec, .level = c->level, .filter = filter,
                          .chunk_size = CHUNK};
    cairn_writer *wf, *wm;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path_of(file), &o, &wf, &err));
    CHECK_OK(cairn_writer_open_memory(&o, &wm, &err));
    uint8_t *data[CAIRN_DTYPE_COUNT][NSHAPES] = {{0}};
    for (int dt = 1; dt < CAIRN_DTYPE_COUNT; dt++) {
        for (size_t s = 0; s < NSHAPES; s++) {
            char name[32];
            snprintf(name, sizeof name, "%s.%zu", cairn_dtype_name((cairn_dtype)dt), s);
            uint64_t n = count_of(&shapes[s]);
            size_t bytes = (size_t)n * cairn_dtype_size((cairn_dtype)dt);
            data[dt][s] = malloc(bytes + 1);
            fill(data[dt][s], (cairn_dtype)dt, n, (uint64_t)(dt * 100 + s));
            CHECK_OK(cairn_writer_add(wf, name, (cairn_dtype)dt, shapes[s].rank, shapes[s].dims,
                                      data[dt][s], &err));
            CHECK_OK(cairn_writer_add(wm, name, (cairn_dtype)dt, shapes[s].rank, shapes[s].dims,
                                      data[dt][s], &err));
        }
    }
    CHECK_OK(cairn_writer_commit(wf, &err));
    void *mem;
    size_t mem_size, fsize;
    CHECK_OK(cairn_writer_commit_memory(wm, &mem, &mem_size, &err));
    void *fbytes = tu_read_whole(path_of(file), &fsize);
    CHECK(fbytes && fsize == mem_size && memcmp(fbytes, mem, fsize) == 0);
    free(fbytes);

    for (int pass = 0; pass < 2; pass++) {
        cairn_file *f;
        cairn_open_opts oo = {.struct_size = sizeof oo, .flags = pass ? CAIRN_OPEN_NO_MMAP : 0,
                              .threads = pass ? 1 : 0};
        CHECK_OK(pass ? cairn_file_open(path_of(file), &oo, &f, &err)
                      : cairn_file_open_memory(mem, mem_size, &oo, &f, &err));
        if (!f)
            continue;
        cairn_file_info fi;
        CHECK_OK(cairn_file_get_info(f, &fi, &err));
        CHECK(fi.version_major == 1 && fi.version_minor == 1 && fi.compressed_tensors > 0);
        CHECK_OK(cairn_file_verify(f, &err));
        int compressed_big = 0;
        for (int dt = 1; dt < CAIRN_DTYPE_COUNT; dt++) {
            for (size_t s = 0; s < NSHAPES; s++) {
                char name[32];
                snprintf(name, sizeof name, "%s.%zu", cairn_dtype_name((cairn_dtype)dt), s);
                uint64_t idx, n = count_of(&shapes[s]);
                cairn_tensor_info t;
                CHECK_OK(cairn_tensor_find(f, name, &idx, &t, &err));
                size_t es = cairn_dtype_size((cairn_dtype)dt), bytes = (size_t)n * es;
                CHECK(t.raw_size == bytes && t.count == n);
                if (n == 0 || s < 4)
                    CHECK(t.codec == CAIRN_CODEC_NONE); /* nothing to gain: stored raw */
                if (s == NSHAPES - 1 && t.codec == c->codec) {
                    compressed_big++;
                    CHECK(t.stored_size < t.raw_size && t.chunk_size == CHUNK);
                    CHECK(t.chunk_count == (bytes + CHUNK - 1) / CHUNK);
                    CHECK(t.filter == (es > 1 ? filter : 0) && !t.zero_copy);
                }
                uint8_t *back = malloc(bytes + 1);
                CHECK_OK(cairn_tensor_read(f, idx, (cairn_dtype)dt, back, bytes,
                                           CAIRN_READ_VERIFY, &err));
                CHECK(memcmp(back, data[dt][s], bytes) == 0);
                CHECK_OK(cairn_tensor_verify(f, idx, &err));
                if (cairn_dtype_can_convert((cairn_dtype)dt, CAIRN_F64) &&
                    dt != CAIRN_C64 && dt != CAIRN_C128) {
                    double *want = malloc((size_t)n * 8 + 8), *got = malloc((size_t)n * 8 + 8);
                    CHECK_OK(cairn_convert((cairn_dtype)dt, data[dt][s], CAIRN_F64, want,
                                           (size_t)n, &err));
                    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F64, got, (size_t)n * 8, 0, &err));
                    CHECK(memcmp(want, got, (size_t)n * 8) == 0);
                    /* a range crossing the first chunk border, converted */
                    uint64_t per = CHUNK / es;
                    if (n > per + 10) {
                        CHECK_OK(cairn_tensor_read_range(f, idx, per - 5, 15, CAIRN_F64, got,
                                                         15 * 8, 0, &err));
                        CHECK(memcmp(want + per - 5, got, 15 * 8) == 0);
                    }
                    free(want);
                    free(got);
                }
                free(back);
            }
        }
        CHECK(compressed_big >= 14); /* every dtype's large tensor, bar the noisiest */
        cairn_file_close(f);
    }
    for (int dt = 1; dt < CAIRN_DTYPE_COUNT; dt++)
        for (size_t s = 0; s < NSHAPES; s++)
            free(data[dt][s]);
    cairn_free(mem);
}

/* Ranges of a compressed tensor: inside a chunk, across one border, across
 * several chunks, the last elements, the whole tensor, empty, out of range. */
static void test_ranges(void)
{
    enum { N = 5 * 16384 + 122 }; /* F32: 16384 per 64 KiB chunk; 6 chunks */
    float *x = malloc(N * sizeof *x);
    fill((uint8_t *)x, CAIRN_F32, N, 7);
    uint64_t dims[2] = {N / 2, 2};
    cairn_write_opts o = {.struct_size = sizeof o, .codec = CAIRN_CODEC_ZSTD, .level = 1,
                          .filter = CAIRN_FILTER_SHUFFLE, .chunk_size = CHUNK};
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 2, dims, x, &err));
    cairn_tensor_opts raw = {.struct_size = sizeof raw, .codec = CAIRN_CODEC_NONE};
    CHECK_OK(cairn_writer_add_ex(w, "y", CAIRN_F32, 2, dims, x, &raw, &err));
    void *mem;
    size_t size;
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &size, &err));
    cairn_file *f;
    CHECK_OK(cairn_file_open_memory(mem, size, NULL, &f, &err));
    static const uint64_t cases[][2] = {
        {0, 1}, {100, 200}, {16383, 2}, {16380, 16384 + 10}, {1, N - 2}, {N - 1, 1},
        {0, N}, {3 * 16384, 16384}, {5 * 16384, 122}, {40000, 0},
    };
    float *got = malloc(N * sizeof *got);
    double *d = malloc(N * sizeof *d);
    for (uint64_t idx = 0; idx < 2; idx++) {
        cairn_tensor_info t;
        CHECK_OK(cairn_tensor_info_at(f, idx, &t, &err));
        CHECK(t.codec == (idx == 0 ? CAIRN_CODEC_ZSTD : CAIRN_CODEC_NONE));
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            uint64_t first = cases[c][0], n = cases[c][1];
            memset(got, 0xAB, N * sizeof *got);
            CHECK_OK(cairn_tensor_read_range(f, idx, first, n, CAIRN_F32, got, n * 4,
                                             CAIRN_READ_VERIFY, &err));
            CHECK(memcmp(got, x + first, n * 4) == 0);
            CHECK_OK(cairn_tensor_read_range(f, idx, first, n, CAIRN_F64, d, n * 8, 0, &err));
            int same = 1;
            for (uint64_t i = 0; i < n; i++)
                same &= d[i] == (double)x[first + i];
            CHECK(same);
        }
        CHECK_ST(cairn_tensor_read_range(f, idx, N - 1, 2, CAIRN_F32, got, 8, 0, &err), CAIRN_E_ARG);
        CHECK_ST(cairn_tensor_read_range(f, idx, UINT64_MAX, 2, CAIRN_F32, got, 8, 0, &err),
                 CAIRN_E_ARG);
        CHECK_ST(cairn_tensor_read_range(f, idx, 0, 2, CAIRN_F32, got, 9, 0, &err), CAIRN_E_SIZE);
        CHECK_ST(cairn_tensor_read_range(f, idx, 0, 2, CAIRN_I8, got, 2, 0, &err), CAIRN_E_DTYPE);
        CHECK_ST(cairn_tensor_read_range(f, idx, 0, 2, CAIRN_F32, NULL, 8, 0, &err), CAIRN_E_ARG);
    }
    CHECK_ST(cairn_tensor_read_range(f, 2, 0, 1, CAIRN_F32, got, 4, 0, &err), CAIRN_E_NOT_FOUND);
    cairn_file_close(f);
    cairn_free(mem);
    free(got);
    free(d);
    free(x);
}

/* The range API on every format: npy (C, Fortran, big-endian), safetensors,
 * GGUF, npz (stored and deflated) agree with whole-tensor reads. */
static void check_ranges_match(cairn_file *f, const char *what)
{
    cairn_error err;
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        CHECK_OK(cairn_tensor_info_at(f, i, &t, &err));
        if (!cairn_dtype_can_convert(t.dtype, CAIRN_F64) || t.dtype == CAIRN_C64 ||
            t.dtype == CAIRN_C128 || t.count == 0)
            continue;
        double *all = malloc((size_t)t.count * 8), *part = malloc((size_t)t.count * 8);
        CHECK_OK(cairn_tensor_read(f, i, CAIRN_F64, all, (size_t)t.count * 8, 0, &err));
        uint64_t first = t.count / 3, n = t.count - first - (t.count > 2);
        cairn_status st = cairn_tensor_read_range(f, i, first, n, CAIRN_F64, part, (size_t)n * 8,
                                                  CAIRN_READ_VERIFY, &err);
        if (st != CAIRN_OK)
            fprintf(stderr, "%s: %s\n", what, err.message);
        CHECK(st == CAIRN_OK && memcmp(all + first, part, (size_t)n * 8) == 0);
        free(all);
        free(part);
    }
}

static void test_ranges_every_format(void)
{
    static const struct { cairn_format fmt; const char *file; unsigned flags; } outs[] = {
        {CAIRN_FORMAT_SAFETENSORS, "r.safetensors", 0}, {CAIRN_FORMAT_GGUF, "r.gguf", 0},
        {CAIRN_FORMAT_NPZ, "r.npz", 0}, {CAIRN_FORMAT_NPZ, "rz.npz", CAIRN_WRITE_COMPRESS},
        {CAIRN_FORMAT_NPY, "r.npy", 0}, {CAIRN_FORMAT_NATIVE, "r.cairn", 0},
    };
    float a[4 * 7];
    int32_t b[50];
    for (int i = 0; i < 28; i++)
        a[i] = (float)i * 0.5f - 3;
    for (int i = 0; i < 50; i++)
        b[i] = i * i - 100;
    uint64_t da[2] = {4, 7}, db = 50;
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
        cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC | outs[k].flags,
                              .format = outs[k].fmt};
        cairn_writer *w;
        cairn_error err;
        CHECK_OK(cairn_writer_open_path(path_of(outs[k].file), &o, &w, &err));
        CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 2, da, a, &err));
        if (outs[k].fmt != CAIRN_FORMAT_NPY)
            CHECK_OK(cairn_writer_add(w, "b", CAIRN_I32, 1, &db, b, &err));
        CHECK_OK(cairn_writer_commit(w, &err));
        cairn_file *f;
        CHECK_OK(cairn_file_open(path_of(outs[k].file), NULL, &f, &err));
        if (f) {
            check_ranges_match(f, outs[k].file);
            /* deflated members stage the whole tensor for every range */
            int ranged = !(outs[k].flags & CAIRN_WRITE_COMPRESS);
            for (uint64_t i = 0; i < cairn_file_count(f); i++)
                CHECK(cairn_tensor_ranged(f, i) == ranged);
            CHECK(cairn_tensor_ranged(f, cairn_file_count(f)) == 0);
        }
        cairn_file_close(f);
    }
    CHECK(cairn_tensor_ranged(NULL, 0) == 0);
    /* Fortran-order and big-endian .npy files from the fuzz corpus */
    const char *src = getenv("CAIRN_SOURCE_DIR");
    static const char *npys[] = {"fortran_f8_2x3.npy", "fortran_be_c8_2x2x2.npy", "be_i8_5.npy",
                                 "u4_rank4.npy", "f4_3x4.npy"};
    for (size_t k = 0; src && k < sizeof npys / sizeof npys[0]; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/fuzz/corpus/fuzz_npy/%s", src, npys[k]);
        cairn_file *f;
        cairn_error err;
        if (cairn_file_open(p, NULL, &f, &err) != CAIRN_OK) {
            fprintf(stderr, "%s: %s\n", p, err.message);
            CHECK(0);
            continue;
        }
        check_ranges_match(f, npys[k]);
        CHECK(cairn_tensor_ranged(f, 0) == (strncmp(npys[k], "fortran", 7) != 0));
        /* complex Fortran big-endian: compare raw element ranges too */
        cairn_tensor_info t;
        CHECK_OK(cairn_tensor_info_at(f, 0, &t, &err));
        uint8_t *all = malloc((size_t)t.raw_size + 1), *part = malloc((size_t)t.raw_size + 1);
        size_t es = cairn_dtype_size(t.dtype);
        CHECK_OK(cairn_tensor_read(f, 0, t.dtype, all, (size_t)t.raw_size, 0, &err));
        if (t.count > 1) {
            CHECK_OK(cairn_tensor_read_range(f, 0, 1, t.count - 1, t.dtype, part,
                                             (size_t)(t.count - 1) * es, 0, &err));
            CHECK(memcmp(all + es, part, (size_t)(t.count - 1) * es) == 0);
        }
        free(all);
        free(part);
        cairn_file_close(f);
    }
}

/* What does not shrink is stored raw; a save with a codec whose tensors all
 * stay raw is the same file as an uncompressed save, version 1.0. */
static void test_auto_raw(void)
{
    enum { N = 200000 };
    uint8_t *noise = malloc(N);
    uint64_t rng = 99;
    for (int i = 0; i < N; i++)
        noise[i] = (uint8_t)tu_rand(&rng);
    float tiny[3] = {1, 2, 3};
    uint64_t dn = N, dt = 3;
    void *a, *b;
    size_t na, nb;
    cairn_error err;
    for (int k = 0; k < 2; k++) {
        cairn_write_opts o = {.struct_size = sizeof o, .codec = k ? CAIRN_CODEC_ZSTD : 0,
                              .filter = k ? CAIRN_FILTER_SHUFFLE : 0, .chunk_size = CHUNK};
        cairn_writer *w;
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_add(w, "noise", CAIRN_U8, 1, &dn, noise, &err));
        CHECK_OK(cairn_writer_add(w, "tiny", CAIRN_F32, 1, &dt, tiny, &err));
        CHECK_OK(cairn_writer_add_alias(w, "tied", "noise", &err));
        CHECK_OK(cairn_writer_commit_memory(w, k ? &b : &a, k ? &nb : &na, &err));
    }
    CHECK(na == nb && memcmp(a, b, na) == 0);
    CHECK(cairn__le16((const uint8_t *)b + HD_MINOR) == 0);
    /* the old struct size (before the 1.1 fields) is still accepted */
    cairn_write_opts old = {.struct_size = offsetof(cairn_write_opts, codec)};
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_memory(&old, &w, &err));
    cairn_writer_abort(w);
    cairn_free(a);
    cairn_free(b);
    free(noise);
}

/* Per-tensor overrides, aliases of compressed tensors, and every codec in
 * one file. */
static void test_per_tensor(void)
{
    enum { N = 300000 };
    uint16_t *x = malloc(N * 2);
    fill((uint8_t *)x, CAIRN_BF16, N, 3);
    uint64_t dn = N;
    cairn_error err;
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                          .codec = CAIRN_CODEC_ZSTD, .level = 5};
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(path_of("per.cairn"), &o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "default", CAIRN_BF16, 1, &dn, x, &err));
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++) {
        cairn_tensor_opts t = {.struct_size = sizeof t, .codec = codecs[c].codec,
                               .level = codecs[c].level, .filter = CAIRN_FILTER_SHUFFLE};
        CHECK_OK(cairn_writer_add_ex(w, codecs[c].name, CAIRN_BF16, 1, &dn, x, &t, &err));
    }
    cairn_tensor_opts z19 = {.struct_size = sizeof z19, .codec = CAIRN_CODEC_ZSTD, .level = 19};
    CHECK_OK(cairn_writer_add_ex(w, "zstd19", CAIRN_BF16, 1, &dn, x, &z19, &err));
    cairn_tensor_opts none = {.struct_size = sizeof none};
    CHECK_OK(cairn_writer_add_ex(w, "raw", CAIRN_BF16, 1, &dn, x, &none, &err));
    CHECK_OK(cairn_writer_add_alias(w, "tied", "lz4", &err));
    CHECK_OK(cairn_writer_add_ex(w, "inherit", CAIRN_BF16, 1, &dn, x, NULL, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file *f;
    CHECK_OK(cairn_file_open(path_of("per.cairn"), NULL, &f, &err));
    if (!f)
        return;
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.compressed_tensors == 1 + 6 + 1 + 1 && fi.raw_bytes == 9 * (uint64_t)N * 2);
    if (fi.compressed_tensors != 9)
        fprintf(stderr, "compressed %llu\n", (unsigned long long)fi.compressed_tensors);
    uint16_t *back = malloc(N * 2);
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        CHECK_OK(cairn_tensor_info_at(f, i, &t, &err));
        CHECK_OK(cairn_tensor_read(f, i, CAIRN_BF16, back, N * 2, 0, &err));
        CHECK(memcmp(back, x, N * 2) == 0);
        if (!strcmp(t.name, "raw"))
            CHECK(t.codec == CAIRN_CODEC_NONE && t.zero_copy);
        else if (!strcmp(t.name, "default") || !strcmp(t.name, "inherit"))
            CHECK(t.codec == CAIRN_CODEC_ZSTD && t.level == 5 && t.filter == 0);
        else if (!strcmp(t.name, "lz4hc"))
            CHECK(t.codec == CAIRN_CODEC_LZ4 && t.level == 4 && t.filter == 1);
        else if (!strcmp(t.name, "zstd19"))
            CHECK(t.codec == CAIRN_CODEC_ZSTD && t.level == 19);
        else if (!strcmp(t.name, "tied"))
            CHECK(t.codec == CAIRN_CODEC_LZ4 && t.level == 1);
        else if (!strcmp(t.name, "bz2"))
            CHECK(t.codec == CAIRN_CODEC_BZ2 && t.stored_size < t.raw_size / 2);
    }
    cairn_file_close(f);
    free(back);
    free(x);
}

static void test_bad_arguments(void)
{
    cairn_error err;
    cairn_writer *w;
    float x = 1;
    cairn_write_opts o = {.struct_size = sizeof o, .codec = CAIRN_CODEC_ZSTD, .level = 20};
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_ARG);
    o.level = 0;
    o.codec = 9;
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_ARG);
    o.codec = CAIRN_CODEC_LZ4;
    o.chunk_size = 100000;
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_ARG);
    o.chunk_size = UINT64_C(32) << 20;
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_ARG);
    o.chunk_size = 0;
    o.filter = 2;
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_ARG);
    o.filter = 0;
    o.format = CAIRN_FORMAT_SAFETENSORS;
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "compress") != NULL);
    cairn_write_opts st = {.struct_size = sizeof st, .format = CAIRN_FORMAT_SAFETENSORS};
    CHECK_OK(cairn_writer_open_memory(&st, &w, &err));
    cairn_tensor_opts t = {.struct_size = sizeof t, .codec = CAIRN_CODEC_ZSTD};
    CHECK_ST(cairn_writer_add_ex(w, "x", CAIRN_F32, 0, NULL, &x, &t, &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    t.struct_size = 4;
    CHECK_ST(cairn_writer_add_ex(w, "x", CAIRN_F32, 0, NULL, &x, &t, &err), CAIRN_E_ARG);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    t = (cairn_tensor_opts){.struct_size = sizeof t, .codec = CAIRN_CODEC_ZLIB, .level = 10};
    CHECK_ST(cairn_writer_add_ex(w, "x", CAIRN_F32, 0, NULL, &x, &t, &err), CAIRN_E_ARG);
    cairn_writer_abort(w);

    uint32_t codec;
    int32_t level;
    CHECK_OK(cairn_codec_parse("zstd", &codec, &level, &err));
    CHECK(codec == CAIRN_CODEC_ZSTD && level == 0);
    CHECK_OK(cairn_codec_parse("ZSTD:19", &codec, &level, &err));
    CHECK(codec == CAIRN_CODEC_ZSTD && level == 19);
    CHECK_OK(cairn_codec_parse("lz4hc", &codec, &level, &err));
    CHECK(codec == CAIRN_CODEC_LZ4 && level == 9);
    CHECK_OK(cairn_codec_parse("bz2:1", &codec, &level, &err));
    CHECK(codec == CAIRN_CODEC_BZ2 && level == 1);
    CHECK_OK(cairn_codec_parse("none", &codec, &level, &err));
    CHECK(codec == CAIRN_CODEC_NONE);
    CHECK_ST(cairn_codec_parse("zstd:0", &codec, &level, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_codec_parse("zstd:20", &codec, &level, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_codec_parse("zstd:", &codec, &level, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_codec_parse("lzma", &codec, &level, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_codec_parse("none:1", &codec, &level, &err), CAIRN_E_ARG);
    CHECK(!strcmp(cairn_codec_name(CAIRN_CODEC_LZ4), "lz4") && cairn_codec_name(5) == NULL);
}

/* Many threads reading one compressed file, each with its own workers. */
static cairn_file *shared;
static float *shared_want;
enum { SHARED_N = 400000 };

static void *reader(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    float *buf = malloc(SHARED_N * sizeof *buf);
    cairn_error err;
    long bad = 0;
    for (int k = 0; k < 20; k++) {
        uint64_t first = tu_rand(&seed) % SHARED_N, n = tu_rand(&seed) % (SHARED_N - first);
        if (cairn_tensor_read_range(shared, 0, first, n, CAIRN_F32, buf, n * 4, 0, &err) != CAIRN_OK ||
            memcmp(buf, shared_want + first, n * 4) != 0)
            bad++;
    }
    free(buf);
    return (void *)bad;
}

static void test_threads(void)
{
    shared_want = malloc(SHARED_N * sizeof *shared_want);
    fill((uint8_t *)shared_want, CAIRN_F32, SHARED_N, 11);
    uint64_t dn = SHARED_N;
    void *outs[3];
    size_t sizes[3];
    cairn_error err;
    for (unsigned k = 0; k < 3; k++) {
        /* 1 thread, 2, and one per CPU write the same bytes */
        cairn_write_opts o = {.struct_size = sizeof o, .codec = CAIRN_CODEC_LZ4, .level = 4,
                              .filter = CAIRN_FILTER_SHUFFLE, .chunk_size = CHUNK,
                              .threads = k == 2 ? 0 : k + 1};
        cairn_writer *w;
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 1, &dn, shared_want, &err));
        CHECK_OK(cairn_writer_commit_memory(w, &outs[k], &sizes[k], &err));
    }
    CHECK(sizes[0] == sizes[1] && memcmp(outs[0], outs[1], sizes[0]) == 0);
    CHECK(sizes[0] == sizes[2] && memcmp(outs[0], outs[2], sizes[0]) == 0);
    cairn_open_opts oo = {.struct_size = sizeof oo, .threads = 3};
    CHECK_OK(cairn_file_open_memory(outs[0], sizes[0], &oo, &shared, &err));
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, reader, (void *)(i + 1));
    long bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    CHECK(bad == 0);
    cairn_file_close(shared);
    for (int k = 0; k < 3; k++)
        cairn_free(outs[k]);
    free(shared_want);
}

/* The SSE2 and scalar shuffles agree with the definition for every element
 * size and length, tails included. */
static void test_shuffle(void)
{
    int bad = 0;
    for (size_t ts = 1; ts <= 16; ts++) {
        for (size_t n = 0; n < 70; n++) {
            size_t size = n * ts + n % ts;
            uint8_t *a = malloc(size + 1), *b = malloc(size + 1), *c = malloc(size + 1);
            uint64_t rng = ts * 1000 + n;
            for (size_t i = 0; i < size; i++)
                a[i] = (uint8_t)tu_rand(&rng);
            cairn__shuffle(a, b, size, ts);
            for (size_t i = 0; i < n && ts > 1; i++)
                for (size_t k = 0; k < ts; k++)
                    bad += b[k * n + i] != a[i * ts + k];
            bad += memcmp(a + n * ts, b + n * ts, size - n * ts) != 0;
            cairn__unshuffle(b, c, size, ts);
            bad += memcmp(a, c, size) != 0;
            free(a);
            free(b);
            free(c);
        }
    }
    CHECK(bad == 0);
}

int main(void)
{
    dir = tu_tmpdir("test_codec");
    test_shuffle();
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++)
        for (uint32_t filter = 0; filter < 2; filter++)
            round_trip(&codecs[c], filter);
    test_ranges();
    test_ranges_every_format();
    test_auto_raw();
    test_per_tensor();
    test_bad_arguments();
    test_threads();
    TEST_MAIN_END();
}
