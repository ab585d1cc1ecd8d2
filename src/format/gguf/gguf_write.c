/* gguf_write.c -- writes GGUF version 3 (docs/FORMAT.md §13). The
 * header lists every tensor's offset: when the tensors were declared
 * (cairn_writer_declare) it is written at once and each payload goes
 * straight to its place; otherwise payloads are spooled as they arrive
 * (spool.h) and copied behind the header at commit. The metadata tree
 * becomes typed key-value pairs, exactly when it came from a GGUF. */
#include "format/headfirst.h"
#include "format/gguf/gguf.h"
#include "common/buf.h"
#include "common/value_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* A tensor's GGUF type, settled at lay-out. */
typedef struct gw_type {
    const cairn_value *tt; /* its gguf.tensor_types entry, if any */
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
} gw_type;

typedef struct gw_writer {
    cairn__hf_writer hf; /* first: entries, names, metadata, spool and plan (headfirst.h) */
    gw_type *types;      /* parallel to hf.entries, once laid out */
    uint64_t data_size;  /* the data section's bytes, padding included, once laid out */
} gw_writer;
CAIRN__HF_FIRST(gw_writer);

/* One key-value pair to write: the value and its type record are borrowed
 * from the tree; `desc` NULL means the natural mapping. */
typedef struct gw_kv {
    char *key;
    size_t key_len;
    const cairn_value *value, *desc;
    int is_alignment; /* general.alignment: written as UINT32 of the layout's alignment */
} gw_kv;

typedef struct gw_kvs {
    gw_kv *items;
    size_t count, cap;
    cairn__nameset set;
    const char *path;
    cairn_error *err;
    uint64_t alignment; /* the data alignment, once known */
} gw_kvs;

/* --------------------------------------------------------------- buffer */

static void put_u8(cairn__buf *b, uint8_t v) { cairn__buf_put(b, &v, 1); }

static void put_u16(cairn__buf *b, uint16_t v)
{
    uint8_t x[2];
    cairn__put16(x, v);
    cairn__buf_put(b, x, 2);
}

static void put_u32(cairn__buf *b, uint32_t v)
{
    uint8_t x[4];
    cairn__put32(x, v);
    cairn__buf_put(b, x, 4);
}

static void put_u64(cairn__buf *b, uint64_t v)
{
    uint8_t x[8];
    cairn__put64(x, v);
    cairn__buf_put(b, x, 8);
}

static void put_str(cairn__buf *b, const void *s, size_t len)
{
    put_u64(b, len);
    cairn__buf_put(b, s, len);
}

/* A double to binary32 bits: the nearest float, or for a NaN the same sign
 * and the top payload bits (the inverse of gguf_read.c's widening, so a
 * NaN read from a file is written back bit for bit). */
static uint32_t f32_narrow(double v)
{
    uint32_t b;
    if (!isnan(v)) {
        float f = (float)v;
        memcpy(&b, &f, 4);
        return b;
    }
    uint64_t d;
    memcpy(&d, &v, 8);
    uint32_t m = (uint32_t)((d >> 29) & 0x7FFFFF);
    if (m == 0)
        m = 0x400000; /* payload only in the low bits: keep it a NaN */
    return (uint32_t)(d >> 63) << 31 | 0x7F800000u | m;
}

/* ------------------------------------------------------------ tensor ops */

/* GGUF's own rules for a new tensor; *size gets its bytes. */
static cairn_status check_entry(cairn_writer *w, const char *name, cairn_dtype dtype,
                                uint32_t rank, const uint64_t *dims, uint64_t *size,
                                cairn_error *err)
{
    const cairn__hf_writer *h = w->state;
    if (gguf_ttype_for_dtype(dtype) < 0 && dtype != CAIRN_U8)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': GGUF has no type for %s "
                           "(its types are F32 F16 BF16 F64 I8 I16 I32 I64 and block types)",
                           w->path, name, cairn_dtype_name(dtype));
    if (rank > GGUF_MAX_DIMS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': rank %u exceeds GGUF's %d "
                           "dimensions (GGML_MAX_DIMS)", w->path, name, rank, GGUF_MAX_DIMS);
    if (h->count >= GGUF_MAX_TENSORS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': more than %llu tensors",
                           w->path, name, (unsigned long long)GGUF_MAX_TENSORS);
    *size = cairn_dtype_size(dtype);
    for (uint32_t k = 0; k < rank; k++)
        *size *= dims[k]; /* overflow was ruled out by cairn_writer_add / _declare */
    if (*size > SIZE_MAX || *size > (uint64_t)INT64_MAX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': %llu bytes are too many",
                           w->path, name, (unsigned long long)*size);
    return CAIRN_OK;
}

