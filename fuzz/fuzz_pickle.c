/* fuzz_pickle.c -- libFuzzer target: raw bytes into the restricted pickle
 * machine (pickle.h) with a fake storage table, then the walker that names
 * tensors and builds the metadata tree, in the torch allow-list mode and in
 * the inert mode; then the same bytes as a file (the pickle reader), so a
 * compressed joblib file reaches its decoder (zlib, gzip, bzip2, lz4, xz,
 * lzma: joblib_codec.c) and the array walker. Every input also runs the
 * inert names-only walk twice, in compact mode (pickle_compact.c) and plainly: a
 * compact run that succeeds must name exactly what the plain run names,
 * with the same tree; any difference aborts (a crash to the fuzzer). */
#include "fuzz_common.h"
#include "container/pickle.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Storages "0" .. "63", each of 64 KiB. */
static cairn_status fake_storage(void *ctx, const char *key, size_t key_len, cairn_dtype dtype,
                                 uint64_t numel, uint64_t nbytes, uint64_t at, uint32_t *index,
                                 cairn_error *err)
{
    (void)ctx, (void)dtype, (void)numel;
    uint32_t k = 0;
    for (size_t i = 0; i < key_len; i++) {
        if (key[i] < '0' || key[i] > '9' || k > 63)
            return cairn__fail(err, CAIRN_E_CORRUPT, "fuzz: offset %llu: no storage",
                               (unsigned long long)at);
        k = k * 10 + (uint32_t)(key[i] - '0');
    }
    if (key_len == 0 || k > 63 || nbytes > (64u << 10))
        return cairn__fail(err, CAIRN_E_CORRUPT, "fuzz: offset %llu: no storage",
                           (unsigned long long)at);
    *index = k;
    return CAIRN_OK;
}

static void ignore_progress(void *ctx, size_t pos)
{
    (void)ctx;
    (void)pos;
}

/* A names-only run of data with `host`: its status, and *flat on success. */
static cairn_status names_only(const cairn__pickle_host *host, const uint8_t *data, size_t size,
                               cairn__pk_flat *flat, char **json)
{
    cairn__pickle vm;
    cairn_error err;
    *json = NULL;
    cairn__pickle_init(&vm, host, "fuzz", 0);
    cairn_status st = cairn__pickle_run(&vm, data, size, NULL, &err);
    if (st == CAIRN_OK)
        st = cairn__pickle_flatten_names(&vm, size, NULL, NULL, flat, &err);
    cairn__pickle_free(&vm);
    if (st == CAIRN_OK && cairn_value_to_json(flat->tree, 0, json, NULL) != CAIRN_OK) {
        cairn__pk_flat_free(flat);
        st = CAIRN_E_NOMEM;
    }
    return st;
}

static int same_arrays(const cairn__pk_flat *a, const cairn__pk_flat *b)
{
    if (a->count != b->count || a->array_count != b->array_count ||
        a->refs_left != b->refs_left)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->tensors[i].len != b->tensors[i].len ||
            memcmp(a->tensors[i].name, b->tensors[i].name, a->tensors[i].len) ||
            a->tensors[i].tensor != b->tensors[i].tensor)
            return 0;
    for (size_t i = 0; i < a->array_count; i++) {
        const cairn__pk_array *x = &a->arrays[i], *y = &b->arrays[i];
        if (x->len != y->len || memcmp(x->name, y->name, x->len) || x->dtype != y->dtype ||
            x->rank != y->rank || x->big_endian != y->big_endian || x->fortran != y->fortran ||
            x->nbytes != y->nbytes || (x->nbytes && memcmp(x->bytes, y->bytes, x->nbytes)) ||
            (x->rank && memcmp(a->dims + x->dims, b->dims + y->dims,
                               x->rank * sizeof *a->dims)))
            return 0;
    }
    return 1;
}

static void compare_compact(const uint8_t *data, size_t size)
{
    static const cairn__pickle_host compact = {NULL, cairn__pickle_torch_global, fake_storage,
                                               1, ignore_progress, 64, 1};
    static const cairn__pickle_host plain = {NULL, cairn__pickle_torch_global, fake_storage,
                                             1, ignore_progress, 64, 0};
    cairn__pk_flat a, b;
    char *ja = NULL, *jb = NULL;
    if (names_only(&compact, data, size, &a, &ja) != CAIRN_OK)
        return; /* not believed: the reader runs the plain way */
    cairn_status st = names_only(&plain, data, size, &b, &jb);
    if (st == CAIRN_E_NOMEM) {
        cairn_free(ja);
        cairn__pk_flat_free(&a);
        return;
    }
    if (st != CAIRN_OK || strcmp(ja, jb) || !same_arrays(&a, &b))
        abort(); /* compact mode named something a plain run does not */
    cairn_free(ja);
    cairn_free(jb);
    cairn__pk_flat_free(&a);
    cairn__pk_flat_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An odd first byte also runs the inert mode (pickle/joblib as data),
     * where refused globals and REDUCE/NEWOBJ/BUILD become plain nodes. */
    /* The strings are copied out every 64 bytes of progress, as a long
     * pickle's are every 2 MiB (pickle.h, consumed). */
    static const cairn__pickle_host strict = {NULL, cairn__pickle_torch_global, fake_storage, 0,
                                              ignore_progress, 64, 0};
    static const cairn__pickle_host inert = {NULL, cairn__pickle_torch_global, fake_storage, 1,
                                             ignore_progress, 64, 0};
    const cairn__pickle_host *host = size && (data[0] & 1) ? &inert : &strict;
    cairn__pickle vm;
    cairn__pk_flat flat;
    cairn_error err;
    size_t used = 0;
    cairn__pickle_init(&vm, host, "fuzz", 0);
    if (cairn__pickle_run(&vm, data, size, &used, &err) == CAIRN_OK &&
        cairn__pickle_flatten(&vm, size, &flat, &err) == CAIRN_OK) {
        char *json = NULL;
        if (cairn_value_to_json(flat.tree, 0, &json, NULL) == CAIRN_OK)
            cairn_free(json);
        cairn__pk_flat_free(&flat);
    }
    cairn__pickle_free(&vm);
    compare_compact(data, size);
    /* Output bounded to 1 MiB so a bomb costs little per run. */
    cairn_open_opts opts = {sizeof opts, CAIRN_OPEN_INERT, CAIRN_FORMAT_PICKLE, 1u << 20};
    return fuzz_exercise_opts(data, size, &opts, "state.coef_", 1u << 20);
}
