/* gguf_read.c -- opens GGUF files, versions 2 and 3 (docs/FORMAT.md §13):
 * bounds every count, length and offset against the bytes that are really
 * there, keeps the tensor table in file order, and decodes the key-value
 * metadata into the cairn tree on demand. */
#include "format/format.h"
#include "format/gguf/gguf.h"
#include "common/nameset.h"
#include "common/value_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define WINDOW (1u << 17) /* pread inputs: holds the longest key and any name */

/* One tensor info as the file says it (read_info). */
typedef struct gguf_tinfo {
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t info_at;  /* file offset of the tensor info */
    uint64_t rel;      /* offset inside the data section */
    uint64_t name_at;  /* file offset of the name's length */
    size_t name_len;
    char name[CAIRN_NAME_MAX + 1];
} gguf_tinfo;

/* What the reader keeps of it beside the cairn record (the packed tail):
 * the type, for opaque tensors, and where the info is, to read it again
 * for the tree. */
typedef struct gguf_tail {
    uint64_t info_at;
    uint32_t type;
} gguf_tail;

typedef struct gguf_reader {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn__packed tensors;  /* file order; tails are gguf_tail */
    uint64_t count;
    cairn__nameset index;
    uint32_t version;
    uint64_t kv_count;
    uint64_t values;        /* metadata values, array elements included */
    uint64_t alignment, data_at, payload;
    uint64_t opaque;        /* tensors of block types without a cairn dtype */
} gguf_reader;
CAIRN__TABLE_FIRST(gguf_reader);

/* ------------------------------------------------------------------ cursor */

/* A bounds-checked read position. `ctx` says what is being read ("kv #3
 * 'general.name'"), so every message names the field and its offset. */
typedef struct gguf_cur {
    const cairn_file *f;
    uint64_t pos;
    uint8_t *win;  /* pread inputs only: bytes [win_at, win_at + win_len) */
    uint64_t win_at;
    size_t win_len;
    char ctx[200];
    cairn_error *err;
} gguf_cur;

/* cerr(c, at, status, fmt, ...): fails at file offset `at`, in c's context. */
#define cerr(c, at, st, ...) \
    cairn__fail_at((c)->err, (st), (c)->f->path, "gguf", (at), (c)->ctx, __VA_ARGS__)

static uint64_t left(const gguf_cur *c) { return c->f->src.size - c->pos; }

/* Fails unless `n` more bytes exist for `field`. */
static cairn_status need(const gguf_cur *c, uint64_t n, const char *field)
{
    if (n <= left(c))
        return CAIRN_OK;
    return cerr(c, c->pos, CAIRN_E_CORRUPT, "%s needs %llu bytes, but the file ends %llu bytes "
                "later (file size %llu)", field, (unsigned long long)n,
                (unsigned long long)left(c), (unsigned long long)c->f->src.size);
}

/* Returns a pointer to the next n bytes (n <= WINDOW, already checked by
 * need()) and moves past them: into the mapping, or a refilled window. */
static cairn_status take(gguf_cur *c, size_t n, const uint8_t **p)
{
    const uint8_t *m = cairn__file_ptr(c->f, c->pos, n);
    if (!m) {
        if (c->pos < c->win_at || c->pos + n > c->win_at + c->win_len) {
            uint64_t want = left(c) < WINDOW ? left(c) : WINDOW;
            CAIRN_TRY(cairn__file_read(c->f, c->pos, c->win, (size_t)want, c->err));
            c->win_at = c->pos;
            c->win_len = (size_t)want;
        }
        m = c->win + (c->pos - c->win_at);
    }
    *p = m;
    c->pos += n;
    return CAIRN_OK;
}

static cairn_status get_u32(gguf_cur *c, const char *field, uint32_t *out)
{
    const uint8_t *p;
    CAIRN_TRY(need(c, 4, field));
    CAIRN_TRY(take(c, 4, &p));
    *out = cairn__le32(p);
    return CAIRN_OK;
}

static cairn_status get_u64(gguf_cur *c, const char *field, uint64_t *out)
{
    const uint8_t *p;
    CAIRN_TRY(need(c, 8, field));
    CAIRN_TRY(take(c, 8, &p));
    *out = cairn__le64(p);
    return CAIRN_OK;
}

/* A string's u64 length, checked against the bytes left (CORRUPT) and `max`
 * (LIMIT). *at receives the offset of the length field. */
static cairn_status get_len(gguf_cur *c, const char *field, uint64_t max, uint64_t *len,
                            uint64_t *at)
{
    *at = c->pos;
    CAIRN_TRY(get_u64(c, field, len));
    if (*len > left(c))
        return cerr(c, *at, CAIRN_E_CORRUPT, "%s length %llu runs past the end of the file "
                    "(%llu bytes left)", field, (unsigned long long)*len,
                    (unsigned long long)left(c));
    if (*len > max)
        return cerr(c, *at, CAIRN_E_LIMIT, "%s length %llu exceeds the limit of %llu bytes",
                    field, (unsigned long long)*len, (unsigned long long)max);
    return CAIRN_OK;
}

/* ------------------------------------------------------------- float bits */

/* binary32 bits to a double with the same value; a NaN keeps its sign and
 * payload bit for bit (a C conversion would set the quiet bit), so the
 * writer can give back the exact bits (gguf_write.c narrows the same way). */
