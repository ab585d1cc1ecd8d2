/* pickle_numpy.c -- what a pickled numpy.dtype means, computed as NumPy
 * computes it (docs/FORMAT.md §18, "NumPy dtypes"). A dtype is pickled as
 * numpy.dtype(CODE, False, True) followed by BUILD with a state tuple
 * (version, byte order, subarray, names, fields, elsize, alignment, flags
 * [, metadata]). NumPy's __setstate__ takes the element size of the
 * flexible kinds (S, U, V) from the state, not from CODE's digits, and
 * whether the array holds Python objects from the state's flags: joblib
 * reads that many bytes per element, or a nested pickle for objects, so
 * anything cairn cannot size exactly as NumPy does is refused by name. */
#include "container/pickle.h"

#include <stdio.h>

/* Codes numpy.dtype.__reduce__ writes for the fixed-size kinds. */
static const struct {
    const char *code;
    uint64_t size;
    cairn_dtype dtype;
} fixed[] = {
    {"b1", 1, CAIRN_BOOL},          {"i1", 1, CAIRN_I8},   {"i2", 2, CAIRN_I16},
    {"i4", 4, CAIRN_I32},           {"i8", 8, CAIRN_I64},  {"u1", 1, CAIRN_U8},
    {"u2", 2, CAIRN_U16},           {"u4", 4, CAIRN_U32},  {"u8", 8, CAIRN_U64},
    {"f2", 2, CAIRN_F16},           {"f4", 4, CAIRN_F32},  {"f8", 8, CAIRN_F64},
    {"f16", 16, CAIRN_DTYPE_INVALID}, {"c8", 8, CAIRN_C64}, {"c16", 16, CAIRN_C128},
    {"c32", 32, CAIRN_DTYPE_INVALID}, {"M8", 8, CAIRN_DTYPE_INVALID},
    {"m8", 8, CAIRN_DTYPE_INVALID},
};

/* "U10" -> 10 in *n; "U" -> 0 with *n = 0 (an unsized flexible type). */
static int flexible_digits(const char *code, size_t len, uint64_t *n)
{
    *n = 0;
    if (len > 12)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (code[i] < '0' || code[i] > '9')
            return 0;
        *n = *n * 10 + (uint64_t)(code[i] - '0');
    }
    return 1;
}

const char *cairn__np_dtype_resolve(const cairn__np_dtype_args *a, cairn__np_dtype *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = CAIRN_DTYPE_INVALID;
    if (a->code_len == 0 || a->code_len > 12)
        return "its code is not one numpy.dtype pickles";
    char kind = a->code[0];
    if (a->has_state) {
        if (!a->state_ok)
            return "its state is not the tuple NumPy pickles (version, byte order, subarray, "
                   "names, fields, element size, alignment, flags[, metadata])";
        if (a->endian != '<' && a->endian != '>' && a->endian != '|' && a->endian != '=')
            return "its byte order is not '<', '>', '|' or '='";
        if (a->structured)
            return "it is a structured or subarray dtype (fields or a subarray in its state)";
        if (a->flags & CAIRN__NP_ITEM_HASOBJECT)
            return "its flags say the elements are Python objects (joblib pickles such arrays "
                   "as objects, not bytes)";
    }
    if (kind == 'O')
        return "an object array (its elements are Python objects, not bytes)";
    out->kind = kind;
    out->big_endian = a->has_state && a->endian == '>';
    if (kind == 'S' || kind == 'U' || kind == 'V') {
        uint64_t n;
        if (!flexible_digits(a->code, a->code_len, &n))
            return "its code is not one numpy.dtype pickles";
        /* NumPy's __setstate__ sets a flexible type's size from the state. */
        if (a->has_state && a->elsize < 0)
            return "its element size is negative";
        out->itemsize = a->has_state ? (uint64_t)a->elsize : kind == 'U' ? 4 * n : n;
        if (kind == 'U' && out->itemsize % 4)
            return "a unicode (U) element size that is not a multiple of 4 bytes";
        if (out->itemsize == 0)
            return "an element size of 0 (joblib itself cannot read such an array)";
        if (out->itemsize > CAIRN__PICKLE_MAX_BYTES)
            return "an element size above 64 MiB";
        return NULL;
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strlen(fixed[i].code) == a->code_len && !memcmp(fixed[i].code, a->code, a->code_len)) {
            out->itemsize = fixed[i].size;
            out->dtype = fixed[i].dtype;
            return NULL;
        }
    return "its code is not one numpy.dtype pickles";
}