static cairn_status gw_begin(cairn_writer *w, cairn_error *err)
{
    return cairn__hf_begin(w, sizeof(gw_writer), check_entry, err);
}

static cairn_status collect(gw_kvs *k, const cairn_value *meta, const cairn_value **tt);
static cairn_status emit_kv(cairn__buf *b, const gw_kvs *k, const gw_kv *kv);
static void kvs_free(gw_kvs *k);

/* Every value is typed now, into a scratch buffer, so what GGUF cannot hold
 * (a tensor reference, bytes, null, a map inside a list) is refused with
 * CAIRN_E_UNSUPPORTED before anything is written: the writer stays usable
 * and a caller such as `cairn convert` can leave those keys out. */
static cairn_status gw_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    gw_kvs k = {.path = w->path, .err = err};
    cairn__buf b = {0};
    const cairn_value *tt;
    cairn_status st = collect(&k, tree, &tt);
    for (size_t i = 0; st == CAIRN_OK && i < k.count; i++)
        if (!k.items[i].is_alignment) /* its value is settled at layout */
            st = emit_kv(&b, &k, &k.items[i]);
    kvs_free(&k);
    free(b.p);
    if (st != CAIRN_OK) {
        cairn_value_free(tree);
        return st;
    }
    return cairn__hf_set_metadata(w, tree, err);
}
/* ---------------------------------------------------- collecting the kvs */

static const char *kv_key(const void *ctx, uint32_t index, size_t *len)
{
    const gw_kvs *k = ctx;
    *len = k->items[index].key_len;
    return k->items[index].key;
}

/* Takes ownership of `key` (malloc'd, NUL-terminated). */
static cairn_status add_kv(gw_kvs *k, char *key, const cairn_value *value,
                           const cairn_value *desc)
{
    size_t len = strlen(key);
    char shown[96];
    cairn_status st = CAIRN_OK;
    if (len > GGUF_MAX_KEY)
        st = cairn__fail(k->err, CAIRN_E_LIMIT, "%s: metadata key '%s' is %zu bytes; GGUF keys "
                         "are at most %d", k->path, cairn__printable(key, len, shown, sizeof shown),
                         len, GGUF_MAX_KEY);
    else if (cairn__nameset_find(&k->set, key, len, kv_key, k) >= 0)
        st = cairn__fail(k->err, CAIRN_E_EXISTS, "%s: metadata key '%s' would be written twice "
                         "(a gguf.kv key, or dotted keys from nested maps, collide)", k->path,
                         cairn__printable(key, len, shown, sizeof shown));
    else if (k->count >= GGUF_MAX_KVS)
        st = cairn__fail(k->err, CAIRN_E_LIMIT, "%s: more than %llu metadata keys", k->path,
                         (unsigned long long)GGUF_MAX_KVS);
    if (st == CAIRN_OK && !CAIRN__GROW(k->items, k->cap, k->count, 32))
        st = cairn__fail(k->err, CAIRN_E_NOMEM, "%s: out of memory", k->path);
    if (st == CAIRN_OK) {
        k->items[k->count] = (gw_kv){key, len, value, desc, strcmp(key, GGUF_ALIGNMENT_KEY) == 0};
        st = cairn__nameset_insert(&k->set, (uint32_t)k->count, kv_key, k, k->err);
    }
    if (st != CAIRN_OK) {
        free(key);
        return st;
    }
    k->count++;
    return CAIRN_OK;
}

static char *join(const char *prefix, const char *key)
{
    size_t a = prefix ? strlen(prefix) : 0, b = strlen(key);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    if (a) {
        memcpy(s, prefix, a);
        s[a++] = '.';
    }
    memcpy(s + a, key, b + 1);
    return s;
}

/* A plain (non-GGUF) entry: maps flatten into dotted keys, anything else is
 * one pair with the natural type. */