static double f32_widen(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    if (!isnan(f))
        return (double)f;
    uint64_t d = ((uint64_t)(b >> 31) << 63) | (UINT64_C(0x7FF) << 52) |
                 ((uint64_t)(b & 0x7FFFFF) << 29);
    double r;
    memcpy(&r, &d, 8);
    return r;
}

/* ------------------------------------------------------------- metadata */

typedef struct kv_walk {
    gguf_cur c;
    int build;          /* make tree nodes (read_metadata) or only check (open) */
    uint64_t values;
    uint64_t alignment; /* general.alignment, or the default */
    char *keys;         /* every key so far, NUL-terminated, for duplicate checks */
    size_t keys_len, keys_cap;
    uint64_t *key_off;  /* kv_count entries */
    cairn__nameset set;
} kv_walk;

static const char *key_at(const void *ctx, uint32_t index, size_t *len)
{
    const kv_walk *w = ctx;
    const char *k = w->keys + w->key_off[index];
    *len = strlen(k);
    return k;
}

/* A node, or NOMEM. Frees `v` and says so when it is NULL. */
static cairn_status node(const gguf_cur *c, cairn_value *v)
{
    return v ? CAIRN_OK : cairn__fail(c->err, CAIRN_E_NOMEM, "%s: out of memory decoding GGUF "
                                      "metadata", c->f->path);
}

/* Arrays of numbers, bools or strings become packed lists (one array, not
 * a node per element: value_internal.h). */
static cairn_status append(const gguf_cur *c, cairn_value *list, cairn_value *item)
{
    return cairn__value_list_add(list, item) == CAIRN_OK ? CAIRN_OK : node(c, NULL);
}

/* One value of a fixed-size type as a stack node (no allocation). */
static void scalar_item(uint32_t type, const uint8_t *p, cairn_value *v)
{
    uint64_t bits;
    memset(v, 0, sizeof *v);
    v->type = CAIRN_VALUE_INT;
    switch (type) {
    case GGUF_UINT8: v->u.i = p[0]; break;
    case GGUF_INT8: v->u.i = (int8_t)p[0]; break;
    case GGUF_UINT16: v->u.i = cairn__le16(p); break;
    case GGUF_INT16: v->u.i = (int16_t)cairn__le16(p); break;
    case GGUF_UINT32: v->u.i = cairn__le32(p); break;
    case GGUF_INT32: v->u.i = (int32_t)cairn__le32(p); break;
    case GGUF_FLOAT32: v->type = CAIRN_VALUE_FLOAT, v->u.d = f32_widen(cairn__le32(p)); break;
    case GGUF_BOOL: v->type = CAIRN_VALUE_BOOL, v->u.b = p[0]; break;
    case GGUF_UINT64: /* the bit pattern: (uint64_t) of the int gives the value back */
    case GGUF_INT64: v->u.i = (int64_t)cairn__le64(p); break;
    case GGUF_FLOAT64:
        bits = cairn__le64(p);
        v->type = CAIRN_VALUE_FLOAT;
        memcpy(&v->u.d, &bits, 8);
        break;
    }
}

static cairn_value *scalar_node(uint32_t type, const uint8_t *p)
{
    cairn_value v;
    scalar_item(type, p, &v);
    return cairn_value_clone(&v);
}

/* A string value: STRING when it is valid UTF-8, else BYTES (the type
 * record still says STRING, so the writer gives back the same bytes). */
static cairn_status string_node(gguf_cur *c, uint64_t len, cairn_value **out)
{
    const uint8_t *p = cairn__file_ptr(c->f, c->pos, len);
    uint8_t *heap = NULL;
    if (!p) {
        heap = malloc(len ? (size_t)len : 1);
        if (!heap)
            return cairn__fail(c->err, CAIRN_E_NOMEM, "%s: out of memory for a %llu-byte GGUF "
                               "string", c->f->path, (unsigned long long)len);
        cairn_status st = cairn__file_read(c->f, c->pos, heap, (size_t)len, c->err);
        if (st != CAIRN_OK) {
            free(heap);
            return st;
        }
        p = heap;
    }
    int text = cairn__utf8_valid((const char *)p, (size_t)len);
    *out = cairn__value_new_blob(text ? CAIRN_VALUE_STRING : CAIRN_VALUE_BYTES, p, (size_t)len);
    free(heap);
    c->pos += len;
    return node(c, *out);
}

/* One value of a non-ARRAY type; *out is set only when building. */
static cairn_status walk_scalar(kv_walk *w, uint32_t type, cairn_value **out)
{
    gguf_cur *c = &w->c;
    uint64_t at = c->pos, len;
    const uint8_t *p;
    if (type == GGUF_STRING) {
        CAIRN_TRY(get_len(c, "string value", GGUF_MAX_STRING, &len, &at));
        if (w->build)
            return string_node(c, len, out);
        c->pos += len;
        return CAIRN_OK;
    }
    unsigned size = gguf_value_size(type);
    CAIRN_TRY(need(c, size, gguf_value_type_name(type)));
    CAIRN_TRY(take(c, size, &p));
    if (type == GGUF_BOOL && p[0] > 1)
        return cerr(c, at, CAIRN_E_CORRUPT, "BOOL value is %u; only 0 and 1 are valid", p[0]);
    if (!w->build)
        return CAIRN_OK;
    *out = scalar_node(type, p);
    return node(c, *out);
}

