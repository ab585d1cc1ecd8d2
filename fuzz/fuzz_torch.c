/* fuzz_torch.c -- libFuzzer target: opens arbitrary bytes as a PyTorch file
 * (ZIP or legacy stream: the ZIP reader, the pickle machine, storage and
 * view bounds) and reads every tensor, strided views included. */
#include "fuzz_common.h"

#define LIMIT (1u << 20) /* no member inflates past this, no larger tensor is read */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_open_opts opts = {0};
    opts.struct_size = sizeof opts;
    opts.format = CAIRN_FORMAT_TORCH;
    opts.max_inflate = LIMIT;
    return fuzz_exercise_opts(data, size, &opts, NULL, LIMIT);
}