static cairn_status flatten(gw_kvs *k, const char *prefix, const char *key, const cairn_value *v,
                            int depth)
{
    char *full = join(prefix, key);
    if (!full)
        return cairn__fail(k->err, CAIRN_E_NOMEM, "%s: out of memory", k->path);
    if (cairn_value_get_type(v) != CAIRN_VALUE_MAP)
        return add_kv(k, full, v, NULL);
    cairn_status st = CAIRN_OK;
    if (depth >= CAIRN_META_MAX_DEPTH)
        st = cairn__fail(k->err, CAIRN_E_LIMIT, "%s: metadata maps nest deeper than %d at '%s'",
                         k->path, CAIRN_META_MAX_DEPTH, full);
    for (size_t i = 0; st == CAIRN_OK && i < cairn_value_count(v); i++)
        st = flatten(k, full, cairn_value_key_at(v, i), cairn_value_at(v, i), depth + 1);
    free(full);
    return st;
}

static cairn_status gguf_map_member(gw_kvs *k, const cairn_value *g, const char *name,
                                    const cairn_value **out)
{
    *out = cairn_value_get(g, name);
    if (!*out || cairn_value_get_type(*out) == CAIRN_VALUE_MAP)
        return CAIRN_OK;
    return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: gguf.%s must be a map", k->path,
                       name);
}

/* The pairs of gguf.kv with their gguf.types records. The types map is
 * usually in the same order as kv (as read), so it is walked alongside and
 * searched only when the orders differ. */
static cairn_status collect_gguf(gw_kvs *k, const cairn_value *kv, const cairn_value *types)
{
    size_t n = cairn_value_count(kv), nt = cairn_value_count(types), matched = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = cairn_value_key_at(kv, i);
        const cairn_value *desc = NULL;
        if (i < nt && strcmp(cairn_value_key_at(types, i), key) == 0)
            desc = cairn_value_at(types, i);
        else if (types)
            desc = cairn_value_get(types, key);
        matched += desc != NULL;
        char *copy = strdup(key);
        if (!copy)
            return cairn__fail(k->err, CAIRN_E_NOMEM, "%s: out of memory", k->path);
        CAIRN_TRY(add_kv(k, copy, cairn_value_at(kv, i), desc));
    }
    for (size_t i = 0; matched != nt && i < nt; i++) {
        const char *key = cairn_value_key_at(types, i);
        if (!cairn_value_get(kv, key))
            return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: gguf.types has '%s', which "
                               "gguf.kv lacks", k->path, key);
    }
    return CAIRN_OK;
}

/* Splits the tree: the reserved "gguf" map (kv, types, tensor_types,
 * version) and everything else, flattened. */
static cairn_status collect(gw_kvs *k, const cairn_value *meta, const cairn_value **tt)
{
    const cairn_value *g = meta ? cairn_value_get(meta, GGUF_TREE_KEY) : NULL;
    const cairn_value *kv = NULL, *types = NULL;
    *tt = NULL;
    if (g) {
        if (cairn_value_get_type(g) != CAIRN_VALUE_MAP)
            return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: '" GGUF_TREE_KEY "' is "
                               "reserved for GGUF's own map (version, kv, types, tensor_types)",
                               k->path);
        for (size_t i = 0; i < cairn_value_count(g); i++) {
            const char *m = cairn_value_key_at(g, i);
            if (strcmp(m, "version") && strcmp(m, "kv") && strcmp(m, "types") &&
                strcmp(m, "tensor_types"))
                return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: gguf.%s is not a member "
                                   "of the reserved map (version, kv, types, tensor_types)",
                                   k->path, m);
        }
        CAIRN_TRY(gguf_map_member(k, g, "kv", &kv));
        CAIRN_TRY(gguf_map_member(k, g, "types", &types));
        CAIRN_TRY(gguf_map_member(k, g, "tensor_types", tt));
        if (types && !kv && cairn_value_count(types))
            return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: gguf.types without gguf.kv",
                               k->path);
        if (kv)
            CAIRN_TRY(collect_gguf(k, kv, types));
    }
    for (size_t i = 0; meta && i < cairn_value_count(meta); i++) {
        const char *key = cairn_value_key_at(meta, i);
        if (strcmp(key, GGUF_TREE_KEY) != 0)
            CAIRN_TRY(flatten(k, NULL, key, cairn_value_at(meta, i), 1));
    }
    return CAIRN_OK;
}

/* The layout alignment: an explicit writer option (anything but the
 * default 32) wins over general.alignment in the tree, which wins over 32.
 * Adds general.alignment when the tree lacks it and it is not 32. */