/* Checks a run of BOOL bytes without building nodes. */
static cairn_status check_bools(kv_walk *w, uint64_t n)
{
    while (n > 0) {
        size_t chunk = n < WINDOW ? (size_t)n : WINDOW;
        uint64_t at = w->c.pos;
        const uint8_t *p;
        CAIRN_TRY(take(&w->c, chunk, &p));
        for (size_t i = 0; i < chunk; i++)
            if (p[i] > 1)
                return cerr(&w->c, at + i, CAIRN_E_CORRUPT, "BOOL array element %llu is %u; "
                            "only 0 and 1 are valid", (unsigned long long)i, p[i]);
        n -= chunk;
    }
    return CAIRN_OK;
}

static cairn_status type_desc(const gguf_cur *c, uint32_t et, cairn_value **desc)
{
    char text[32];
    snprintf(text, sizeof text, "ARRAY[%s]", gguf_value_type_name(et));
    *desc = cairn_value_string(text);
    return node(c, *desc);
}

static cairn_status walk_array(kv_walk *w, int depth, cairn_value **out, cairn_value **desc);

/* The elements of an array of a fixed-size type, into `list` (packed). */
static cairn_status packed_elements(kv_walk *w, uint32_t et, uint64_t n, cairn_value *list)
{
    unsigned size = gguf_value_size(et);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t at = w->c.pos;
        const uint8_t *p;
        cairn_value item;
        CAIRN_TRY(need(&w->c, size, gguf_value_type_name(et)));
        CAIRN_TRY(take(&w->c, size, &p));
        if (et == GGUF_BOOL && p[0] > 1)
            return cerr(&w->c, at, CAIRN_E_CORRUPT, "BOOL value is %u; only 0 and 1 are valid",
                        p[0]);
        scalar_item(et, p, &item);
        if (cairn__value_list_add_copy(list, &item) != CAIRN_OK)
            return node(&w->c, NULL);
    }
    return CAIRN_OK;
}

/* The elements of an array whose header was read: into `list` (and their
 * type records into `descs`, for arrays of arrays) when building. */
static cairn_status walk_elements(kv_walk *w, uint32_t et, uint64_t n, int depth,
                                  cairn_value *list, cairn_value *descs)
{
    unsigned size = gguf_value_size(et);
    if (!w->build && et != GGUF_STRING && et != GGUF_ARRAY) {
        if (et == GGUF_BOOL)
            return check_bools(w, n);
        w->c.pos += n * size; /* checked against the bytes left by the caller */
        return CAIRN_OK;
    }
    if (et != GGUF_STRING && et != GGUF_ARRAY) /* numbers, bools: packed, no node each */
        return packed_elements(w, et, n, list);
    for (uint64_t i = 0; i < n; i++) {
        cairn_value *item = NULL, *item_desc = NULL;
        if (et == GGUF_ARRAY)
            CAIRN_TRY(walk_array(w, depth + 1, w->build ? &item : NULL,
                                 w->build ? &item_desc : NULL));
        else
            CAIRN_TRY(walk_scalar(w, et, &item));
        if (!w->build)
            continue;
        cairn_status st = append(&w->c, list, item);
        if (st == CAIRN_OK && item_desc)
            st = append(&w->c, descs, item_desc);
        else
            cairn_value_free(item_desc);
        CAIRN_TRY(st);
    }
    return CAIRN_OK;
}

/* An ARRAY value (after its type field): element type, count, elements.
 * Recursion is bounded by GGUF_MAX_NESTING. */
static cairn_status walk_array(kv_walk *w, int depth, cairn_value **out, cairn_value **desc)
{
    gguf_cur *c = &w->c;
    uint64_t at = c->pos, n;
    uint32_t et;
    if (depth > GGUF_MAX_NESTING)
        return cerr(c, at, CAIRN_E_LIMIT, "arrays nested more than %d deep", GGUF_MAX_NESTING);
    CAIRN_TRY(get_u32(c, "array element type", &et));
    if (!gguf_value_type_name(et))
        return cerr(c, at, CAIRN_E_CORRUPT, "array element type %u is not a GGUF value type "
                    "(0..12)", et);
    CAIRN_TRY(get_u64(c, "array length", &n));
    unsigned min = gguf_value_min_size(et);
    if (n > left(c) / min)
        return cerr(c, at + 4, CAIRN_E_CORRUPT, "array of %llu %s elements needs at least %llu "
                    "bytes per element, but only %llu bytes are left", (unsigned long long)n,
                    gguf_value_type_name(et), (unsigned long long)min,
                    (unsigned long long)left(c));
    w->values += n;
    if (w->build && w->values > GGUF_MAX_META_VALUES)
        return cerr(c, at, CAIRN_E_LIMIT, "the metadata holds more than %llu values (the limit "
                    "for decoding it into a tree)", (unsigned long long)GGUF_MAX_META_VALUES);
    if (!w->build)
        return walk_elements(w, et, n, depth, NULL, NULL);
    cairn_value *list = cairn_value_list();
    cairn_value *descs = et == GGUF_ARRAY ? cairn_value_list() : NULL;
    cairn_status st = node(c, list);
    if (st == CAIRN_OK && et == GGUF_ARRAY)
        st = node(c, descs);
    if (st == CAIRN_OK)
        st = walk_elements(w, et, n, depth, list, descs);
    if (st == CAIRN_OK && et != GGUF_ARRAY)
        st = type_desc(c, et, &descs);
    if (st != CAIRN_OK) {
        cairn_value_free(list);
        cairn_value_free(descs);
        return st;
    }
    *out = list;
    *desc = descs;
    return CAIRN_OK;
}

