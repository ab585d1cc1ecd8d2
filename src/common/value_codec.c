/* value_codec.c -- the metadata tree's binary encoding (docs/FORMAT.md §6.1, §6.2). */
#include "common/value_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    TAG_NULL = 0x00,
    TAG_FALSE = 0x01,
    TAG_TRUE = 0x02,
    TAG_INT = 0x03,
    TAG_FLOAT = 0x04,
    TAG_STRING = 0x05,
    TAG_BYTES = 0x06,
    TAG_LIST = 0x07,
    TAG_MAP = 0x08,
    TAG_TENSOR = 0x09,
    TAG_EXT_FIRST = 0x40,
    TAG_EXT_LAST = 0x7F
};

/* ================================================================ encoding */

typedef struct encoder {
    cairn__tensor_exists_fn exists;
    void *ctx;
    cairn_error *err;
    uint64_t size; /* measured so far */
    uint8_t *buf;
    size_t pos;
} encoder;

static cairn_status grow_size(encoder *e, uint64_t n)
{
    if (n > CAIRN_META_MAX_SIZE - e->size)
        return cairn__fail(e->err, CAIRN_E_LIMIT,
                           "metadata: the encoding is larger than the %llu MiB limit",
                           CAIRN_META_MAX_SIZE >> 20);
    e->size += n;
    return CAIRN_OK;
}

static cairn_status check_ref(encoder *e, const char *name, size_t len)
{
    if (!e->exists || e->exists(e->ctx, name, len))
        return CAIRN_OK;
    char shown[96];
    return cairn__fail(e->err, CAIRN_E_NOT_FOUND,
                       "metadata: tensor reference '%s' names no tensor of the archive",
                       cairn__printable(name, len, shown, sizeof shown));
}

/* First pass: the exact size, and every check that can fail, so the second
 * pass writes into one right-sized buffer. Recursion stops at depth 64. */
static cairn_status measure(encoder *e, const cairn_value *v, int depth)
{
    const void *data;
    size_t len;
    cairn_value_type type = cairn_value_get_type(v);
    switch (type) {
    case CAIRN_VALUE_NULL:
    case CAIRN_VALUE_BOOL:
        return grow_size(e, 1);
    case CAIRN_VALUE_INT:
    case CAIRN_VALUE_FLOAT:
        return grow_size(e, 9);
    case CAIRN_VALUE_STRING:
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(v, &data, &len);
        if (type == CAIRN_VALUE_TENSOR)
            CAIRN_TRY(check_ref(e, data, len));
        return grow_size(e, 5 + (uint64_t)len);
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        break;
    }
    if (depth > CAIRN_META_MAX_DEPTH)
        return cairn__fail(e->err, CAIRN_E_LIMIT, "metadata: nesting deeper than %d levels",
                           CAIRN_META_MAX_DEPTH);
    CAIRN_TRY(grow_size(e, 5));
    size_t count = cairn_value_count(v);
    for (size_t i = 0; i < count; i++) {
        if (type == CAIRN_VALUE_MAP)
            CAIRN_TRY(grow_size(e, 4 + (uint64_t)strlen(cairn_value_key_at(v, i))));
        cairn_value scratch;
        CAIRN_TRY(measure(e, cairn__value_item(v, i, &scratch), depth + 1));
    }
    return CAIRN_OK;
}

static void put_u8(encoder *e, uint8_t b) { e->buf[e->pos++] = b; }

static void put_u32(encoder *e, size_t v)
{
    cairn__put32(e->buf + e->pos, (uint32_t)v);
    e->pos += 4;
}

static void put_bytes(encoder *e, const void *p, size_t n)
{
    if (n)
        memcpy(e->buf + e->pos, p, n);
    e->pos += n;
}

static uint8_t blob_tag(cairn_value_type type)
{
    if (type == CAIRN_VALUE_STRING)
        return TAG_STRING;
    return type == CAIRN_VALUE_BYTES ? TAG_BYTES : TAG_TENSOR;
}