static cairn_status settle_alignment(gw_kvs *k, uint64_t option)
{
    const gw_kv *a = NULL;
    for (size_t i = 0; i < k->count && !a; i++)
        if (k->items[i].is_alignment)
            a = &k->items[i];
    uint64_t tree = 0;
    if (a) {
        int64_t v;
        const void *d = NULL;
        size_t dl = 0;
        if (a->desc && (cairn_value_get_data(a->desc, &d, &dl) != CAIRN_OK || dl != 6 ||
                        memcmp(d, "UINT32", 6) != 0))
            return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: general.alignment must have "
                               "type UINT32", k->path);
        if (cairn_value_get_int(a->value, &v) != CAIRN_OK || v <= 0 ||
            v > GGUF_WRITE_MAX_ALIGNMENT || (v & (v - 1)))
            return cairn__fail(k->err, CAIRN_E_ARG, "%s: metadata: general.alignment must be an "
                               "integer power of two from 1 to %d", k->path,
                               GGUF_WRITE_MAX_ALIGNMENT);
        tree = (uint64_t)v;
    }
    k->alignment = option != GGUF_DEFAULT_ALIGNMENT ? option : tree ? tree : option;
    if (a || k->alignment == GGUF_DEFAULT_ALIGNMENT)
        return CAIRN_OK;
    char *key = strdup(GGUF_ALIGNMENT_KEY);
    if (!key)
        return cairn__fail(k->err, CAIRN_E_NOMEM, "%s: out of memory", k->path);
    return add_kv(k, key, NULL, NULL);
}

/* ---------------------------------------------------------- typed values */