/* A key: 1..65535 bytes of UTF-8 without NUL, not seen before. */
static cairn_status walk_key(kv_walk *w, uint64_t index, const char **key, size_t *key_len)
{
    gguf_cur *c = &w->c;
    uint64_t len, at;
    const uint8_t *p;
    char shown[96];
    CAIRN_TRY(get_len(c, "key", GGUF_MAX_KEY, &len, &at));
    if (len == 0)
        return cerr(c, at, CAIRN_E_CORRUPT, "empty key");
    CAIRN_TRY(take(c, (size_t)len, &p));
    const char *k = (const char *)p;
    cairn__printable(k, (size_t)len, shown, sizeof shown);
    if (memchr(k, '\0', (size_t)len) || !cairn__utf8_valid(k, (size_t)len))
        return cerr(c, at, CAIRN_E_CORRUPT, "key '%s' is not UTF-8 text without NUL bytes",
                    shown);
    if (w->keys_cap - w->keys_len < len + 1) {
        size_t cap = w->keys_cap ? w->keys_cap : 4096;
        while (cap - w->keys_len < len + 1)
            cap *= 2; /* bounded by the file size: cannot overflow */
        char *grown = realloc(w->keys, cap);
        if (!grown)
            return node(c, NULL);
        w->keys = grown;
        w->keys_cap = cap;
    }
    memcpy(w->keys + w->keys_len, k, (size_t)len);
    w->keys[w->keys_len + len] = '\0';
    if (cairn__nameset_find(&w->set, w->keys + w->keys_len, (size_t)len, key_at, w) >= 0)
        return cerr(c, at, CAIRN_E_CORRUPT, "key '%s' appears twice", shown);
    w->key_off[index] = w->keys_len;
    w->keys_len += len + 1;
    CAIRN_TRY(cairn__nameset_insert(&w->set, (uint32_t)index, key_at, w, c->err));
    snprintf(c->ctx, sizeof c->ctx, "kv #%llu '%s'", (unsigned long long)index, shown);
    *key = w->keys + w->key_off[index];
    *key_len = (size_t)len;
    return CAIRN_OK;
}

/* general.alignment must be a UINT32 power of two (ggml refuses anything
 * else, and a wrong type once made it abort). */
static cairn_status check_alignment(kv_walk *w, uint32_t type, uint64_t at)
{
    gguf_cur *c = &w->c;
    if (type != GGUF_UINT32)
        return cerr(c, at, CAIRN_E_CORRUPT, "general.alignment has type %s; it must be UINT32",
                    gguf_value_type_name(type));
    uint64_t save = c->pos;
    uint32_t a;
    CAIRN_TRY(get_u32(c, "UINT32", &a));
    c->pos = save;
    if (a == 0 || (a & (a - 1)))
        return cerr(c, save, CAIRN_E_CORRUPT, "general.alignment is %u, not a power of two", a);
    w->alignment = a;
    return CAIRN_OK;
}

static cairn_status walk_kv(kv_walk *w, uint64_t index, cairn_value *kv, cairn_value *types)
{
    gguf_cur *c = &w->c;
    const char *key = NULL;
    size_t key_len = 0;
    uint32_t type;
    snprintf(c->ctx, sizeof c->ctx, "kv #%llu", (unsigned long long)index);
    CAIRN_TRY(walk_key(w, index, &key, &key_len));
    uint64_t at = c->pos;
    CAIRN_TRY(get_u32(c, "value type", &type));
    if (!gguf_value_type_name(type))
        return cerr(c, at, CAIRN_E_CORRUPT, "value type %u is not a GGUF value type (0..12)",
                    type);
    if (strcmp(key, GGUF_ALIGNMENT_KEY) == 0)
        CAIRN_TRY(check_alignment(w, type, at));
    w->values++;
    cairn_value *v = NULL, *desc = NULL;
    if (type == GGUF_ARRAY)
        CAIRN_TRY(walk_array(w, 1, &v, &desc));
    else
        CAIRN_TRY(walk_scalar(w, type, &v));
    if (!w->build)
        return CAIRN_OK;
    if (!desc && !(desc = cairn_value_string(gguf_value_type_name(type)))) {
        cairn_value_free(v);
        return node(c, NULL);
    }
    if (cairn__value_map_push(kv, key, key_len, v) != CAIRN_OK) {
        cairn_value_free(v);
        cairn_value_free(desc);
        return node(c, NULL);
    }
    if (cairn__value_map_push(types, key, key_len, desc) != CAIRN_OK) {
        cairn_value_free(desc);
        return node(c, NULL);
    }
    return CAIRN_OK;
}

static void walk_free(kv_walk *w)
{
    free(w->c.win);
    free(w->keys);
    free(w->key_off);
    cairn__nameset_free(&w->set);
}

/* Walks the kv_count pairs from offset 24: checks them all (open), or also
 * builds kv and types (read_metadata). Leaves w->c.pos after the last. */
static cairn_status walk_kvs(kv_walk *w, uint64_t kv_count, cairn_value *kv, cairn_value *types)
{
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    w->c.pos = GGUF_HEADER_SIZE;
    w->key_off = malloc((kv_count ? kv_count : 1) * sizeof *w->key_off);
    if (!w->key_off)
        return node(&w->c, NULL);
    for (uint64_t i = 0; i < kv_count; i++)
        CAIRN_TRY(walk_kv(w, i, kv, types));
    w->c.ctx[0] = '\0';
    return CAIRN_OK;
}

