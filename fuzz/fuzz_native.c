/* fuzz_native.c -- libFuzzer target for the .cairn reader: open the input
 * from memory (and through pread when it fits a temp file), read every tensor
 * with and without conversion, verify, decode the metadata. */
#include <cairn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Recomputes the index and trailer checksums of a mutated input, so the
 * fuzzer reaches the structural checks behind them instead of stopping at a
 * checksum mismatch. */
static void reseal(uint8_t *p, size_t size)
{
    if (size < 192)
        return;
    uint8_t *t = p + size - 128;
    uint64_t index = le64(t + 24), meta_end = le64(t + 48) + le64(t + 56);
    if (index <= meta_end && meta_end <= size - 128) {
        uint64_t h = XXH3_64bits(p + index, (size_t)(meta_end - index));
        memcpy(t + 80, &h, 8);
    }
    uint64_t h = XXH3_64bits(t, 112);
    memcpy(t + 112, &h, 8);
}

static int exercise(const uint8_t *data, size_t size)
{
    cairn_file *f;
    cairn_error err;
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = 0, .format = CAIRN_FORMAT_NATIVE};
    if (cairn_file_open_memory(data, size, &opts, &f, &err) != CAIRN_OK) {
        if (!err.message[0])
            __builtin_trap(); /* every failure must explain itself */
        return 0;
    }
    cairn_file_verify(f, &err);
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        if (cairn_tensor_info_at(f, i, &t, &err) != CAIRN_OK || t.raw_size > (64u << 20))
            continue;
        uint64_t found;
        if (cairn_tensor_find(f, t.name, &found, NULL, &err) != CAIRN_OK || found != i)
            __builtin_trap(); /* open accepted an index that binary search cannot use */
        void *buf = malloc(t.raw_size ? (size_t)t.raw_size : 1);
        cairn_tensor_read(f, i, t.dtype, buf, (size_t)t.raw_size, CAIRN_READ_VERIFY, &err);
        if (cairn_dtype_can_convert(t.dtype, CAIRN_F64) && t.count <= (8u << 20)) {
            double *d = malloc(t.count ? (size_t)t.count * 8 : 1);
            cairn_tensor_read(f, i, CAIRN_F64, d, (size_t)t.count * 8, 0, &err);
            free(d);
        }
        free(buf);
    }
    cairn_value *meta;
    if (cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK) {
        char *json;
        if (cairn_value_to_json(meta, 0, &json, &err) == CAIRN_OK)
            cairn_free(json);
        cairn_value_free(meta);
    }
    cairn_file_close(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    exercise(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    reseal(copy, size);
    exercise(copy, size);
    free(copy);
    return 0;
}