/* Where a value is being written, for messages. */
typedef struct gw_emit {
    cairn__buf *b;
    const gw_kvs *k;
    const char *key;
} gw_emit;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static cairn_status eerr(const gw_emit *x, cairn_status st, const char *fmt, ...)
{
    char msg[320], shown[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cairn__fail(x->k->err, st, "%s: metadata key '%s': %s", x->k->path,
                       cairn__printable(x->key, strlen(x->key), shown, sizeof shown), msg);
}

static const char *kind_name(const cairn_value *v)
{
    static const char *const names[] = {"null",  "bool", "int", "float", "string",
                                        "bytes", "list", "map", "tensor reference"};
    cairn_value_type t = cairn_value_get_type(v);
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "value";
}

/* The value type named by a type record string, or -1. */
static int64_t scalar_type(const char *s, size_t len)
{
    for (uint32_t t = 0; t < GGUF_VALUE_TYPE_COUNT; t++)
        if (t != GGUF_ARRAY && strlen(gguf_value_type_name(t)) == len &&
            memcmp(gguf_value_type_name(t), s, len) == 0)
            return t;
    return -1;
}

/* A type record: a scalar type ("UINT32"), an array of one ("ARRAY[FLOAT32]",
 * *elem set), or a list (an array of arrays, one record per element). */
typedef struct gw_desc {
    uint32_t type; /* the value type; ARRAY for both array forms */
    int64_t elem;  /* ARRAY[T]: T; array of arrays: GGUF_ARRAY */
} gw_desc;

static cairn_status parse_desc(const gw_emit *x, const cairn_value *desc, gw_desc *d)
{
    const void *p;
    size_t len;
    if (cairn_value_get_type(desc) == CAIRN_VALUE_LIST) {
        *d = (gw_desc){GGUF_ARRAY, GGUF_ARRAY};
        return CAIRN_OK;
    }
    if (cairn_value_get_data(desc, &p, &len) == CAIRN_OK &&
        cairn_value_get_type(desc) == CAIRN_VALUE_STRING) {
        const char *s = p;
        int64_t t = scalar_type(s, len);
        if (t >= 0) {
            *d = (gw_desc){(uint32_t)t, -1};
            return CAIRN_OK;
        }
        if (len > 7 && memcmp(s, "ARRAY[", 6) == 0 && s[len - 1] == ']' &&
            (t = scalar_type(s + 6, len - 7)) >= 0) {
            *d = (gw_desc){GGUF_ARRAY, t};
            return CAIRN_OK;
        }
    }
    return eerr(x, CAIRN_E_ARG, "gguf.types record is not a GGUF value type (\"UINT32\", "
                "\"ARRAY[FLOAT32]\", or a list of array records)");
}

/* One scalar of type t from v (coerced as docs/FORMAT.md §13.4 says). */
static cairn_status emit_scalar(const gw_emit *x, uint32_t t, const cairn_value *v)
{
    static const int64_t lo[] = {0, INT8_MIN, 0, INT16_MIN, 0, INT32_MIN};
    static const int64_t hi[] = {UINT8_MAX, INT8_MAX, UINT16_MAX, INT16_MAX, UINT32_MAX,
                                 INT32_MAX};
    cairn_value_type vt = cairn_value_get_type(v);
    int64_t i = 0;
    double d = 0;
    int b = 0;
    const void *p;
    size_t len;
    if (vt == CAIRN_VALUE_INT)
        cairn_value_get_int(v, &i);
    if (t <= GGUF_INT32 && vt == CAIRN_VALUE_INT) {
        if (i < lo[t] || i > hi[t])
            return eerr(x, CAIRN_E_ARG, "%lld does not fit in %s", (long long)i,
                        gguf_value_type_name(t));
        uint64_t u = (uint64_t)i;
        unsigned size = gguf_value_size(t);
        if (size == 1)
            put_u8(x->b, (uint8_t)u);
        else if (size == 2)
            put_u16(x->b, (uint16_t)u);
        else
            put_u32(x->b, (uint32_t)u);
        return CAIRN_OK;
    }
    if ((t == GGUF_INT64 || t == GGUF_UINT64) && vt == CAIRN_VALUE_INT) {
        put_u64(x->b, (uint64_t)i); /* UINT64: the int is the bit pattern */
        return CAIRN_OK;
    }
    if ((t == GGUF_FLOAT32 || t == GGUF_FLOAT64) &&
        (vt == CAIRN_VALUE_FLOAT || vt == CAIRN_VALUE_INT)) {
        if (vt == CAIRN_VALUE_FLOAT)
            cairn_value_get_float(v, &d);
        else
            d = (double)i;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        if (t == GGUF_FLOAT32)
            put_u32(x->b, f32_narrow(d));
        else
            put_u64(x->b, bits);
        return CAIRN_OK;
    }
    if (t == GGUF_BOOL && vt == CAIRN_VALUE_BOOL) {
        cairn_value_get_bool(v, &b);
        put_u8(x->b, b ? 1 : 0);
        return CAIRN_OK;
    }
    if (t == GGUF_STRING && (vt == CAIRN_VALUE_STRING || vt == CAIRN_VALUE_BYTES)) {
        cairn_value_get_data(v, &p, &len);
        put_str(x->b, p, len);
        return CAIRN_OK;
    }
    return eerr(x, CAIRN_E_ARG, "a %s value cannot be written as GGUF %s", kind_name(v),
                gguf_value_type_name(t));
}

/* The natural GGUF type of a value (docs/FORMAT.md §13): ARRAY for
 * lists and bytes; -1 with a message for what GGUF cannot hold. */
static int64_t natural_type(const gw_emit *x, const cairn_value *v, cairn_status *st)
{
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_BOOL: return GGUF_BOOL;
    case CAIRN_VALUE_INT: return GGUF_INT64;
    case CAIRN_VALUE_FLOAT: return GGUF_FLOAT64;
    case CAIRN_VALUE_STRING: return GGUF_STRING;
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_LIST: return GGUF_ARRAY;
    default: break;
    }
    *st = eerr(x, CAIRN_E_UNSUPPORTED, "GGUF cannot hold a %s value%s", kind_name(v),
               cairn_value_get_type(v) == CAIRN_VALUE_MAP
                   ? " (only maps at the top of the tree flatten into dotted keys)" : "");
    return -1;
}

/* The element type of a list written with the natural mapping: every
 * element must map to the same type (an empty list is ARRAY[INT64]). */
static cairn_status natural_elem(const gw_emit *x, const cairn_value *list, uint32_t *et)
{
    cairn_status st = CAIRN_OK;
    size_t n = cairn_value_count(list);
    *et = GGUF_INT64;
    for (size_t i = 0; i < n; i++) {
        cairn_value scratch; /* packed lists are read in place */
        const cairn_value *item = cairn__value_item(list, i, &scratch);
        int64_t t = natural_type(x, item, &st);
        if (t < 0)
            return st;
        if (i > 0 && (uint32_t)t != *et)
            return eerr(x, CAIRN_E_UNSUPPORTED, "the list mixes %s and %s elements; a GGUF array "
                        "holds one type (give the key a gguf.types record, or make the list "
                        "uniform)", gguf_value_type_name(*et), gguf_value_type_name((uint32_t)t));
        *et = (uint32_t)t;
    }
    return CAIRN_OK;
}