/* --------------------------------------------------------------- header */

static uint32_t bswap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24);
}

static cairn_status read_header(gguf_cur *c, gguf_reader *r, uint64_t *tensor_count)
{
    const uint8_t *p;
    uint64_t size = c->f->src.size;
    if (size < 4 || cairn__file_read(c->f, 0, c->win, 4, NULL) != CAIRN_OK ||
        memcmp(c->win, GGUF_MAGIC, 4) != 0)
        return cairn__fail(c->err, CAIRN_E_FORMAT, "%s: offset 0: not a GGUF file (bad magic)",
                           c->f->path);
    if (size < GGUF_HEADER_SIZE)
        return cerr(c, 0, CAIRN_E_CORRUPT, "file is %llu bytes, shorter than the %d-byte GGUF "
                    "header", (unsigned long long)size, GGUF_HEADER_SIZE);
    c->pos = 4;
    CAIRN_TRY(take(c, 4, &p));
    uint32_t v = cairn__le32(p);
    if (v == 1)
        return cerr(c, 4, CAIRN_E_UNSUPPORTED, "GGUF version 1 (32-bit counts and lengths) is "
                    "not supported, as in ggml; versions 2 and 3 are");
    if ((v & 0xFFFF) == 0 && bswap32(v) >= 1 && bswap32(v) <= 3)
        return cerr(c, 4, CAIRN_E_UNSUPPORTED, "version field reads 0x%08x: a big-endian GGUF "
                    "(version %u) file; only little-endian GGUF is supported", v, bswap32(v));
    if (v != 2 && v != 3)
        return cerr(c, 4, CAIRN_E_UNSUPPORTED, "GGUF version %u is not supported (2 and 3 are)",
                    v);
    r->version = v;
    CAIRN_TRY(get_u64(c, "tensor_count", tensor_count));
    CAIRN_TRY(get_u64(c, "metadata_kv_count", &r->kv_count));
    /* Smallest kv: 8-byte length, 1-byte key, 4-byte type, 1-byte value.
     * Smallest tensor info: 8 + 1 name, 4 n_dims, 4 type, 8 offset. */
    if (r->kv_count > GGUF_MAX_KVS)
        return cerr(c, 16, CAIRN_E_LIMIT, "metadata_kv_count %llu exceeds the limit of %llu",
                    (unsigned long long)r->kv_count, (unsigned long long)GGUF_MAX_KVS);
    if (*tensor_count > GGUF_MAX_TENSORS)
        return cerr(c, 8, CAIRN_E_LIMIT, "tensor_count %llu exceeds the limit of %llu",
                    (unsigned long long)*tensor_count, (unsigned long long)GGUF_MAX_TENSORS);
    if (r->kv_count * 14 + *tensor_count * 25 > size - GGUF_HEADER_SIZE)
        return cerr(c, 8, CAIRN_E_CORRUPT, "%llu tensors and %llu key-value pairs cannot fit in "
                    "the %llu bytes after the header", (unsigned long long)*tensor_count,
                    (unsigned long long)r->kv_count,
                    (unsigned long long)(size - GGUF_HEADER_SIZE));
    return CAIRN_OK;
}

/* ------------------------------------------------------------ tensor infos */

static const char *tensor_name_at(const void *ctx, uint32_t index, size_t *len)
{
    const gguf_reader *r = ctx;
    return cairn__packed_name(&r->tensors, index, len);
}

static gguf_tail tail_of(const gguf_reader *r, uint64_t i)
{
    gguf_tail t;
    cairn__packed_tail(&r->tensors, i, &t);
    return t;
}

/* The name, checked and copied into g (the window may move before it is used). */
static cairn_status read_name(gguf_cur *c, gguf_tinfo *g, uint64_t i)
{
    uint64_t len;
    const uint8_t *p;
    char shown[96];
    CAIRN_TRY(get_len(c, "tensor name", CAIRN_NAME_MAX, &len, &g->name_at));
    if (len == 0)
        return cerr(c, g->name_at, CAIRN_E_CORRUPT, "empty tensor name");
    CAIRN_TRY(take(c, (size_t)len, &p));
    const char *name = (const char *)p;
    cairn__printable(name, (size_t)len, shown, sizeof shown);
    if (memchr(name, '\0', (size_t)len) || !cairn__utf8_valid(name, (size_t)len))
        return cerr(c, g->name_at, CAIRN_E_CORRUPT, "tensor name '%s' is not UTF-8 text without "
                    "NUL bytes", shown);
    memcpy(g->name, name, (size_t)len);
    g->name[len] = '\0';
    g->name_len = (size_t)len;
    snprintf(c->ctx, sizeof c->ctx, "tensor info #%llu '%s'", (unsigned long long)i, shown);
    return CAIRN_OK;
}

