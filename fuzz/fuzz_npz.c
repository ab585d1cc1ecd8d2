/* fuzz_npz.c -- libFuzzer target: opens arbitrary bytes in memory as an .npz
 * (the ZIP reader, inflate and the npy header parser behind it) and reads
 * every tensor with verification. */
#include "fuzz_common.h"

/* Keeps executions fast: no member may inflate past this, no tensor larger
 * is read (inputs are a few KiB, so only lying sizes get near it). */
#define LIMIT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') { /* detection by member names too */
        cairn_open_opts detect = {sizeof detect, 0, CAIRN_FORMAT_AUTO, LIMIT};
        cairn_file *f = NULL;
        if (cairn_file_open_memory(data, size, &detect, &f, NULL) == CAIRN_OK)
            cairn_file_close(f);
    }
    cairn_open_opts opts = {sizeof opts, 0, CAIRN_FORMAT_NPZ, LIMIT};
    return fuzz_exercise_opts(data, size, &opts, "arr_0", LIMIT);
}