/* Second pass over a tree that measure() accepted: cannot fail. */
static void write_value(encoder *e, const cairn_value *v)
{
    const void *data;
    size_t len;
    int b;
    int64_t i;
    double d;
    uint64_t bits;
    cairn_value_type type = cairn_value_get_type(v);
    switch (type) {
    case CAIRN_VALUE_NULL:
        put_u8(e, TAG_NULL);
        return;
    case CAIRN_VALUE_BOOL:
        cairn_value_get_bool(v, &b);
        put_u8(e, b ? TAG_TRUE : TAG_FALSE);
        return;
    case CAIRN_VALUE_INT:
        cairn_value_get_int(v, &i);
        put_u8(e, TAG_INT);
        cairn__put64(e->buf + e->pos, (uint64_t)i);
        e->pos += 8;
        return;
    case CAIRN_VALUE_FLOAT:
        cairn_value_get_float(v, &d);
        memcpy(&bits, &d, 8);
        put_u8(e, TAG_FLOAT);
        cairn__put64(e->buf + e->pos, bits);
        e->pos += 8;
        return;
    case CAIRN_VALUE_STRING:
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(v, &data, &len);
        put_u8(e, blob_tag(type));
        put_u32(e, len);
        put_bytes(e, data, len);
        return;
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        break;
    }
    size_t count = cairn_value_count(v);
    put_u8(e, type == CAIRN_VALUE_MAP ? TAG_MAP : TAG_LIST);
    put_u32(e, count);
    for (size_t k = 0; k < count; k++) {
        if (type == CAIRN_VALUE_MAP) {
            const char *key = cairn_value_key_at(v, k);
            size_t key_len = strlen(key);
            put_u32(e, key_len);
            put_bytes(e, key, key_len);
        }
        cairn_value scratch;
        write_value(e, cairn__value_item(v, k, &scratch));
    }
}

cairn_status cairn__meta_encode(const cairn_value *tree, cairn__tensor_exists_fn exists, void *ctx,
                                uint8_t **out, size_t *out_len, cairn_error *err)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!tree || !out || !out_len)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: encode: NULL argument");
    if (cairn_value_get_type(tree) != CAIRN_VALUE_MAP)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: the root of the tree must be a map");
    encoder e = {exists, ctx, err, 0, NULL, 0};
    CAIRN_TRY(measure(&e, tree, 1));
    e.buf = malloc((size_t)e.size);
    if (!e.buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: out of memory for %" PRIu64 " bytes",
                           e.size);
    write_value(&e, tree);
    *out = e.buf;
    *out_len = e.pos;
    return CAIRN_OK;
}

cairn_status cairn__meta_check(const cairn_value *tree, cairn__tensor_exists_fn exists, void *ctx,
                               cairn_error *err)
{
    if (!tree || cairn_value_count(tree) == 0)
        return CAIRN_OK;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    CAIRN_TRY(cairn__meta_encode(tree, exists, ctx, &enc, &enc_len, err));
    free(enc);
    return CAIRN_OK;
}

/* ================================================================ decoding */

typedef struct decoder {
    const uint8_t *p;
    size_t len, pos;
    const char *file;
    uint64_t base;
    cairn__tensor_exists_fn exists;
    void *ctx;
    cairn_error *err;
} decoder;

/* Every decoding error names the file and the absolute offset of what is
 * wrong: bad(d, status, at, fmt, ...). */
#define bad(d, status, at, ...) \
    cairn__fail_at((d)->err, (status), (d)->file, "metadata", (d)->base + (at), NULL, __VA_ARGS__)

static cairn_status no_memory(const decoder *d)
{
    return cairn__fail(d->err, CAIRN_E_NOMEM, "%s: metadata: out of memory", d->file);
}

static size_t left(const decoder *d) { return d->len - d->pos; }

static cairn_status read_u32(decoder *d, const char *what, uint32_t *out)
{
    *out = 0; /* on every path: callers' compilers cannot tell a failure is nonzero */
    if (left(d) < 4)
        return bad(d, CAIRN_E_CORRUPT, d->pos, "%s runs past the end of the section (%zu bytes left)",
                   what, left(d));
    *out = cairn__le32(d->p + d->pos);
    d->pos += 4;
    return CAIRN_OK;
}

/* Reads a u32 length and makes sure that many bytes follow; *at gets the
 * offset of the bytes. */
static cairn_status read_span(decoder *d, const char *what, uint32_t *len, size_t *at)
{
    size_t field = d->pos;
    *at = 0;
    char name[64];
    snprintf(name, sizeof name, "%s length", what);
    CAIRN_TRY(read_u32(d, name, len));
    if (*len > left(d))
        return bad(d, CAIRN_E_CORRUPT, field,
                   "%s length %" PRIu32 " runs past the end of the section (%zu bytes left)", what,
                   *len, left(d));
    *at = d->pos;
    d->pos += *len;
    return CAIRN_OK;
}