static cairn_status read_info(gguf_cur *c, gguf_tinfo *g, uint64_t i)
{
    uint64_t at;
    snprintf(c->ctx, sizeof c->ctx, "tensor info #%llu", (unsigned long long)i);
    g->info_at = c->pos;
    CAIRN_TRY(read_name(c, g, i));
    at = c->pos;
    CAIRN_TRY(get_u32(c, "n_dims", &g->n_dims));
    if (g->n_dims > GGUF_MAX_DIMS)
        return cerr(c, at, CAIRN_E_LIMIT, "n_dims %u exceeds GGUF's %d (GGML_MAX_DIMS)",
                    g->n_dims, GGUF_MAX_DIMS);
    for (uint32_t k = 0; k < g->n_dims; k++) {
        at = c->pos;
        CAIRN_TRY(get_u64(c, "ne", &g->ne[k]));
        if ((int64_t)g->ne[k] < 0)
            return cerr(c, at, CAIRN_E_CORRUPT, "ne[%u] is negative (%lld)", k,
                        (long long)(int64_t)g->ne[k]);
    }
    at = c->pos;
    CAIRN_TRY(get_u32(c, "type", &g->type));
    if (!gguf_ttype_get(g->type)) {
        const gguf_ttype *old = gguf_ttype_any(g->type);
        if (old)
            return cerr(c, at, CAIRN_E_UNSUPPORTED, "ggml type %u (%s) was removed from GGUF "
                        "files and is not supported", g->type, old->name);
        return cerr(c, at, CAIRN_E_UNSUPPORTED, "unknown ggml type %u (this library knows 0..%d)",
                    g->type, GGUF_TTYPE_COUNT - 1);
    }
    return get_u64(c, "offset", &g->rel);
}

/* Adds tensor i (its info in g) to the table once the data section is
 * known. */
static cairn_status place_tensor(gguf_cur *c, gguf_reader *r, const gguf_tinfo *g, uint64_t i)
{
    cairn__tensor rec;
    memset(&rec, 0, sizeof rec);
    cairn_tensor_info *in = &rec.info;
    const gguf_ttype *t = gguf_ttype_get(g->type);
    char shown[96];
    uint64_t bytes, data_len = c->f->src.size - r->data_at;
    cairn__printable(g->name, g->name_len, shown, sizeof shown);
    if (cairn__nameset_find(&r->index, g->name, g->name_len, tensor_name_at, r) >= 0)
        return cerr(c, g->name_at, CAIRN_E_CORRUPT, "tensor name '%s' appears twice", shown);
    const char *why = gguf_cairn_view(t, g->n_dims, g->ne, &in->dtype, &in->rank, in->dims,
                                      &bytes);
    if (why)
        return cerr(c, g->info_at, CAIRN_E_CORRUPT, "type %s (block %u): %s", t->name, t->block,
                    why);
    /* cairn_writer_add's size rule, so every tensor read can be written:
     * even counting zero dimensions as 1, at most 2^62 bytes. */
    uint64_t bound = cairn_dtype_size(in->dtype);
    for (uint32_t k = 0; k < in->rank; k++)
        if (cairn__mul_overflow(bound, in->dims[k] ? in->dims[k] : 1, &bound) ||
            bound > GGUF_MAX_TENSOR_BYTES)
            return cerr(c, g->info_at, CAIRN_E_LIMIT, "the shape exceeds cairn's tensor size "
                        "limit of 2^62 bytes (zero dimensions counted as 1)");
    if (g->rel % r->alignment)
        return cerr(c, g->info_at, CAIRN_E_CORRUPT, "offset %llu is not a multiple of the "
                    "alignment %llu", (unsigned long long)g->rel,
                    (unsigned long long)r->alignment);
    if (g->rel > data_len || bytes > data_len - g->rel)
        return cerr(c, g->info_at, CAIRN_E_CORRUPT, "data [%llu, +%llu) runs past the end of the "
                    "data section (%llu bytes at file offset %llu)", (unsigned long long)g->rel,
                    (unsigned long long)bytes, (unsigned long long)data_len,
                    (unsigned long long)r->data_at);
    in->name = g->name;
    in->name_len = g->name_len;
    in->count = t->dtype == CAIRN_DTYPE_INVALID ? bytes : bytes / cairn_dtype_size(in->dtype);
    in->raw_size = in->stored_size = bytes;
    in->offset = r->data_at + g->rel;
    in->alignment = r->alignment;
    in->codec = CAIRN_CODEC_NONE;
    in->zero_copy = cairn__file_ptr(c->f, in->offset, bytes) != NULL;
    r->payload += bytes;
    r->opaque += t->dtype == CAIRN_DTYPE_INVALID;
    gguf_tail tail = {g->info_at, g->type};
    CAIRN_TRY(cairn__packed_add(&r->tensors, &rec, &tail, c->f->path, c->err));
    return cairn__nameset_insert(&r->index, (uint32_t)i, tensor_name_at, r, c->err);
}

