/* fuzz_pickle.c -- libFuzzer target: raw bytes into the restricted pickle
 * machine (pickle.h) with a fake storage table, then the walker that names
 * tensors and builds the metadata tree, in the torch allow-list mode and in
 * the inert mode; then the same bytes as a file (the pickle reader), so a
 * compressed joblib file reaches its decoder (zlib, gzip, bzip2, lz4, xz,
 * lzma: joblib_codec.c) and the array walker. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An odd first byte also runs the inert mode (pickle/joblib as data),
     * where refused globals and REDUCE/NEWOBJ/BUILD become plain nodes. */
    /* The strings are copied out every 64 bytes of progress, as a long
     * pickle's are every 2 MiB (pickle.h, consumed). */
    static const cairn__pickle_host strict = {NULL, cairn__pickle_torch_global, fake_storage, 0,
                                              ignore_progress, 64};
    static const cairn__pickle_host inert = {NULL, cairn__pickle_torch_global, fake_storage, 1,
                                             ignore_progress, 64};
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
    /* Output bounded to 1 MiB so a bomb costs little per run. */
    cairn_open_opts opts = {sizeof opts, CAIRN_OPEN_INERT, CAIRN_FORMAT_PICKLE, 1u << 20};
    return fuzz_exercise_opts(data, size, &opts, "state.coef_", 1u << 20);
}
