/*
 * gguf.h -- the GGUF layout (docs/FORMAT.md §13), restated for
 * the code that reads and writes it, with the pinned tables of value types
 * and ggml tensor types. The document is normative; this is a summary.
 *
 *   offset 0   "GGUF", u32 version (2 or 3), u64 tensor_count, u64 kv_count
 *   then       kv_count of: string key, u32 value_type, value
 *   then       tensor_count of: string name, u32 n_dims, u64 ne[n_dims],
 *              u32 ggml_type, u64 offset (relative to the data section)
 *   then       zero padding to general.alignment (default 32): the data section
 *
 *   string     u64 length, then that many bytes (no NUL)
 *   value      a scalar of value_type, or for ARRAY: u32 element type,
 *              u64 element count, then the elements (an ARRAY element is
 *              again u32 type, u64 count, elements)
 *
 * Everything is little-endian; ne[0] is the fastest-varying dimension.
 */
#ifndef CAIRN_GGUF_H
#define CAIRN_GGUF_H

#include "format/format.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_SIZE 24
#define GGUF_VERSION_WRITTEN 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_ALIGNMENT_KEY "general.alignment"
#define GGUF_MAX_DIMS 4                     /* ggml's GGML_MAX_DIMS */
#define GGUF_MAX_NESTING 8                  /* arrays of arrays, counting the outer one */
#define GGUF_MAX_KEY 65535                  /* the spec's key length limit */
#define GGUF_MAX_STRING (1ull << 30)        /* ggml's GGUF_MAX_STRING_LENGTH */
#define GGUF_MAX_TENSORS (1ull << 22)       /* as the native format (FORMAT.md §7) */
#define GGUF_MAX_KVS (1ull << 22)
#define GGUF_MAX_META_VALUES (1ull << 24)   /* tree nodes built by read_metadata */
#define GGUF_WRITE_MAX_ALIGNMENT 65536
#define GGUF_MAX_TENSOR_BYTES (1ull << 62)  /* cairn_writer_add's limit */

/* The reserved metadata key and its members (docs/FORMAT.md §13). */
#define GGUF_TREE_KEY "gguf"

/* ------------------------------------------------------------ value types */

enum {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
    GGUF_VALUE_TYPE_COUNT = 13
};

/* Name of a value type as the spec spells it (without the
 * GGUF_METADATA_VALUE_TYPE_ prefix), or NULL past the enum. */