typedef struct span {
    uint64_t begin, end, index;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* No two tensors share a byte (zero-size tensors take none). */
static cairn_status check_overlaps(gguf_cur *c, gguf_reader *r)
{
    uint64_t n = 0;
    cairn__tensor t;
    for (uint64_t i = 0; i < r->count; i++) {
        cairn__packed_get(&r->tensors, i, &t);
        n += t.info.stored_size != 0;
    }
    span *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return node(c, NULL);
    n = 0;
    for (uint64_t i = 0; i < r->count; i++) {
        cairn__packed_get(&r->tensors, i, &t);
        uint64_t rel = t.info.offset - r->data_at;
        if (t.info.stored_size)
            s[n++] = (span){rel, rel + t.info.stored_size, i};
    }
    qsort(s, (size_t)n, sizeof *s, span_cmp);
    cairn_status st = CAIRN_OK;
    for (uint64_t k = 1; k < n && st == CAIRN_OK; k++) {
        if (s[k].begin >= s[k - 1].end)
            continue;
        char a[96], b[96];
        size_t xl, yl;
        const char *x = cairn__packed_name(&r->tensors, s[k].index, &xl);
        const char *y = cairn__packed_name(&r->tensors, s[k - 1].index, &yl);
        c->ctx[0] = '\0';
        st = cerr(c, tail_of(r, s[k].index).info_at, CAIRN_E_CORRUPT, "tensor '%s' (data [%llu, "
                  "%llu)) overlaps tensor '%s' (data [%llu, %llu))",
                  cairn__printable(x, xl, a, sizeof a), (unsigned long long)s[k].begin,
                  (unsigned long long)s[k].end, cairn__printable(y, yl, b, sizeof b),
                  (unsigned long long)s[k - 1].begin, (unsigned long long)s[k - 1].end);
    }
    free(s);
    return st;
}

/* The infos are read twice: once to find where the data section starts
 * (every info checked), then to place each tensor and keep its record --
 * nothing is kept per tensor but the record. */
static cairn_status read_infos(gguf_cur *c, gguf_reader *r)
{
    gguf_tinfo *g = malloc(sizeof *g);
    if (!g)
        return node(c, NULL);
    uint64_t start = c->pos;
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; st == CAIRN_OK && i < r->count; i++)
        st = read_info(c, g, i);
    c->ctx[0] = '\0';
    uint64_t end = c->pos, a = r->alignment;
    r->data_at = (end + a - 1) / a * a; /* end < 2^63 and a <= 2^32: no overflow */
    if (st == CAIRN_OK && r->count > 0 && r->data_at > c->f->src.size)
        st = cerr(c, end, CAIRN_E_CORRUPT, "the data section would start at offset %llu "
                  "(aligned to %llu), past the end of the file (%llu bytes)",
                  (unsigned long long)r->data_at, (unsigned long long)a,
                  (unsigned long long)c->f->src.size);
    c->pos = start;
    for (uint64_t i = 0; st == CAIRN_OK && i < r->count; i++) {
        st = read_info(c, g, i);
        if (st == CAIRN_OK)
            st = place_tensor(c, r, g, i);
    }
    free(g);
    CAIRN_TRY(st);
    c->ctx[0] = '\0';
    return check_overlaps(c, r);
}

/* ------------------------------------------------------------------ open */

static void reader_free(void *state)
{
    gguf_reader *r = state;
    if (!r)
        return;
    cairn__packed_free(&r->tensors);
    cairn__nameset_free(&r->index);
    free(r);
}

static cairn_status cur_init(gguf_cur *c, const cairn_file *f, cairn_error *err)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->err = err;
    c->win = malloc(WINDOW);
    return c->win ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
}

static cairn_status parse_file(const cairn_file *f, gguf_reader **out, cairn_error *err)
{
    kv_walk w;
    memset(&w, 0, sizeof w);
    gguf_reader *r = calloc(1, sizeof *r);
    cairn_status st = cur_init(&w.c, f, err);
    if (st == CAIRN_OK && !r)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    if (r)
        cairn__packed_init(&r->tensors, sizeof(gguf_tail));
    if (st == CAIRN_OK)
        st = read_header(&w.c, r, &r->count);
    if (st == CAIRN_OK)
        st = walk_kvs(&w, r->kv_count, NULL, NULL);
    if (st == CAIRN_OK) {
        r->values = w.values;
        r->alignment = w.alignment;
        st = read_infos(&w.c, r);
    }
    walk_free(&w);
    if (st != CAIRN_OK) {
        reader_free(r);
        return st;
    }
    *out = r;
    return CAIRN_OK;
}

static cairn_status gguf_open(cairn_file *f, cairn_error *err)
{
    gguf_reader *r;
    CAIRN_TRY(parse_file(f, &r, err));
    cairn__table_init_packed(&r->table, &r->tensors, NULL, reader_free);
    cairn__table_index(&r->table, &r->index, tensor_name_at, r);
    cairn__table_info(&r->table, CAIRN_FORMAT_GGUF, r->version, r->payload, 0,
                      r->count ? r->alignment : 1, r->kv_count > 0 || r->opaque > 0);
    f->state = r;
    return CAIRN_OK;
}

/* ------------------------------------------------------------- metadata */

static cairn_status nomem(const cairn_file *f, cairn_error *err)
{
    return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory decoding GGUF metadata", f->path);
}

/* Adds v (which may be NULL after a failed allocation) under key; frees v
 * on failure. */
static cairn_status push(const cairn_file *f, cairn_value *map, const char *key, cairn_value *v,
                         cairn_error *err)
{
    if (v && cairn__value_map_push(map, key, strlen(key), v) == CAIRN_OK)
        return CAIRN_OK;
    cairn_value_free(v);
    return nomem(f, err);
}

/* {"type": "Q4_K", "type_id": 12, "ne": [ne0, ne1, ...]} */
static cairn_status tensor_type_entry(const cairn_file *f, const gguf_tinfo *g, cairn_value **out,
                                      cairn_error *err)
{
    cairn_value *m = cairn_value_map(), *ne = cairn_value_list();
    cairn_status st = m && ne ? CAIRN_OK : nomem(f, err);
    if (st == CAIRN_OK)
        st = push(f, m, "type", cairn_value_string(gguf_ttype_get(g->type)->name), err);
    if (st == CAIRN_OK)
        st = push(f, m, "type_id", cairn_value_int(g->type), err);
    for (uint32_t k = 0; st == CAIRN_OK && k < g->n_dims; k++) {
        cairn_value *d = cairn_value_int((int64_t)g->ne[k]);
        if (!d || cairn_value_append(ne, d, NULL) != CAIRN_OK) {
            cairn_value_free(d);
            st = nomem(f, err);
        }
    }
    if (st == CAIRN_OK) {
        st = push(f, m, "ne", ne, err);
        ne = NULL;
    }
    cairn_value_free(ne);
    if (st != CAIRN_OK) {
        cairn_value_free(m);
        return st;
    }
    *out = m;
    return CAIRN_OK;
}

