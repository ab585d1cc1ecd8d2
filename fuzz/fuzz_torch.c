/* fuzz_torch.c -- libFuzzer target: opens arbitrary bytes as a PyTorch file
 * (ZIP or legacy stream: the ZIP reader, the pickle machine, storage and
 * view bounds) and reads every tensor, strided views included. */
#include <cairn.h>

#include <stdint.h>
#include <stdlib.h>

#define LIMIT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    cairn_open_opts opts = {0};
    opts.struct_size = sizeof opts;
    opts.format = CAIRN_FORMAT_TORCH;
    opts.max_inflate = LIMIT;
    cairn_file *f = NULL;
    if (cairn_file_open_memory(data, size, &opts, &f, NULL) != CAIRN_OK)
        return 0;
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, NULL);
    for (uint64_t i = 0; i < cairn_file_count(f); i++)
        read_tensor(f, i);
    cairn_value *meta = NULL;
    if (cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK)
        cairn_value_free(meta);
    cairn_file_verify(f, NULL);
    cairn_file_close(f);
    return 0;
}