static int64_t to_i64(uint64_t u)
{
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static cairn_status decode_value(decoder *d, int depth, cairn_value **out);

static cairn_status decode_fixed(decoder *d, uint8_t tag, size_t at, cairn_value **out)
{
    if (left(d) < 8)
        return bad(d, CAIRN_E_CORRUPT, at,
                   "%s runs past the end of the section (%zu bytes left, 8 needed)",
                   tag == TAG_INT ? "int" : "float", left(d));
    uint64_t bits = cairn__le64(d->p + d->pos);
    d->pos += 8;
    if (tag == TAG_INT) {
        *out = cairn_value_int(to_i64(bits));
    } else {
        double v;
        memcpy(&v, &bits, 8);
        *out = cairn_value_float(v);
    }
    return *out ? CAIRN_OK : no_memory(d);
}

static cairn_status decode_blob(decoder *d, uint8_t tag, cairn_value **out)
{
    static const char *const what[] = {"string", "bytes", "", "", "tensor reference"};
    const char *kind = what[tag - TAG_STRING];
    uint32_t len;
    size_t at;
    char shown[96];
    CAIRN_TRY(read_span(d, kind, &len, &at));
    const char *s = (const char *)d->p + at;
    cairn_value_type type = CAIRN_VALUE_BYTES;
    if (tag == TAG_STRING) {
        type = CAIRN_VALUE_STRING;
        if (!cairn__utf8_valid(s, len))
            return bad(d, CAIRN_E_CORRUPT, at, "string is not valid UTF-8");
    } else if (tag == TAG_TENSOR) {
        type = CAIRN_VALUE_TENSOR;
        cairn_error why;
        if (cairn__name_check(s, len, "tensor reference", &why) != CAIRN_OK)
            return bad(d, CAIRN_E_CORRUPT, at, "%s", why.message);
        if (d->exists && !d->exists(d->ctx, s, len))
            return bad(d, CAIRN_E_CORRUPT, at,
                       "tensor reference '%s' names no tensor of the archive",
                       cairn__printable(s, len, shown, sizeof shown));
    }
    *out = cairn__value_new_blob(type, s, len);
    return *out ? CAIRN_OK : no_memory(d);
}

static cairn_status decode_list(decoder *d, int depth, cairn_value **out)
{
    size_t field = d->pos;
    uint32_t count;
    CAIRN_TRY(read_u32(d, "list count", &count));
    if (count > left(d))
        return bad(d, CAIRN_E_CORRUPT, field,
                   "list count %" PRIu32 " is more than the %zu bytes left in the section", count,
                   left(d));
    cairn_value *list = cairn_value_list();
    if (!list)
        return no_memory(d);
    /* The list grows as values arrive, so a lying count costs nothing. */
    for (uint32_t i = 0; i < count; i++) {
        cairn_value *child;
        cairn_status st = decode_value(d, depth + 1, &child);
        if (st == CAIRN_OK && cairn__value_list_add(list, child) != CAIRN_OK)
            st = no_memory(d); /* child is freed */
        if (st != CAIRN_OK) {
            cairn_value_free(list);
            return st;
        }
    }
    *out = list;
    return CAIRN_OK;
}

/* Where each key of a map is, for the duplicate check. */
typedef struct key_ref {
    const uint8_t *key;
    size_t len;
    size_t at;
} key_ref;

typedef struct key_refs {
    key_ref *refs;
    size_t count, cap;
} key_refs;

static int key_refs_push(key_refs *k, const uint8_t *key, size_t len, size_t at)
{
    if (!CAIRN__GROW(k->refs, k->cap, k->count, 8))
        return 0;
    k->refs[k->count].key = key;
    k->refs[k->count].len = len;
    k->refs[k->count].at = at;
    k->count++;
    return 1;
}

/* Byte order, then position, so equal keys end up adjacent with the later
 * occurrence second. */
static int key_ref_cmp(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* O(n log n) whatever the keys are: sorting cannot be attacked the way a
 * hash table can. */
static cairn_status check_duplicates(const decoder *d, key_refs *k)
{
    if (k->count < 2)
        return CAIRN_OK;
    qsort(k->refs, k->count, sizeof *k->refs, key_ref_cmp);
    for (size_t i = 1; i < k->count; i++) {
        const key_ref *a = &k->refs[i - 1], *b = &k->refs[i];
        if (a->len == b->len && memcmp(a->key, b->key, a->len) == 0) {
            char shown[96];
            return bad(d, CAIRN_E_CORRUPT, b->at, "duplicate key '%s' in a map",
                       cairn__printable((const char *)b->key, b->len, shown, sizeof shown));
        }
    }
    return CAIRN_OK;
}

static cairn_status decode_entry(decoder *d, int depth, cairn_value *map, key_refs *k)
{
    size_t field = d->pos;
    uint32_t len;
    size_t at;
    CAIRN_TRY(read_span(d, "key", &len, &at));
    const char *key = (const char *)d->p + at;
    if (len == 0)
        return bad(d, CAIRN_E_CORRUPT, field, "empty key");
    if (memchr(key, '\0', len))
        return bad(d, CAIRN_E_CORRUPT, at, "key contains a NUL byte");
    if (!cairn__utf8_valid(key, len))
        return bad(d, CAIRN_E_CORRUPT, at, "key is not valid UTF-8");
    if (!key_refs_push(k, d->p + at, len, field))
        return no_memory(d);
    cairn_value *child;
    CAIRN_TRY(decode_value(d, depth + 1, &child));
    if (cairn__value_map_push(map, key, len, child) != CAIRN_OK) {
        cairn_value_free(child);
        return no_memory(d);
    }
    return CAIRN_OK;
}

static cairn_status decode_map(decoder *d, int depth, cairn_value **out)
{
    size_t field = d->pos;
    uint32_t count;
    CAIRN_TRY(read_u32(d, "map count", &count));
    if ((uint64_t)count * 5 > left(d))
        return bad(d, CAIRN_E_CORRUPT, field,
                   "map count %" PRIu32 " needs at least %" PRIu64
                   " bytes but the section has %zu left",
                   count, (uint64_t)count * 5, left(d));
    cairn_value *map = cairn_value_map();
    if (!map)
        return no_memory(d);
    key_refs k = {NULL, 0, 0};
    cairn_status st = CAIRN_OK;
    for (uint32_t i = 0; i < count && st == CAIRN_OK; i++)
        st = decode_entry(d, depth, map, &k);
    if (st == CAIRN_OK)
        st = check_duplicates(d, &k);
    free(k.refs);
    if (st != CAIRN_OK) {
        cairn_value_free(map);
        return st;
    }
    *out = map;
    return CAIRN_OK;
}

/* Recursion is bounded: a list or map deeper than 64 levels is refused
 * before anything under it is read. */
static cairn_status decode_value(decoder *d, int depth, cairn_value **out)
{
    *out = NULL;
    size_t at = d->pos;
    if (left(d) < 1)
        return bad(d, CAIRN_E_CORRUPT, at, "a value's tag runs past the end of the section");
    uint8_t tag = d->p[d->pos++];
    switch (tag) {
    case TAG_NULL:
        *out = cairn_value_null();
        return *out ? CAIRN_OK : no_memory(d);
    case TAG_FALSE:
    case TAG_TRUE:
        *out = cairn_value_bool(tag == TAG_TRUE);
        return *out ? CAIRN_OK : no_memory(d);
    case TAG_INT:
    case TAG_FLOAT:
        return decode_fixed(d, tag, at, out);
    case TAG_STRING:
    case TAG_BYTES:
    case TAG_TENSOR:
        return decode_blob(d, tag, out);
    case TAG_LIST:
    case TAG_MAP:
        if (depth > CAIRN_META_MAX_DEPTH)
            return bad(d, CAIRN_E_LIMIT, at, "nesting deeper than %d levels",
                       CAIRN_META_MAX_DEPTH);
        return tag == TAG_LIST ? decode_list(d, depth, out) : decode_map(d, depth, out);
    default:
        break;
    }
    if (tag < TAG_EXT_FIRST || tag > TAG_EXT_LAST)
        return bad(d, CAIRN_E_CORRUPT, at, "unknown tag 0x%02x", tag);
    /* An extension of a later minor version: skipped, read as null. */
    uint32_t len;
    size_t data_at;
    CAIRN_TRY(read_span(d, "extension", &len, &data_at));
    *out = cairn_value_null();
    return *out ? CAIRN_OK : no_memory(d);
}

cairn_status cairn__meta_decode(const uint8_t *p, size_t len, const char *file,
                                uint64_t base_offset, cairn__tensor_exists_fn exists, void *ctx,
                                cairn_value **out, cairn_error *err)
{
    if (out)
        *out = NULL;
    if (!out || (!p && len > 0))
        return cairn__fail(err, CAIRN_E_ARG, "metadata: decode: NULL argument");
    decoder d = {p, len, 0, file ? file : "<metadata>", base_offset, exists, ctx, err};
    /* meta_size 0 means "no metadata", which reads as an empty map (§3). */
    if (len == 0) {
        *out = cairn_value_map();
        return *out ? CAIRN_OK : no_memory(&d);
    }
    if (len > CAIRN_META_MAX_SIZE)
        return bad(&d, CAIRN_E_LIMIT, 0, "section of %zu bytes exceeds the %llu MiB limit", len,
                   CAIRN_META_MAX_SIZE >> 20);
    if (p[0] != TAG_MAP)
        return bad(&d, CAIRN_E_CORRUPT, 0, "the root value is not a map (tag 0x%02x)", p[0]);
    cairn_value *root;
    CAIRN_TRY(decode_value(&d, 1, &root));
    if (d.pos != len) {
        cairn_value_free(root);
        return bad(&d, CAIRN_E_CORRUPT, d.pos, "%zu trailing bytes after the root map",
                   len - d.pos);
    }
    *out = root;
    return CAIRN_OK;
}