static inline const char *gguf_value_type_name(uint32_t type)
{
    static const char *const names[GGUF_VALUE_TYPE_COUNT] = {
        "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
        "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
    return type < GGUF_VALUE_TYPE_COUNT ? names[type] : NULL;
}

/* Bytes of a fixed-size scalar; 0 for STRING and ARRAY (and invalid types). */
static inline unsigned gguf_value_size(uint32_t type)
{
    static const unsigned sizes[GGUF_VALUE_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < GGUF_VALUE_TYPE_COUNT ? sizes[type] : 0;
}

/* The fewest bytes one element of this type takes in a file: what bounds an
 * array's element count by the bytes left. */
static inline unsigned gguf_value_min_size(uint32_t type)
{
    if (type == GGUF_STRING)
        return 8;  /* u64 length */
    if (type == GGUF_ARRAY)
        return 12; /* u32 type, u64 count */
    return gguf_value_size(type);
}

/* ------------------------------------------------------- ggml tensor types */

typedef struct gguf_ttype {
    const char *name;  /* ggml's name without GGML_TYPE_ */
    uint32_t block;    /* elements per block; 0 = removed from GGUF files */
    uint32_t size;     /* bytes per block */
    cairn_dtype dtype; /* the cairn dtype with the same bytes, or INVALID (opaque blocks) */
} gguf_ttype;

#define GGUF_TTYPE_COUNT 43 /* ggml's GGML_TYPE_COUNT at ggml d99724f2 */

/* The entry for ggml type `id` (removed ids included, with block 0), or NULL
 * past the enum. Indexed only after the bound check. */
static inline const gguf_ttype *gguf_ttype_any(uint32_t id)
{
    static const gguf_ttype table[GGUF_TTYPE_COUNT] = {
        {"F32", 1, 4, CAIRN_F32},          {"F16", 1, 2, CAIRN_F16},
        {"Q4_0", 32, 18, 0},               {"Q4_1", 32, 20, 0},
        {"Q4_2", 0, 0, 0},                 {"Q4_3", 0, 0, 0},
        {"Q5_0", 32, 22, 0},               {"Q5_1", 32, 24, 0},
        {"Q8_0", 32, 34, 0},               {"Q8_1", 32, 36, 0},
        {"Q2_K", 256, 84, 0},              {"Q3_K", 256, 110, 0},
        {"Q4_K", 256, 144, 0},             {"Q5_K", 256, 176, 0},
        {"Q6_K", 256, 210, 0},             {"Q8_K", 256, 292, 0},
        {"IQ2_XXS", 256, 66, 0},           {"IQ2_XS", 256, 74, 0},
        {"IQ3_XXS", 256, 98, 0},           {"IQ1_S", 256, 50, 0},
        {"IQ4_NL", 32, 18, 0},             {"IQ3_S", 256, 110, 0},
        {"IQ2_S", 256, 82, 0},             {"IQ4_XS", 256, 136, 0},
        {"I8", 1, 1, CAIRN_I8},            {"I16", 1, 2, CAIRN_I16},
        {"I32", 1, 4, CAIRN_I32},          {"I64", 1, 8, CAIRN_I64},
        {"F64", 1, 8, CAIRN_F64},          {"IQ1_M", 256, 56, 0},
        {"BF16", 1, 2, CAIRN_BF16},        {"Q4_0_4_4", 0, 0, 0},
        {"Q4_0_4_8", 0, 0, 0},             {"Q4_0_8_8", 0, 0, 0},
        {"TQ1_0", 256, 54, 0},             {"TQ2_0", 256, 66, 0},
        {"IQ4_NL_4_4", 0, 0, 0},           {"IQ4_NL_4_8", 0, 0, 0},
        {"IQ4_NL_8_8", 0, 0, 0},           {"MXFP4", 32, 17, 0},
        {"NVFP4", 64, 36, 0},              {"Q1_0", 128, 18, 0},
        {"Q2_0", 64, 18, 0},
    };
    return id < GGUF_TTYPE_COUNT ? &table[id] : NULL;
}

/* The entry for a type a GGUF file may hold, or NULL (unknown or removed). */
static inline const gguf_ttype *gguf_ttype_get(uint32_t id)
{
    const gguf_ttype *t = gguf_ttype_any(id);
    return t && t->block ? t : NULL;
}

/* The id of a type by name (exact, case-sensitive), or -1. Removed types
 * are not found. */
static inline int64_t gguf_ttype_by_name(const char *name, size_t len)
{
    for (uint32_t id = 0; id < GGUF_TTYPE_COUNT; id++) {
        const gguf_ttype *t = gguf_ttype_any(id);
        if (t->block && strlen(t->name) == len && memcmp(t->name, name, len) == 0)
            return id;
    }
    return -1;
}

/* The ggml type that carries a cairn dtype, or -1 when GGUF has none. */
static inline int64_t gguf_ttype_for_dtype(cairn_dtype dtype)
{
    for (uint32_t id = 0; id < GGUF_TTYPE_COUNT; id++) {
        const gguf_ttype *t = gguf_ttype_any(id);
        if (t->block && t->dtype == dtype && dtype != CAIRN_DTYPE_INVALID)
            return id;
    }
    return -1;
}

/* How a GGUF tensor is seen in cairn (docs/FORMAT.md §13): a type with a
 * cairn dtype keeps it and dims = reverse(ne); an opaque block type is a U8
 * tensor of dims [ne[n-1], ..., ne[1], ne[0] / block * size]. Fails (returns
 * a static reason) when ne[0] is not a multiple of the block or a size
 * overflows; otherwise fills dtype, rank, dims and the byte size. */
static inline const char *gguf_cairn_view(const gguf_ttype *t, uint32_t n_dims,
                                          const uint64_t *ne, cairn_dtype *dtype,
                                          uint32_t *rank, uint64_t *dims, uint64_t *bytes)
{
    uint64_t ne0 = n_dims ? ne[0] : 1, row, total, elems = ne0;
    int zero = 0;
    if (ne0 % t->block || (n_dims == 0 && t->dtype == CAIRN_DTYPE_INVALID))
        return "ne[0] is not a multiple of the type's block size";
    if (cairn__mul_overflow(ne0 / t->block, t->size, &row))
        return "the row size overflows 64 bits";
    for (uint32_t k = 0; k < n_dims; k++)
        zero |= ne[k] == 0;
    total = zero ? 0 : row;
    for (uint32_t k = 1; k < n_dims && !zero; k++)
        if (cairn__mul_overflow(total, ne[k], &total) || cairn__mul_overflow(elems, ne[k], &elems))
            return "the size overflows 64 bits";
    /* ggml counts elements and bytes in int64_t. */
    if (elems > (uint64_t)INT64_MAX || total > (uint64_t)INT64_MAX)
        return "the size exceeds 2^63 - 1";
    *rank = n_dims;
    for (uint32_t k = 0; k < n_dims; k++)
        dims[k] = ne[n_dims - 1 - k];
    if (t->dtype != CAIRN_DTYPE_INVALID) {
        *dtype = t->dtype;
    } else {
        *dtype = CAIRN_U8;
        dims[n_dims - 1] = row;
    }
    *bytes = total;
    return NULL;
}

#endif /* CAIRN_GGUF_H */