/* The opaque tensors' infos are read again from the file for their ne. */
static cairn_status tensor_types(const cairn_file *f, const gguf_reader *r, cairn_value *map,
                                 cairn_error *err)
{
    if (!r->opaque)
        return CAIRN_OK;
    gguf_cur c;
    gguf_tinfo *g = malloc(sizeof *g);
    cairn_status st = g ? cur_init(&c, f, err) : nomem(f, err);
    if (st != CAIRN_OK) {
        free(g);
        return st;
    }
    for (uint64_t i = 0; st == CAIRN_OK && i < r->count; i++) {
        gguf_tail t = tail_of(r, i);
        if (gguf_ttype_get(t.type)->dtype != CAIRN_DTYPE_INVALID)
            continue;
        cairn_value *e;
        size_t len;
        c.pos = t.info_at;
        st = read_info(&c, g, i);
        if (st == CAIRN_OK && g->type != t.type)
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: gguf at offset %llu: tensor info #%llu "
                             "changed since the file was opened", f->path,
                             (unsigned long long)t.info_at, (unsigned long long)i);
        if (st == CAIRN_OK)
            st = tensor_type_entry(f, g, &e, err);
        if (st == CAIRN_OK)
            st = push(f, map, cairn__packed_name(&r->tensors, i, &len), e, err);
    }
    free(c.win);
    free(g);
    return st;
}

/* The "gguf" map: version, kv, types, tensor_types. */
static cairn_status build_tree(const cairn_file *f, const gguf_reader *r, cairn_value *g,
                               cairn_error *err)
{
    kv_walk w;
    memset(&w, 0, sizeof w);
    w.build = 1;
    cairn_value *kv = cairn_value_map(), *types = cairn_value_map(), *tt = cairn_value_map();
    cairn_status st = cur_init(&w.c, f, err);
    if (st == CAIRN_OK && (!kv || !types || !tt))
        st = node(&w.c, NULL);
    if (st == CAIRN_OK)
        st = walk_kvs(&w, r->kv_count, kv, types);
    walk_free(&w);
    if (st == CAIRN_OK)
        st = tensor_types(f, r, tt, err);
    if (st == CAIRN_OK)
        st = push(f, g, "version", cairn_value_int(r->version), err);
    if (st == CAIRN_OK) {
        st = push(f, g, "kv", kv, err);
        kv = NULL;
    }
    if (st == CAIRN_OK) {
        st = push(f, g, "types", types, err);
        types = NULL;
    }
    if (st == CAIRN_OK) {
        st = push(f, g, "tensor_types", tt, err);
        tt = NULL;
    }
    cairn_value_free(kv);
    cairn_value_free(types);
    cairn_value_free(tt);
    return st;
}

static cairn_status gguf_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const gguf_reader *r = f->state;
    if (r->values > GGUF_MAX_META_VALUES)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: gguf at offset %d: the metadata holds %llu "
                           "values, more than the %llu this library decodes into a tree (the "
                           "tensors still read)", f->path, GGUF_HEADER_SIZE,
                           (unsigned long long)r->values,
                           (unsigned long long)GGUF_MAX_META_VALUES);
    cairn_value *root = cairn_value_map(), *g = cairn_value_map();
    cairn_status st = root && g ? CAIRN_OK : nomem(f, err);
    if (st == CAIRN_OK)
        st = build_tree(f, r, g, err);
    if (st == CAIRN_OK) {
        st = push(f, root, GGUF_TREE_KEY, g, err);
        g = NULL;
    }
    cairn_value_free(g);
    if (st != CAIRN_OK) {
        cairn_value_free(root);
        return st;
    }
    *out = root;
    return CAIRN_OK;
}

/* Parses the file again and insists it still says the same thing (with
 * pread inputs it may have changed since open), then decodes the metadata. */
static cairn_status gguf_verify_structure(const cairn_file *f, cairn_error *err)
{
    const gguf_reader *r = f->state;
    gguf_reader *again;
    CAIRN_TRY(parse_file(f, &again, err));
    int same = again->count == r->count && again->data_at == r->data_at &&
               again->kv_count == r->kv_count;
    for (uint64_t i = 0; same && i < r->count; i++) {
        cairn__tensor a, b;
        cairn__packed_get(&r->tensors, i, &a);
        cairn__packed_get(&again->tensors, i, &b);
        same = cairn__tensor_info_same(&a.info, &b.info) &&
               tail_of(r, i).type == tail_of(again, i).type;
    }
    reader_free(again);
    if (!same)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: gguf at offset 0: the header changed "
                           "since the file was opened", f->path);
    return cairn__metadata_check(f, err);
}

const cairn__reader_ops cairn__gguf_reader =
    CAIRN__READER_OPS(gguf, CAIRN_FORMAT_GGUF, .verify_structure = gguf_verify_structure,
                      .read_metadata = gguf_read_metadata);