/* An array of arrays is in the GGUF spec, but ggml's reader
 * (gguf_init_from_file, so llama.cpp) refuses a whole file holding one: it
 * is never written (docs/FORMAT.md §13.4). */
static cairn_status refuse_nested(const gw_emit *x)
{
    return eerr(x, CAIRN_E_UNSUPPORTED, "a list of lists (or of bytes) would be a GGUF array "
                "of arrays, which ggml's reader refuses");
}

/* An array's element type, count and elements (no leading type field).
 * `desc` is the record (NULL: natural). */
static cairn_status emit_array(const gw_emit *x, const cairn_value *v, const cairn_value *desc)
{
    gw_desc d = {GGUF_ARRAY, -1};
    const void *p;
    size_t len, n = cairn_value_count(v);
    cairn_value_type vt = cairn_value_get_type(v);
    if (desc) {
        CAIRN_TRY(parse_desc(x, desc, &d));
    } else if (vt == CAIRN_VALUE_BYTES) {
        d.elem = GGUF_UINT8;
    } else if (vt == CAIRN_VALUE_LIST) {
        uint32_t et;
        CAIRN_TRY(natural_elem(x, v, &et));
        d.elem = et;
    }
    if (d.elem == GGUF_ARRAY)
        return refuse_nested(x);
    if (vt == CAIRN_VALUE_BYTES && (d.elem == GGUF_UINT8 || d.elem == GGUF_INT8)) {
        cairn_value_get_data(v, &p, &len);
        put_u32(x->b, (uint32_t)d.elem);
        put_str(x->b, p, len); /* count, then one byte per element */
        return CAIRN_OK;
    }
    if (vt != CAIRN_VALUE_LIST)
        return eerr(x, CAIRN_E_ARG, "a %s value cannot be written as a GGUF array%s",
                    kind_name(v), desc ? " (its gguf.types record says ARRAY)" : "");
    put_u32(x->b, (uint32_t)d.elem);
    put_u64(x->b, n);
    for (size_t i = 0; i < n; i++) {
        cairn_value scratch; /* packed lists are read in place */
        CAIRN_TRY(emit_scalar(x, (uint32_t)d.elem, cairn__value_item(v, i, &scratch)));
    }
    return CAIRN_OK;
}

static cairn_status emit_kv(cairn__buf *b, const gw_kvs *k, const gw_kv *kv)
{
    gw_emit x = {b, k, kv->key};
    cairn_status st = CAIRN_OK;
    put_str(b, kv->key, kv->key_len);
    if (kv->is_alignment) {
        put_u32(b, GGUF_UINT32);
        put_u32(b, (uint32_t)k->alignment);
        return CAIRN_OK;
    }
    gw_desc d;
    if (kv->desc) {
        CAIRN_TRY(parse_desc(&x, kv->desc, &d));
    } else {
        int64_t t = natural_type(&x, kv->value, &st);
        if (t < 0)
            return st;
        d.type = (uint32_t)t;
    }
    put_u32(b, d.type);
    if (d.type == GGUF_ARRAY)
        return emit_array(&x, kv->value, kv->desc);
    return emit_scalar(&x, d.type, kv->value);
}

/* --------------------------------------------------------- tensor types */

