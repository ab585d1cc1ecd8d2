/* fuzz_npz.c -- libFuzzer target: opens arbitrary bytes in memory as an .npz
 * (the ZIP reader, inflate and the npy header parser behind it) and reads
 * every tensor with verification. */
#include <cairn.h>

#include <stdint.h>
#include <stdlib.h>

/* Keeps executions fast: no member may inflate past this, no tensor larger
 * is read (inputs are a few KiB, so only lying sizes get near it). */
#define LIMIT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads tensor i as stored with its CRC checked, once more widened (the
 * conversion path of deflated members), and through a view when it has one. */
static void read_tensor(cairn_file *f, uint64_t i)
{
    cairn_tensor_info info;
    if (cairn_tensor_info_at(f, i, &info, NULL) != CAIRN_OK || info.raw_size > LIMIT)
        return;
    void *buf = malloc(info.raw_size ? (size_t)info.raw_size : 1);
    if (buf) {
        cairn_tensor_read(f, i, info.dtype, buf, (size_t)info.raw_size, CAIRN_READ_VERIFY, NULL);
        free(buf);
    }
    cairn_dtype wide = info.dtype == CAIRN_C64 || info.dtype == CAIRN_C128 ? CAIRN_C128 : CAIRN_F64;
    if (cairn_dtype_can_convert(info.dtype, wide) && info.count <= LIMIT / 16) {
        size_t n = (size_t)info.count * cairn_dtype_size(wide);
        buf = malloc(n ? n : 1);
        if (buf) {
            cairn_tensor_read(f, i, wide, buf, n, 0, NULL);
            free(buf);
        }
    }
    const void *view;
    if (cairn_tensor_data(f, i, &view, NULL) == CAIRN_OK && info.raw_size > 0) {
        volatile uint8_t sink = ((const uint8_t *)view)[info.raw_size - 1];
        (void)sink;
    }
    cairn_tensor_find(f, info.name, NULL, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_open_opts opts = {sizeof opts, 0, CAIRN_FORMAT_NPZ, LIMIT};
    cairn_file *f = NULL;
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') { /* detection by member names too */
        cairn_open_opts detect = {sizeof detect, 0, CAIRN_FORMAT_AUTO, LIMIT};
        if (cairn_file_open_memory(data, size, &detect, &f, NULL) == CAIRN_OK)
            cairn_file_close(f);
        f = NULL;
    }
    if (cairn_file_open_memory(data, size, &opts, &f, NULL) != CAIRN_OK)
        return 0;
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, NULL);
    for (uint64_t i = 0; i < cairn_file_count(f); i++)
        read_tensor(f, i);
    cairn_tensor_find(f, "arr_0", NULL, NULL, NULL);
    cairn_value *meta = NULL;
    if (cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK)
        cairn_value_free(meta);
    cairn_file_verify(f, NULL);
    cairn_file_close(f);
    return 0;
}
