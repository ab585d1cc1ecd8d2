/*
 * safetensors.h -- the safetensors layout (docs/FORMAT.md §11), restated for
 * the code that reads and writes it. The document is normative; this is a
 * summary.
 *
 *   offset 0      u64 LE  N, the header length (padding included)
 *   offset 8      N bytes of UTF-8 JSON: {"__metadata__": {str: str},
 *                 "NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 *   offset 8+N    the data section: every tensor's bytes, back to back, no
 *                 holes, ending exactly at the end of the file; offsets in
 *                 the header are relative to 8+N, `e` one past the end.
 */
#ifndef CAIRN_SAFETENSORS_H
#define CAIRN_SAFETENSORS_H

#include "format/format.h"

/* The reference implementation's MAX_HEADER_SIZE (decimal, not MiB). */
#define ST_MAX_HEADER 100000000u
#define ST_METADATA_KEY "__metadata__"
/* The one __metadata__ key cairn reserves for the typed tree (§11.4). */
#define ST_TREE_KEY "cairn.meta"
/* A tensor's reported alignment stops at a page, as for .npy. */
#define ST_ALIGN_CAP 4096

/* The dtype strings cairn maps 1:1. `order` is the position in the
 * reference implementation's `enum Dtype`, which is declared in increasing
 * alignment order; its writer lays tensors out by descending `order`, then
 * by name, and so does ours. C128 has no safetensors name. */
typedef struct st_dtype {
    const char *name;
    cairn_dtype dtype;
    int order;
} st_dtype;

static inline const st_dtype *st_dtype_table(size_t *count)
{
    static const st_dtype table[] = {
        {"BOOL", CAIRN_BOOL, 0},       {"U8", CAIRN_U8, 4},     {"I8", CAIRN_I8, 5},
        {"F8_E5M2", CAIRN_F8_E5M2, 6}, {"F8_E4M3", CAIRN_F8_E4M3, 7},
        {"I16", CAIRN_I16, 11},        {"U16", CAIRN_U16, 12},  {"F16", CAIRN_F16, 13},
        {"BF16", CAIRN_BF16, 14},      {"I32", CAIRN_I32, 15},  {"U32", CAIRN_U32, 16},
        {"F32", CAIRN_F32, 17},        {"C64", CAIRN_C64, 18},  {"F64", CAIRN_F64, 19},
        {"I64", CAIRN_I64, 20},        {"U64", CAIRN_U64, 21},
    };
    *count = sizeof table / sizeof table[0];
    return table;
}

/* The entry for a dtype string of `len` bytes (which may hold NULs), or NULL. */
static inline const st_dtype *st_dtype_by_name(const char *name, size_t len)
{
    size_t n;
    const st_dtype *t = st_dtype_table(&n);
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0)
            return &t[i];
    return NULL;
}

/* The entry for a cairn dtype, or NULL when safetensors has no name for it. */
static inline const st_dtype *st_dtype_by_code(cairn_dtype dtype)
{
    size_t n;
    const st_dtype *t = st_dtype_table(&n);
    for (size_t i = 0; i < n; i++)
        if (t[i].dtype == dtype)
            return &t[i];
    return NULL;
}

/* Whether the input plausibly is a safetensors file: a header length N with
 * 2 <= N <= ST_MAX_HEADER that fits in the file, and '{' as the first byte
 * of the header after optional JSON whitespace. Used by format detection,
 * after every format with a magic number had its turn. */
int cairn__safetensors_sniff(const cairn_file *f);

/* 1 when the first byte of the input in [at, end) that is not JSON
 * whitespace is '{' (a JSON object starts there); 0 otherwise or on a read
 * error. The sniffs of the safetensors header and of a sharded index. */
int cairn__json_object_starts(const cairn_file *f, uint64_t at, uint64_t end);

#endif /* CAIRN_SAFETENSORS_H */