/* Reads a gguf.tensor_types entry {"type", "type_id"?, "ne"} into e. */
static cairn_status parse_tt(const cairn_writer *w, const cairn__hf_entry *e, gw_type *g,
                             cairn_error *err)
{
    const cairn_value *tt = g->tt, *type = cairn_value_get(tt, "type");
    const cairn_value *id = cairn_value_get(tt, "type_id"), *ne = cairn_value_get(tt, "ne");
    const void *p = NULL;
    size_t len = 0;
    int64_t want, v;
    if (cairn_value_get_type(tt) != CAIRN_VALUE_MAP ||
        cairn_value_count(tt) != 2u + (id != NULL) || !type || !ne ||
        cairn_value_get_type(type) != CAIRN_VALUE_STRING ||
        cairn_value_get_type(ne) != CAIRN_VALUE_LIST)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': its gguf.tensor_types entry must "
                           "be {\"type\": name, \"type_id\": id (optional), \"ne\": [...]}",
                           w->path, e->name);
    cairn_value_get_data(type, &p, &len);
    if ((want = gguf_ttype_by_name(p, len)) < 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': gguf.tensor_types type "
                           "'%.*s' is not a ggml type GGUF files hold", w->path, e->name,
                           (int)(len < 64 ? len : 64), (const char *)p);
    if (id && (cairn_value_get_int(id, &v) != CAIRN_OK || v != want))
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': gguf.tensor_types type_id does "
                           "not match type %.*s (%lld)", w->path, e->name, (int)len,
                           (const char *)p, (long long)want);
    g->type = (uint32_t)want;
    g->n_dims = (uint32_t)cairn_value_count(ne);
    if (g->n_dims > GGUF_MAX_DIMS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': gguf.tensor_types ne has %u "
                           "dimensions; GGUF has at most %d", w->path, e->name, g->n_dims,
                           GGUF_MAX_DIMS);
    for (uint32_t k = 0; k < g->n_dims; k++) {
        if (cairn_value_get_int(cairn_value_at(ne, k), &v) != CAIRN_OK || v < 0)
            return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': gguf.tensor_types ne[%u] is "
                               "not an integer >= 0", w->path, e->name, k);
        g->ne[k] = (uint64_t)v;
    }
    return CAIRN_OK;
}

static void shape_text(char *buf, size_t size, uint32_t rank, const uint64_t *dims)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (uint32_t k = 0; k < rank && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, k ? ", %llu" : "%llu",
                              (unsigned long long)dims[k]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

/* The ggml type and ne of each tensor: from its gguf.tensor_types entry
 * (which must describe exactly the tensor's dtype and dims), else from its
 * dtype with ne = reverse(dims). */
static cairn_status resolve_tensor(const cairn_writer *w, const cairn__hf_entry *e, gw_type *g,
                                   cairn_error *err)
{
    char have[160], want[160];
    if (!g->tt) {
        int64_t t = gguf_ttype_for_dtype(e->dtype);
        if (t < 0)
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s' is %s, which GGUF has "
                               "no type for; a U8 tensor is written only as the bytes of a "
                               "block type named in the metadata's gguf.tensor_types", w->path,
                               e->name, cairn_dtype_name(e->dtype));
        g->type = (uint32_t)t;
        g->n_dims = e->rank;
        for (uint32_t k = 0; k < e->rank; k++)
            g->ne[k] = e->dims[e->rank - 1 - k];
        return CAIRN_OK;
    }
    CAIRN_TRY(parse_tt(w, e, g, err));
    const gguf_ttype *t = gguf_ttype_get(g->type);
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK] = {0}, bytes;
    const char *why = gguf_cairn_view(t, g->n_dims, g->ne, &dtype, &rank, dims, &bytes);
    if (why)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': gguf.tensor_types %s ne: %s",
                           w->path, e->name, t->name, why);
    if (dtype != e->dtype || rank != e->rank || memcmp(dims, e->dims, rank * sizeof *dims)) {
        shape_text(have, sizeof have, e->rank, e->dims);
        shape_text(want, sizeof want, rank, dims);
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s' is %s %s, but its gguf.tensor_types "
                           "entry (%s) needs %s %s", w->path, e->name,
                           cairn_dtype_name(e->dtype), have, t->name, cairn_dtype_name(dtype),
                           want);
    }
    return CAIRN_OK;
}

static cairn_status resolve_tensors(const cairn_writer *w, gw_writer *s, const cairn_value *tt,
                                    cairn_error *err)
{
    const cairn__hf_writer *h = &s->hf;
    free(s->types);
    if (!(s->types = calloc(h->count ? h->count : 1, sizeof *s->types)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; tt && i < cairn_value_count(tt); i++) {
        const char *name = cairn_value_key_at(tt, i);
        int64_t at = cairn__hf_find(h, name, strlen(name));
        if (at < 0)
            return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: metadata: gguf.tensor_types names "
                               "tensor '%s', which was not %s", w->path, name,
                               h->planned ? "declared" : "added");
        s->types[at].tt = cairn_value_at(tt, i);
    }
    for (size_t i = 0; i < h->count; i++)
        CAIRN_TRY(resolve_tensor(w, &h->entries[i], &s->types[i], err));
    return CAIRN_OK;
}

/* ----------------------------------------------------------------- finish */

static uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

/* Header: magic, version, counts, the pairs, the tensor infos with their
 * offsets in add order, each tensor padded to the alignment (as ggml). */
