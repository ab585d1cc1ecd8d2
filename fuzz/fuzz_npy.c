/* fuzz_npy.c -- libFuzzer target: opens arbitrary bytes in memory and reads
 * everything a caller could ask for, as a .npy file. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_exercise(data, size, CAIRN_FORMAT_NPY, "array");
}
