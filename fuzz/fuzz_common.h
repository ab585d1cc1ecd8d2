/* fuzz_common.h -- what the format fuzz targets share: open arbitrary bytes
 * from memory as one format and read everything a caller could ask for. */
#ifndef CAIRN_FUZZ_COMMON_H
#define CAIRN_FUZZ_COMMON_H

#include <cairn.h>

#include <stdint.h>
#include <stdlib.h>

#define READ_LIMIT (64u << 20) /* skip tensors larger than this: the input is small */

/* Reads tensor i (at most `limit` bytes) as stored, and once more widened
 * when a wider type exists, so the byte-swap, Fortran-order and conversion
 * paths all run; then through a view when it has one, and looks it up by
 * its name. */
static void read_tensor(cairn_file *f, uint64_t i, uint64_t limit)
{
    cairn_tensor_info info;
    if (cairn_tensor_info_at(f, i, &info, NULL) != CAIRN_OK || info.raw_size > limit)
        return;
    void *buf = malloc(info.raw_size ? (size_t)info.raw_size : 1);
    if (buf) {
        cairn_tensor_read(f, i, info.dtype, buf, (size_t)info.raw_size, CAIRN_READ_VERIFY, NULL);
        free(buf);
    }
    cairn_dtype wide = info.dtype == CAIRN_C64 || info.dtype == CAIRN_C128 ? CAIRN_C128 : CAIRN_F64;
    if (cairn_dtype_can_convert(info.dtype, wide) && info.count <= limit / 16) {
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

/* Opens the input with `opts`, reads every tensor of at most `limit` bytes,
 * looks up `probe_name` (NULL: none), decodes the metadata and verifies the
 * file. */
static int fuzz_exercise_opts(const uint8_t *data, size_t size, const cairn_open_opts *opts,
                              const char *probe_name, uint64_t limit)
{
    cairn_file *f = NULL;
    if (cairn_file_open_memory(data, size, opts, &f, NULL) != CAIRN_OK)
        return 0;
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, NULL);
    for (uint64_t i = 0; i < cairn_file_count(f); i++)
        read_tensor(f, i, limit);
    if (probe_name)
        cairn_tensor_find(f, probe_name, NULL, NULL, NULL);
    cairn_value *meta = NULL;
    if (cairn_file_read_metadata(f, &meta, NULL) == CAIRN_OK) {
        char *json = NULL; /* the JSON view reads packed lists in place */
        if (cairn_value_to_json(meta, 2, &json, NULL) == CAIRN_OK)
            cairn_free(json);
        cairn_value_free(meta);
    }
    cairn_file_verify(f, NULL);
    cairn_file_close(f);
    return 0;
}

/* fuzz_exercise_opts as `format` with the default limits. */
static int fuzz_exercise(const uint8_t *data, size_t size, cairn_format format,
                         const char *probe_name)
{
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = 0, .format = format};
    return fuzz_exercise_opts(data, size, &opts, probe_name, READ_LIMIT);
}

#endif