static cairn_status build_header(cairn_writer *w, gw_writer *s, const gw_kvs *k, cairn__buf *b,
                                 cairn_error *err)
{
    cairn__buf_put(b, GGUF_MAGIC, 4);
    put_u32(b, GGUF_VERSION_WRITTEN);
    put_u64(b, s->hf.count);
    put_u64(b, k->count);
    for (size_t i = 0; i < k->count; i++)
        CAIRN_TRY(emit_kv(b, k, &k->items[i]));
    uint64_t at = 0;
    for (size_t i = 0; i < s->hf.count; i++) {
        cairn__hf_entry *e = &s->hf.entries[i];
        const gw_type *g = &s->types[i];
        e->at = at;
        at = pad_to(at + e->size, k->alignment);
        s->data_size = at;
        put_str(b, e->name, e->name_len);
        put_u32(b, g->n_dims);
        for (uint32_t d = 0; d < g->n_dims; d++)
            put_u64(b, g->ne[d]);
        put_u32(b, g->type);
        put_u64(b, e->at);
    }
    if (b->oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the GGUF header", w->path);
    return CAIRN_OK;
}

static void kvs_free(gw_kvs *k)
{
    for (size_t i = 0; i < k->count; i++)
        free(k->items[i].key);
    free(k->items);
    cairn__nameset_free(&k->set);
}

/* Checks the metadata, turns it into pairs (k, caller frees with
 * kvs_free), settles the alignment and every tensor's type and builds the
 * header into b (caller frees b->p), which sets every rel and data_size. */
static cairn_status lay_out(cairn_writer *w, gw_writer *s, gw_kvs *k, cairn__buf *b,
                            cairn_error *err)
{
    const cairn_value *tt = NULL;
    memset(k, 0, sizeof *k);
    k->path = w->path;
    k->err = err;
    CAIRN_TRY(cairn__meta_check(s->hf.meta, cairn__hf_exists, &s->hf, err));
    CAIRN_TRY(collect(k, s->hf.meta, &tt));
    CAIRN_TRY(settle_alignment(k, w->alignment));
    CAIRN_TRY(resolve_tensors(w, s, tt, err));
    return build_header(w, s, k, b, err);
}

/* Lays out (k and b as lay_out) and writes the header and its padding. */
static cairn_status write_header(cairn_writer *w, gw_writer *s, gw_kvs *k, cairn__buf *b,
                                 cairn_error *err)
{
    CAIRN_TRY(lay_out(w, s, k, b, err));
    CAIRN_TRY(cairn__sink_write(&w->sink, b->p, b->len, err));
    return cairn__sink_pad(&w->sink, k->alignment, err);
}

/* Every tensor is known (and the metadata, set before): write the header
 * and its padding and make the file its final size, so each add writes its
 * payload in place (no spool). */
static cairn_status gw_declare(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                               cairn_error *err)
{
    gw_writer *s = w->state;
    CAIRN_TRY(cairn__hf_declare_all(w, decls, count, err));
    s->hf.planned = 1; /* for messages; the writer fails with any error below */
    gw_kvs k;
    cairn__buf b = {0};
    cairn_status st = write_header(w, s, &k, &b, err);
    if (st == CAIRN_OK)
        st = cairn__hf_planned(w, s->data_size, err);
    kvs_free(&k);
    free(b.p);
    return st;
}

/* The header, then the payloads in add order, each padded to the alignment. */
static cairn_status gw_finish(cairn_writer *w, cairn_error *err)
{
    gw_writer *s = w->state;
    if (s->hf.planned) /* header written at declare, payloads in place */
        return CAIRN_OK;
    gw_kvs k;
    cairn__buf b = {0};
    cairn_status st = write_header(w, s, &k, &b, err);
    if (st == CAIRN_OK)
        st = cairn__hf_copy(w, NULL, k.alignment, err);
    kvs_free(&k);
    free(b.p);
    return st;
}

static void gw_destroy(cairn_writer *w)
{
    free(((gw_writer *)w->state)->types);
    cairn__hf_destroy(w);
}

const cairn__writer_ops cairn__gguf_writer = CAIRN__HF_WRITER_OPS(
    gw, CAIRN_FORMAT_GGUF,
    .no_alias = "GGUF readers (ggml) require every tensor to have its own bytes",
    .set_metadata = gw_set_metadata, .destroy = gw_destroy);
