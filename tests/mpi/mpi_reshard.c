/* mpi_reshard.c -- N -> M resharding of distributed checkpoints.
 *
 *   mpirun -np N mpi_reshard save DIR [zstd]   saves a fixed set of global
 *       tensors (every dtype; row, column, 2-D block and uneven splits;
 *       ranks with empty boxes; replicated tensors) split over N ranks;
 *   mpirun -np M mpi_reshard load DIR...       loads each DIR on M ranks
 *       with other splits and checks every element bitwise against the
 *       generator; rank 0 also reads every whole tensor and a flat range.
 *
 * Exit 0 when every rank agrees all is well; failures are printed. */
#include <cairn_mpi.h>

#include "mpi_leak.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT 64

typedef struct tdef {
    char name[64];
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[3];
    int scheme;     /* 0 rows, 1 columns, 2 blocks, 3 uneven rows; -1 replicated */
    int small;      /* compressible values */
} tdef;

static tdef defs[NT];
static int ndefs;

static void define(const char *name, cairn_dtype dt, uint32_t rank, uint64_t d0, uint64_t d1,
                   uint64_t d2, int scheme, int small)
{
    tdef *t = &defs[ndefs++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->rank = rank;
    t->dims[0] = d0, t->dims[1] = d1, t->dims[2] = d2;
    t->scheme = scheme;
    t->small = small;
}

static void define_all(void)
{
    for (int d = 1; d < CAIRN_DTYPE_COUNT; d++) {
        char n[64];
        snprintf(n, sizeof n, "dtype.%s", cairn_dtype_name((cairn_dtype)d));
        define(n, (cairn_dtype)d, 2, 13, 7, 0, d % 4, 0);
    }
    define("cube", CAIRN_I16, 3, 6, 5, 4, 2, 0);
    define("tiny", CAIRN_F32, 2, 2, 9, 0, 0, 0);      /* more ranks than rows: empty boxes */
    define("thin", CAIRN_F64, 2, 3, 2, 0, 1, 0);      /* more ranks than columns */
    define("vec", CAIRN_U8, 1, 11, 0, 0, 3, 0);
    define("empty", CAIRN_F32, 2, 0, 4, 0, 0, 0);
    define("big", CAIRN_F32, 2, 300, 200, 0, 1, 1);   /* several 64 KiB chunks */
    define("repl", CAIRN_F32, 2, 3, 4, 0, -1, 0);
    define("scalar", CAIRN_F64, 0, 0, 0, 0, -1, 0);
    define("repl.vec", CAIRN_I64, 1, 5, 0, 0, -1, 0);
}

/* The value bytes of element `i` of tensor t: a hash of both. */
static void gen(const tdef *t, uint64_t i, uint8_t *out)
{
    size_t es = cairn_dtype_size(t->dtype);
    uint64_t h = 1469598103934665603ull;
    for (const char *c = t->name; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ull;
    h ^= i * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    for (size_t k = 0; k < es; k++)
        out[k] = (uint8_t)(h >> (8 * (k % 8))) ^ (uint8_t)(k * 31);
    if (t->dtype == CAIRN_BOOL)
        out[0] &= 1;
    if (t->small) { /* compressible: small floats */
        float f = (float)(i % 7);
        memcpy(out, &f, 4);
    }
}

/* [lo, hi) of part p of n split into `parts`; uneven: weights 1, 2, 3 ... */
static void split(uint64_t n, int parts, int p, int uneven, uint64_t *lo, uint64_t *hi)
{
    if (!uneven) {
        *lo = n * (uint64_t)p / (uint64_t)parts;
        *hi = n * (uint64_t)(p + 1) / (uint64_t)parts;
        return;
    }
    uint64_t w = (uint64_t)parts * (parts + 1) / 2;
    *lo = n * ((uint64_t)p * (p + 1) / 2) / w;
    *hi = n * ((uint64_t)(p + 1) * (p + 2) / 2) / w;
}

/* This rank's box of t under `scheme` among `size` ranks. */
static void box_of(const tdef *t, int scheme, int me, int size, uint64_t *off, uint64_t *ext)
{
    for (uint32_t j = 0; j < t->rank; j++)
        off[j] = 0, ext[j] = t->dims[j];
    if (t->rank == 0)
        return;
    uint64_t lo, hi;
    int dim = scheme == 1 && t->rank > 1 ? 1 : 0;
    if (scheme == 2 && t->rank > 1) {
        int pr = 1;
        for (int d = 1; d * d <= size; d++)
            if (size % d == 0)
                pr = d;
        int pc = size / pr;
        split(t->dims[0], pr, me / pc, 0, &lo, &hi);
        off[0] = lo, ext[0] = hi - lo;
        split(t->dims[1], pc, me % pc, 0, &lo, &hi);
        off[1] = lo, ext[1] = hi - lo;
        return;
    }
    split(t->dims[dim], size, me, scheme == 3, &lo, &hi);
    off[dim] = lo, ext[dim] = hi - lo;
}

static uint64_t volume(const tdef *t, const uint64_t *ext)
{
    uint64_t v = 1;
    for (uint32_t j = 0; j < t->rank; j++)
        v *= ext[j];
    return v;
}

/* Fills buf with the box (off, ext) of t from the generator. */
static void fill_box(const tdef *t, const uint64_t *off, const uint64_t *ext, uint8_t *buf)
{
    size_t es = cairn_dtype_size(t->dtype);
    uint64_t v = volume(t, ext), idx[3] = {0};
    for (uint64_t k = 0; k < v; k++) {
        uint64_t rem = k, flat = 0;
        for (int j = (int)t->rank - 1; j >= 0; j--) {
            idx[j] = rem % ext[j];
            rem /= ext[j];
        }
        for (uint32_t j = 0; j < t->rank; j++)
            flat = flat * t->dims[j] + off[j] + idx[j];
        gen(t, flat, buf + k * es);
    }
}

static int failures;

static void check(int ok, int me, const char *what, const char *name, const char *msg)
{
    if (!ok) {
        fprintf(stderr, "rank %d: %s '%s': %s\n", me, what, name, msg ? msg : "");
        failures++;
    }
}

/* "" or "<rank_dir>/", from DIR/manifest.cairn's tree. */
static void rank_dir(const char *dir, char *out, size_t size)
{
    char p[4200];
    cairn_file *mf;
    cairn_value *tree = NULL;
    const void *d;
    size_t len;
    out[0] = '\0';
    snprintf(p, sizeof p, "%s/manifest.cairn", dir);
    if (cairn_file_open(p, NULL, &mf, NULL) != CAIRN_OK)
        return;
    if (cairn_file_read_metadata(mf, &tree, NULL) == CAIRN_OK &&
        cairn_value_get_data(cairn_value_get(tree, "rank_dir"), &d, &len) == CAIRN_OK)
        snprintf(out, size, "%.*s/", (int)len, (const char *)d);
    cairn_value_free(tree);
    cairn_file_close(mf);
}

static int do_save(const char *dir, int zstd, int me, int size)
{
    cairn_write_opts wo = {.struct_size = sizeof wo, .flags = CAIRN_WRITE_NO_SYNC,
                           .threads = 1};
    if (zstd) {
        wo.codec = CAIRN_CODEC_ZSTD;
        wo.chunk_size = 65536;
        wo.filter = CAIRN_FILTER_SHUFFLE;
    }
    cairn_mpi_save *s;
    cairn_error err;
    if (cairn_mpi_save_begin(MPI_COMM_WORLD, dir, &wo, &s, &err) != CAIRN_OK) {
        fprintf(stderr, "rank %d: begin: %s\n", me, err.message);
        return 1;
    }
    uint8_t *bufs[NT] = {0};
    for (int i = 0; i < ndefs; i++) {
        const tdef *t = &defs[i];
        uint64_t off[3], ext[3];
        box_of(t, t->scheme < 0 ? 0 : t->scheme, me, size, off, ext);
        if (t->scheme < 0)
            for (uint32_t j = 0; j < t->rank; j++)
                off[j] = 0, ext[j] = t->dims[j];
        bufs[i] = malloc(volume(t, ext) * cairn_dtype_size(t->dtype) + 1);
        fill_box(t, off, ext, bufs[i]);
        cairn_status st = t->scheme < 0
            ? cairn_mpi_save_add_replicated(s, t->name, t->dtype, t->rank, t->dims, bufs[i], &err)
            : cairn_mpi_save_add(s, t->name, t->dtype, t->rank, t->dims, off, ext, bufs[i], &err);
        check(st == CAIRN_OK, me, "add", t->name, err.message);
    }
    cairn_value *meta = cairn_value_map();
    cairn_value_set(meta, "run", cairn_value_string("reshard"), NULL);
    cairn_mpi_save_set_metadata(s, meta, &err);
    cairn_value_free(meta);
    cairn_status st = cairn_mpi_save_commit(s, &err);
    check(st == CAIRN_OK, me, "commit", dir, err.message);
    for (int i = 0; i < ndefs; i++)
        free(bufs[i]);
    if (st == CAIRN_OK && me == 0) {
        /* Replicated tensors are written once: only rank file 0 holds them.
         * On an object store the rank files sit under the manifest's
         * "rank_dir" (docs/FORMAT.md §20). */
        char sub[32];
        rank_dir(dir, sub, sizeof sub);
        for (int r = 0; r < size; r++) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%srank-%06d.cairn", dir, sub, r);
            cairn_file *f;
            if (cairn_file_open(p, NULL, &f, &err) != CAIRN_OK) {
                check(0, me, "open", p, err.message);
                continue;
            }
            int has = cairn_tensor_find(f, "repl", NULL, NULL, NULL) == CAIRN_OK;
            check(has == (r == 0), me, "replicated written once", p, "");
            cairn_file_close(f);
        }
    }
    return 0;
}

static void load_one(const char *dir, int me, int size)
{
    cairn_file *f;
    cairn_error err;
    cairn_open_opts oo = {.struct_size = sizeof oo, .threads = 1};
    if (cairn_mpi_open(MPI_COMM_WORLD, dir, &oo, &f, &err) != CAIRN_OK) {
        check(0, me, "open", dir, err.message);
        return;
    }
    for (int i = 0; i < ndefs; i++) {
        const tdef *t = &defs[i];
        uint64_t index, off[3], ext[3];
        cairn_tensor_info info;
        if (cairn_tensor_find(f, t->name, &index, &info, &err) != CAIRN_OK) {
            check(0, me, "find", t->name, err.message);
            continue;
        }
        int scheme = ((t->scheme < 0 ? 0 : t->scheme) + 1 + me) % 4; /* not the save's */
        box_of(t, scheme, me, size, off, ext);
        size_t es = cairn_dtype_size(t->dtype), bytes = (size_t)(volume(t, ext) * es);
        uint8_t *got = malloc(bytes + 1), *want = malloc(bytes + 1);
        fill_box(t, off, ext, want);
        cairn_status st = cairn_tensor_read_box(f, index, off, ext, t->dtype, got, bytes,
                                                i % 5 == 0 ? CAIRN_READ_VERIFY : 0, &err);
        check(st == CAIRN_OK, me, "read_box", t->name, err.message);
        check(st != CAIRN_OK || !memcmp(got, want, bytes), me, "bitwise box", t->name, dir);
        free(got);
        free(want);
        if (me != 0)
            continue;
        /* Whole tensor, and a flat range from a third to two thirds. */
        uint64_t zero[3] = {0};
        bytes = (size_t)(info.count * es);
        got = malloc(bytes + 1);
        want = malloc(bytes + 1);
        fill_box(t, zero, t->dims, want);
        st = cairn_tensor_read(f, index, t->dtype, got, bytes, 0, &err);
        check(st == CAIRN_OK && !memcmp(got, want, bytes), me, "whole", t->name, err.message);
        uint64_t a = info.count / 3, n = info.count * 2 / 3 - a;
        st = cairn_tensor_read_range(f, index, a, n, t->dtype, got, (size_t)(n * es), 0, &err);
        check(st == CAIRN_OK && !memcmp(got, want + a * es, (size_t)(n * es)), me, "range",
              t->name, err.message);
        free(got);
        free(want);
    }
    cairn_value *meta = NULL;
    if (me == 0 && cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK) {
        const cairn_value *v = cairn_value_get(meta, "run");
        check(v && cairn_value_get_type(v) == CAIRN_VALUE_STRING, me, "metadata", dir, "");
        cairn_value_free(meta);
    }
    cairn_file_close(f);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int me, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    define_all();
    if (argc >= 3 && !strcmp(argv[1], "save"))
        do_save(argv[2], argc > 3 && !strcmp(argv[3], "zstd"), me, size);
    else if (argc >= 3 && !strcmp(argv[1], "load"))
        for (int i = 2; i < argc; i++)
            load_one(argv[i], me, size);
    else {
        if (me == 0)
            fprintf(stderr, "usage: mpi_reshard save DIR [zstd] | load DIR...\n");
        failures++;
    }
    failures += mpi_leaks();
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (me == 0)
        printf("%s on %d ranks: %d failures\n", argv[1], size, total);
    MPI_Finalize();
    return total ? 1 : 0;
}
