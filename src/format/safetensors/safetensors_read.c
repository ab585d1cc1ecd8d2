/* safetensors_read.c -- opens a safetensors file (docs/FORMAT.md §11): checks
 * the header length, parses the JSON header, enforces the reference
 * reader's layout rules and keeps a name-sorted tensor table. */
#include "format/format.h"
#include "format/safetensors/safetensors.h"
#include "format/safetensors/safetensors_json.h"
#include "format/safetensors/safetensors_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct st_reader {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn__packed tensors;  /* in the header's order; names are the table's */
    size_t *by_name;        /* the table's order, by name (memcmp, shorter first):
                               position -> tensor; NULL when the header listed the
                               names in order */
    uint64_t count;
    uint64_t header_len, data_at, data_len;
    uint64_t max_align;
    json_t *meta;           /* the "__metadata__" object (checked), or NULL */
} st_reader;
CAIRN__TABLE_FIRST(st_reader);

typedef cairn__stj_node st_node;

/* What messages need: the file, and the header text (at file offset 8). */
typedef struct st_parse {
    const cairn_file *f;
    const char *text;
    size_t len;
    uint64_t data_len;
    cairn_error *err;
} st_parse;

/* One tensor entry's data_offsets, kept apart for the layout checks. */
typedef struct st_span {
    uint64_t begin, end;
    uint64_t index;   /* into the tensor table as parsed */
} st_span;

/* A top-level key, for the duplicate check and the name order (a header
 * of at most ST_MAX_HEADER bytes has fewer than 2^32 members). */
typedef struct st_key {
    const char *key;
    uint32_t len;
    uint32_t member; /* position among the top-level keys */
} st_key;

/* What the header's parse flattens: the root, its members, their fields,
 * and the fields' items -- CAIRN_MAX_RANK + 1 of them at most, enough to
 * tell that a shape has too many dimensions (the count stays exact). */
static const cairn__stj_limits st_limits = {3, CAIRN_MAX_RANK + 1};

/* Safetensors dtypes cairn has no type for, to say so precisely. */
static const char *const foreign_dtypes[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E8M0",
                                             "F8_E4M3FNUZ", "F8_E5M2FNUZ"};

/* ---------------------------------------------------------------- messages */

/* File offset of the `nth` (from 0) key `"name"` -- the quoted name with a
 * ':' after it -- in the header text, best effort (a name written with JSON
 * escapes is not found): the start of the header then. */
static uint64_t key_offset_nth(const st_parse *ps, const char *name, size_t n, unsigned nth)
{
    for (const char *p = ps->text, *end = ps->text + ps->len; p + n + 2 <= end; p++) {
        p = memchr(p, '"', (size_t)(end - p));
        if (!p || p + n + 2 > end)
            break;
        if (memcmp(p + 1, name, n) != 0 || p[n + 1] != '"')
            continue;
        const char *q = p + n + 2;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
            q++;
        if (q < end && *q == ':' && nth-- == 0)
            return 8 + (uint64_t)(p - ps->text);
    }
    return 8;
}

static uint64_t key_offset(const st_parse *ps, const char *name, size_t n)
{
    return key_offset_nth(ps, name, n, 0);
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static cairn_status terr(const st_parse *ps, const char *name, size_t name_len, cairn_status st,
                         const char *fmt, ...)
{
    char shown[96], context[112];
    snprintf(context, sizeof context, "tensor '%s'",
             cairn__printable(name, name_len, shown, sizeof shown));
    va_list ap;
    va_start(ap, fmt);
    st = cairn__vfail_at(ps->err, st, ps->f->path, "safetensors header",
                         key_offset(ps, name, name_len), context, fmt, ap);
    va_end(ap);
    return st;
}

/* "an object", "a string", ... as cairn__stmeta_json_kind says them. */
static const char *kind(const st_node *v)
{
    switch (v->kind) {
    case CAIRN__STJ_OBJECT: return "an object";
    case CAIRN__STJ_ARRAY: return "an array";
    case CAIRN__STJ_STRING: return "a string";
    case CAIRN__STJ_INT:
    case CAIRN__STJ_UINT: return "an integer";
    case CAIRN__STJ_REAL: return "a real number";
    case CAIRN__STJ_BOOL: return "a boolean";
    case CAIRN__STJ_NULL: return "null";
    }
    return "a value";
}

/* The node after `v` and everything emitted below it. */
static const st_node *next_sibling(const st_node *v) { return v + 1 + v->skip; }

static int key_is(const st_node *v, const char *key)
{
    size_t n = strlen(key);
    return v->key_len == n && memcmp(v->key, key, n) == 0;
}

/* ------------------------------------------------------------ tensor entry */

/* The tensor being parsed, for messages. */
typedef struct st_name {
    const char *s;
    size_t len;
} st_name;

static cairn_status parse_dtype(const st_parse *ps, st_name nm, const st_node *v,
                                cairn_dtype *out)
{
    char shown[64];
    if (v->kind != CAIRN__STJ_STRING)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "\"dtype\" is %s, not a string", kind(v));
    const st_dtype *d = st_dtype_by_name(v->str, v->len);
    if (d) {
        *out = d->dtype;
        return CAIRN_OK;
    }
    cairn__printable(v->str, v->len, shown, sizeof shown);
    for (size_t i = 0; i < sizeof foreign_dtypes / sizeof foreign_dtypes[0]; i++)
        if (strlen(foreign_dtypes[i]) == v->len && memcmp(foreign_dtypes[i], v->str, v->len) == 0)
            return terr(ps, nm.s, nm.len, CAIRN_E_UNSUPPORTED, "safetensors dtype '%s' has no "
                        "cairn dtype", shown);
    return terr(ps, nm.s, nm.len, CAIRN_E_UNSUPPORTED, "unknown dtype '%s'", shown);
}

/* A JSON integer, >= 0 and below 2^63 (the limit jansson, the parser before
 * simdjson, had; sizes and offsets past it cannot fit a file anyway). */
static cairn_status parse_uint(const st_parse *ps, st_name nm, const char *field, size_t i,
                               const st_node *v, uint64_t *out)
{
    if (v->kind == CAIRN__STJ_UINT)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "\"%s\"[%zu] is %llu, past the limit of "
                    "2^63 - 1", field, i, (unsigned long long)v->u);
    if (v->kind != CAIRN__STJ_INT)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "\"%s\"[%zu] is %s, not an integer",
                    field, i, kind(v));
    if (v->i < 0)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "\"%s\"[%zu] is negative (%lld)", field, i,
                    (long long)v->i);
    *out = (uint64_t)v->i;
    return CAIRN_OK;
}

static cairn_status parse_shape(const st_parse *ps, st_name nm, const st_node *v,
                                cairn_tensor_info *in)
{
    if (v->kind != CAIRN__STJ_ARRAY)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "\"shape\" is %s, not an array", kind(v));
    size_t rank = v->len;
    if (rank > CAIRN_MAX_RANK)
        return terr(ps, nm.s, nm.len, CAIRN_E_LIMIT, "shape has %zu dimensions; cairn's rank "
                    "limit is %d", rank, CAIRN_MAX_RANK);
    in->rank = (uint32_t)rank;
    const st_node *item = v + 1; /* rank <= st_limits.items: all emitted */
    for (size_t d = 0; d < rank; d++, item = next_sibling(item))
        CAIRN_TRY(parse_uint(ps, nm, "shape", d, item, &in->dims[d]));
    return CAIRN_OK;
}

static cairn_status parse_offsets(const st_parse *ps, st_name nm, const st_node *v,
                                  st_span *span)
{
    if (v->kind != CAIRN__STJ_ARRAY || v->len != 2)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "\"data_offsets\" is %s, not an array of "
                    "two integers [begin, end]", v->kind == CAIRN__STJ_ARRAY
                                                     ? "an array of another length" : kind(v));
    CAIRN_TRY(parse_uint(ps, nm, "data_offsets", 0, v + 1, &span->begin));
    CAIRN_TRY(parse_uint(ps, nm, "data_offsets", 1, next_sibling(v + 1), &span->end));
    if (span->end < span->begin)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] end before "
                    "they begin", (unsigned long long)span->begin, (unsigned long long)span->end);
    if (span->end > ps->data_len)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] run past the "
                    "end of the file: the data section at offset %llu holds %llu bytes",
                    (unsigned long long)span->begin, (unsigned long long)span->end,
                    (unsigned long long)(ps->f->src.size - ps->data_len),
                    (unsigned long long)ps->data_len);
    return CAIRN_OK;
}

/* Element count and bytes of the shape; a zero dimension makes both 0
 * whatever the others are. */
static cairn_status check_size(const st_parse *ps, st_name nm, cairn_tensor_info *in,
                               const st_span *span)
{
    uint64_t count = 1, bytes = 0;
    int zero = 0, overflow = 0;
    for (uint32_t d = 0; d < in->rank; d++)
        zero |= in->dims[d] == 0;
    for (uint32_t d = 0; d < in->rank && !zero && !overflow; d++)
        overflow = cairn__mul_overflow(count, in->dims[d], &count);
    if (zero)
        count = 0;
    overflow = overflow || cairn__mul_overflow(count, cairn_dtype_size(in->dtype), &bytes);
    if (overflow)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "shape times the %s element size "
                    "overflows 64 bits", cairn_dtype_name(in->dtype));
    if (span->end - span->begin != bytes)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] hold %llu "
                    "bytes; %s with %llu elements needs %llu", (unsigned long long)span->begin,
                    (unsigned long long)span->end, (unsigned long long)(span->end - span->begin),
                    cairn_dtype_name(in->dtype), (unsigned long long)count,
                    (unsigned long long)bytes);
    in->count = count;
    in->raw_size = in->stored_size = bytes;
    return CAIRN_OK;
}

/* The name rules: 1 to CAIRN_NAME_MAX bytes, no NUL (a cairn name is a C
 * string; JSON can spell one as \u0000). */
static cairn_status check_name(const st_parse *ps, st_name nm)
{
    if (nm.len == 0)
        return terr(ps, nm.s, nm.len, CAIRN_E_UNSUPPORTED, "empty tensor name; cairn names are 1 "
                    "to %d bytes", CAIRN_NAME_MAX);
    if (nm.len > CAIRN_NAME_MAX)
        return terr(ps, nm.s, nm.len, CAIRN_E_LIMIT, "name of %zu bytes is longer than %d bytes",
                    nm.len, CAIRN_NAME_MAX);
    if (memchr(nm.s, 0, nm.len))
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "the name holds a NUL byte (\\u0000); "
                    "cairn names cannot");
    return CAIRN_OK;
}

/* {"dtype": str, "shape": [uint...], "data_offsets": [begin, end]}, each key
 * once, no other key. */
static cairn_status parse_entry(const st_parse *ps, st_name nm, const st_node *v,
                                cairn_tensor_info *in, st_span *span)
{
    char shown[64];
    CAIRN_TRY(check_name(ps, nm));
    if (v->kind != CAIRN__STJ_OBJECT)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "entry is %s, not an object", kind(v));
    const st_node *dtype = NULL, *shape = NULL, *offsets = NULL;
    const st_node *field = v + 1; /* the members of a top-level value: all emitted */
    for (size_t k = 0; k < v->len; k++, field = next_sibling(field)) {
        const st_node **slot = key_is(field, "dtype") ? &dtype
                             : key_is(field, "shape") ? &shape
                             : key_is(field, "data_offsets") ? &offsets : NULL;
        if (!slot)
            return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "unexpected key '%s' (an entry has "
                        "exactly \"dtype\", \"shape\" and \"data_offsets\")",
                        cairn__printable(field->key, field->key_len, shown, sizeof shown));
        if (*slot)
            return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "invalid JSON: duplicate object key "
                        "\"%.*s\" in the entry", (int)field->key_len, field->key);
        *slot = field;
    }
    if (!dtype || !shape || !offsets)
        return terr(ps, nm.s, nm.len, CAIRN_E_CORRUPT, "missing key \"%s\"",
                    !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    CAIRN_TRY(parse_dtype(ps, nm, dtype, &in->dtype));
    CAIRN_TRY(parse_shape(ps, nm, shape, in));
    CAIRN_TRY(parse_offsets(ps, nm, offsets, span));
    return check_size(ps, nm, in, span);
}

/* ------------------------------------------------------------------ layout */

static int span_cmp(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Tensor i's span in the data section. */
static st_span span_of(const st_reader *r, uint64_t i)
{
    cairn__tensor t;
    cairn__packed_get(&r->tensors, i, &t);
    uint64_t begin = t.info.offset - r->data_at;
    return (st_span){begin, begin + t.info.stored_size, i};
}

/* The reference reader's rule: sorted by offsets, the tensors tile the data
 * section exactly -- first at 0, each where the previous ended, the last
 * at its end. No holes (no polyglot files) and no shared bytes. Writers
 * usually list tensors in offset order: then the spans are read off the
 * table, else they are sorted apart. */
static cairn_status check_layout(const st_parse *ps, const st_reader *r)
{
    uint64_t count = r->count, sorted = 1;
    st_span prev = count ? span_of(r, 0) : (st_span){0, 0, 0};
    for (; sorted < count; sorted++) {
        st_span s = span_of(r, sorted);
        if (span_cmp(&prev, &s) > 0)
            break;
        prev = s;
    }
    st_span *spans = NULL;
    if (sorted < count) {
        spans = malloc((size_t)count * sizeof *spans);
        if (!spans)
            return cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors",
                               ps->f->path, (unsigned long long)count);
        for (uint64_t i = 0; i < count; i++)
            spans[i] = span_of(r, i);
        qsort(spans, (size_t)count, sizeof *spans, span_cmp);
    }
    uint64_t at = 0, prev_index = 0;
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; st == CAIRN_OK && i < count; i++) {
        st_span s = spans ? spans[i] : span_of(r, i);
        size_t len, prev_len;
        const char *name = cairn__packed_name(&r->tensors, s.index, &len);
        if (s.begin < at) {
            const char *pn = cairn__packed_name(&r->tensors, prev_index, &prev_len);
            st = terr(ps, name, len, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] overlap the "
                      "previous tensor '%.*s', which ends at %llu",
                      (unsigned long long)s.begin, (unsigned long long)s.end, (int)prev_len, pn,
                      (unsigned long long)at);
        } else if (s.begin > at) {
            st = terr(ps, name, len, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] leave a gap of "
                      "%llu unindexed bytes after offset %llu of the data section",
                      (unsigned long long)s.begin, (unsigned long long)s.end,
                      (unsigned long long)(s.begin - at), (unsigned long long)at);
        }
        at = s.end;
        prev_index = s.index;
    }
    free(spans);
    CAIRN_TRY(st);
    if (at != ps->data_len)
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: offset %llu: the data section holds "
                           "%llu bytes but the tensors cover only %llu; the last %llu bytes are "
                           "unindexed", ps->f->path,
                           (unsigned long long)(ps->f->src.size - ps->data_len + at),
                           (unsigned long long)ps->data_len, (unsigned long long)at,
                           (unsigned long long)(ps->data_len - at));
    return CAIRN_OK;
}

/* ------------------------------------------------------------------- table */

/* Name order, then document order, so a repeated key sorts after its first. */
static int key_cmp(const void *a, const void *b)
{
    const st_key *x = a, *y = b;
    int c = cairn__name_cmp(x->key, x->len, y->key, y->len);
    return c ? c : (x->member > y->member) - (x->member < y->member);
}

static uint64_t offset_alignment(uint64_t off)
{
    uint64_t a = off & (~off + 1);
    return a == 0 || a > ST_ALIGN_CAP ? ST_ALIGN_CAP : a;
}

static cairn_status build_meta(const st_parse *ps, const st_node *m, json_t **out);

/* The walks over the header's members (cairn__stj_members): one lists the
 * keys, one finds the metadata, one parses the entries. */
typedef struct st_walk {
    const st_parse *ps;
    st_reader *r;
    st_key *keys; /* the keys walk */
    size_t nkeys, cap;
    uint64_t member;      /* of the member being handed */
    uint64_t meta_member; /* "__metadata__"'s, or UINT64_MAX */
    cairn_status st;      /* an entry's or the metadata's failure */
} st_walk;

static int walk_key(void *ctx, const st_node *v, size_t n)
{
    st_walk *w = ctx;
    (void)n;
    if (w->nkeys == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        st_key *k = realloc(w->keys, cap * sizeof *k);
        if (!k) {
            w->st = cairn__fail(w->ps->err, CAIRN_E_NOMEM, "%s: out of memory for %zu header "
                                "keys", w->ps->f->path, cap);
            return 1;
        }
        w->keys = k;
        w->cap = cap;
    }
    if (key_is(v, ST_METADATA_KEY) && w->meta_member == UINT64_MAX)
        w->meta_member = w->nkeys;
    w->keys[w->nkeys] = (st_key){v->key, v->key_len, (uint32_t)w->nkeys};
    w->nkeys++;
    return 0;
}

static int walk_meta(void *ctx, const st_node *v, size_t n)
{
    st_walk *w = ctx;
    (void)n;
    if (w->member++ != w->meta_member)
        return 0;
    w->st = build_meta(w->ps, v, &w->r->meta);
    return 1; /* nothing more to see */
}

/* Parses one entry into the table (in document order). */
static int walk_entry(void *ctx, const st_node *v, size_t n)
{
    st_walk *w = ctx;
    const st_parse *ps = w->ps;
    st_reader *r = w->r;
    (void)n;
    if (w->member++ == w->meta_member)
        return 0;
    cairn__tensor t;
    st_span span;
    memset(&t, 0, sizeof t);
    cairn_tensor_info *in = &t.info;
    in->name = v->key;
    in->name_len = v->key_len;
    w->st = parse_entry(ps, (st_name){v->key, v->key_len}, v, in, &span);
    if (w->st != CAIRN_OK)
        return 1;
    in->offset = r->data_at + span.begin;
    in->alignment = offset_alignment(in->offset);
    in->codec = CAIRN_CODEC_NONE;
    in->zero_copy = cairn__file_ptr(ps->f, in->offset, in->stored_size) != NULL;
    if (in->alignment > r->max_align)
        r->max_align = in->alignment;
    w->st = cairn__packed_add(&r->tensors, &t, NULL, ps->f->path, ps->err);
    return w->st != CAIRN_OK;
}

/* ---------------------------------------------------------------- metadata */

/* Copies "__metadata__" into a jansson object for safetensors_meta.c, with
 * the checks cairn__stmeta_check makes (same messages) and the ones the
 * parser no longer does: duplicate keys, and NUL bytes in keys (jansson's
 * keys are C strings). The values stay unparsed: "cairn.meta" is read as
 * JSON only when the metadata is asked for. */
static cairn_status build_meta(const st_parse *ps, const st_node *m, json_t **out)
{
    char shown[96];
    const char *path = ps->f->path;
    /* The reference reader holds the metadata in an Option, which serde
     * fills with None from a JSON null: a file with "__metadata__": null is
     * a file without metadata there, so it is one here too. */
    if (m->kind == CAIRN__STJ_NULL) {
        *out = NULL;
        return CAIRN_OK;
    }
    if (m->kind != CAIRN__STJ_OBJECT)
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                           "\"" ST_METADATA_KEY "\" is %s, not an object of strings", path,
                           kind(m));
    json_t *meta = json_object();
    if (!meta)
        return cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
    cairn_status st = CAIRN_OK;
    const st_node *v = m + 1; /* the members of a top-level value: all emitted */
    for (size_t k = 0; st == CAIRN_OK && k < m->len; k++, v = next_sibling(v)) {
        cairn__printable(v->key, v->key_len, shown, sizeof shown);
        if (v->kind != CAIRN__STJ_STRING)
            st = cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                             "\"" ST_METADATA_KEY "\" key '%s' holds %s; safetensors metadata "
                             "values are strings only", path, shown, kind(v));
        else if (memchr(v->key, 0, v->key_len))
            st = cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                             "\"" ST_METADATA_KEY "\" key '%s' holds a NUL byte (\\u0000)",
                             path, shown);
        else if (json_object_getn(meta, v->key, v->key_len))
            st = cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                             "invalid JSON: duplicate object key '%s' in \"" ST_METADATA_KEY
                             "\"", path, shown);
        else if (json_object_setn_new_nocheck(meta, v->key, v->key_len,
                                              json_stringn_nocheck(v->str, v->len)) != 0)
            st = cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
    }
    if (st != CAIRN_OK) {
        json_decref(meta);
        return st;
    }
    *out = meta;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------ header */

/* The 8-byte length and its bounds. */
static cairn_status read_length(const cairn_file *f, st_reader *r, cairn_error *err)
{
    uint8_t b[8];
    uint64_t size = f->src.size;
    if (size < 8)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset 0: safetensors file is %llu bytes, "
                           "shorter than its 8-byte header length", f->path,
                           (unsigned long long)size);
    CAIRN_TRY(cairn__file_read(f, 0, b, 8, err));
    r->header_len = cairn__le64(b);
    if (r->header_len > ST_MAX_HEADER)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: offset 0: safetensors header length %llu "
                           "exceeds the limit of %u bytes", f->path,
                           (unsigned long long)r->header_len, ST_MAX_HEADER);
    if (r->header_len > size - 8)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset 0: safetensors header length %llu "
                           "runs past the end of the file (%llu bytes)", f->path,
                           (unsigned long long)r->header_len, (unsigned long long)size);
    r->data_at = 8 + r->header_len;
    r->data_len = size - r->data_at;
    return CAIRN_OK;
}

/* The first number written "-0" in the (valid JSON) text, or NULL. simdjson
 * reads it as the integer 0; serde_json, the reference reader's parser,
 * reads a float and refuses it as a size or offset, and so does cairn. In a
 * header that is otherwise valid, numbers stand only in shapes and
 * data_offsets, so finding one anywhere is enough. */
static const char *find_negative_zero(const char *p, const char *end)
{
    if (!memchr(p, '-', (size_t)(end - p)))
        return NULL; /* the usual case: one memchr */
    while (p < end) {
        if (*p == '"') { /* skip the string: to the first quote not escaped */
            const char *q = p + 1;
            for (;;) {
                q = memchr(q, '"', (size_t)(end - q));
                if (!q)
                    return NULL;
                size_t slashes = 0;
                while (q - slashes > p + 1 && q[-1 - (ptrdiff_t)slashes] == '\\')
                    slashes++;
                if (slashes % 2 == 0)
                    break;
                q++;
            }
            p = q + 1;
            continue;
        }
        if (*p == '-' && end - p >= 2 && p[1] == '0' &&
            (end - p == 2 || !((p[2] >= '0' && p[2] <= '9') || p[2] == '.' || p[2] == 'e' ||
                               p[2] == 'E')))
            return p;
        p++;
    }
    return NULL;
}

/* Indexes the JSON (UTF-8 of the whole text; its syntax is checked as the
 * members are read: whitespace -- the reference writer pads with spaces,
 * PR #686 readers also accept it in front -- is the only thing allowed
 * around the value) and insists on an object. simdjson does not say where
 * the text goes wrong: the message points at the header. `readable`: the
 * bytes that may be read from the text on (see cairn__stj_open). */
static cairn_status parse_json(const st_parse *ps, size_t readable, cairn__stj_doc **doc)
{
    const char *why;
    cairn__stj_kind root;
    /* simdjson skips a UTF-8 byte-order mark; JSON (RFC 8259 §8.1) and
     * serde_json do not. */
    if (ps->len >= 3 && memcmp(ps->text, "\xEF\xBB\xBF", 3) == 0)
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                           "invalid JSON: a UTF-8 byte-order mark before the object", ps->f->path);
    cairn__stj_status s = cairn__stj_open(ps->text, ps->len, readable, doc, &why);
    if (s == CAIRN__STJ_OK)
        s = cairn__stj_root(*doc, &root, &why);
    if (s == CAIRN__STJ_NOMEM)
        return cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory parsing a %zu-byte "
                           "safetensors header", ps->f->path, ps->len);
    if (s != CAIRN__STJ_OK)
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                           "invalid JSON: %s", ps->f->path, why);
    if (root != CAIRN__STJ_OBJECT)
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: the "
                           "header is %s, not an object", ps->f->path,
                           kind(&(st_node){.kind = root}));
    return CAIRN_OK;
}

/* A walk over the members: the parser's failure, or the walk's own. */
static cairn_status walk(const st_parse *ps, cairn__stj_doc *doc, cairn__stj_member_fn fn,
                         st_walk *w)
{
    const char *why;
    w->member = 0;
    w->st = CAIRN_OK;
    cairn__stj_status s = cairn__stj_members(doc, &st_limits, fn, w, &why);
    if (s == CAIRN__STJ_NOMEM)
        return cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory parsing a %zu-byte "
                           "safetensors header", ps->f->path, ps->len);
    if (s == CAIRN__STJ_INVALID)
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: "
                           "invalid JSON: %s", ps->f->path, why);
    return w->st;
}

/* Whether the keys, in document order, are in strictly increasing name
 * order: then no key repeats and the table needs no sort. Writers that lay
 * tensors out by name (cairn's, and the reference's for one dtype) pass. */
static int in_order(const st_key *keys, size_t n)
{
    for (size_t k = 1; k < n; k++)
        if (cairn__name_cmp(keys[k - 1].key, keys[k - 1].len, keys[k].key, keys[k].len) >= 0)
            return 0;
    return 1;
}

/* Lists the top-level keys in name order and refuses a repeated one (the
 * parser hands both out), before any entry is looked at, as a parser that
 * refuses duplicates would; checks the whole text's syntax on the way and
 * finds "__metadata__". Leaves r->by_name: the table's name order (NULL when
 * the keys came in order). */
static cairn_status index_keys(const st_parse *ps, cairn__stj_doc *doc, st_walk *w)
{
    char shown[96];
    CAIRN_TRY(walk(ps, doc, walk_key, w));
    size_t n = w->nkeys;
    st_reader *r = w->r;
    r->count = n - (w->meta_member != UINT64_MAX);
    if (in_order(w->keys, n))
        return CAIRN_OK;
    st_key *keys = w->keys;
    qsort(keys, n, sizeof *keys, key_cmp);
    for (size_t k = 1; k < n; k++) {
        const st_key *a = &keys[k - 1], *b = &keys[k];
        if (a->len != b->len || memcmp(a->key, b->key, a->len) != 0)
            continue;
        /* The offset just past the repeated key, where a streaming parser
         * notices it (and jansson, the parser before simdjson, pointed). */
        uint64_t at = key_offset_nth(ps, b->key, b->len, 1);
        return cairn__fail(ps->err, CAIRN_E_CORRUPT, "%s: safetensors header at offset %llu: "
                           "invalid JSON: duplicate object key '%s'", ps->f->path,
                           (unsigned long long)(at == 8 ? 8 : at + b->len + 2),
                           cairn__printable(b->key, b->len, shown, sizeof shown));
    }
    /* Each key's tensor, in name order, written over the keys as they are
     * read (slot j of the result ends before key j + 1 starts). */
    size_t *by_name = (size_t *)(void *)keys, j = 0;
    uint64_t meta = w->meta_member;
    for (size_t k = 0; k < n; k++)
        if (keys[k].member != meta)
            by_name[j++] = keys[k].member - (keys[k].member > meta && meta != UINT64_MAX);
    w->keys = NULL;
    size_t *shrunk = realloc(by_name, (j ? j : 1) * sizeof *by_name);
    r->by_name = shrunk ? shrunk : by_name;
    return CAIRN_OK;
}

static cairn_status parse_header(const cairn_file *f, const char *text, size_t readable,
                                 st_reader *r, cairn_error *err)
{
    cairn__stj_doc *doc = NULL;
    st_parse ps = {f, text, (size_t)r->header_len, r->data_len, err};
    st_walk w = {&ps, r, NULL, 0, 0, 0, UINT64_MAX, CAIRN_OK};
    cairn_status st = parse_json(&ps, readable, &doc);
    if (st == CAIRN_OK)
        st = index_keys(&ps, doc, &w);
    free(w.keys);
    /* -0 reads as the integer 0: checked after the syntax, before the values. */
    const char *nz = st == CAIRN_OK ? find_negative_zero(text, text + ps.len) : NULL;
    if (nz)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: safetensors header at offset %llu: -0 is a "
                         "real number, not an integer (shapes and data_offsets hold integers "
                         ">= 0)", f->path, (unsigned long long)(8 + (uint64_t)(nz - text)));
    if (st == CAIRN_OK && w.meta_member != UINT64_MAX)
        st = walk(&ps, doc, walk_meta, &w);
    if (st == CAIRN_OK)
        st = walk(&ps, doc, walk_entry, &w);
    cairn__stj_free(doc);
    if (st == CAIRN_OK)
        st = check_layout(&ps, r);
    return st;
}

static void reader_free(void *state)
{
    st_reader *r = state;
    if (!r)
        return;
    cairn__packed_free(&r->tensors);
    free(r->by_name);
    json_decref(r->meta);
    free(r);
}

/* The header text comes from the mapping when simdjson may read it there
 * (CAIRN__STJ_PADDING readable bytes after it: the data section, or the
 * rest of the mapping's last page), else it is read into a padded buffer
 * without touching the mapping. */
static cairn_status parse_file(const cairn_file *f, st_reader **out, cairn_error *err)
{
    st_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    r->max_align = 1;
    cairn__packed_init(&r->tensors, 0);
    cairn_status st = read_length(f, r, err);
    uint64_t end = f->src.size;
    if (f->src.mapped) {
        long page = sysconf(_SC_PAGESIZE);
        uint64_t pg = page > 0 ? (uint64_t)page : 4096;
        end = (end + pg - 1) / pg * pg;
    }
    size_t readable = (size_t)(end - 8);
    const char *text = NULL;
    if (st == CAIRN_OK && readable >= r->header_len + CAIRN__STJ_PADDING)
        text = (const char *)cairn__file_ptr(f, 8, r->header_len);
    char *heap = NULL;
    if (st == CAIRN_OK && !text) {
        readable = (size_t)r->header_len + CAIRN__STJ_PADDING;
        heap = malloc(readable);
        st = heap ? cairn__file_read(f, 8, heap, (size_t)r->header_len, err)
                  : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for a %llu-byte "
                                "safetensors header", f->path, (unsigned long long)r->header_len);
        if (heap)
            memset(heap + r->header_len, 0, CAIRN__STJ_PADDING);
        text = heap;
    }
    if (st == CAIRN_OK)
        st = parse_header(f, text, readable, r, err);
    free(heap);
    if (st != CAIRN_OK) {
        reader_free(r);
        return st;
    }
    *out = r;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------- ops */

static cairn_status st_open(cairn_file *f, cairn_error *err)
{
    st_reader *r;
    CAIRN_TRY(parse_file(f, &r, err));
    /* safetensors has no version field */
    cairn__table_init_packed(&r->table, &r->tensors, r->by_name, reader_free);
    cairn__table_info(&r->table, CAIRN_FORMAT_SAFETENSORS, 0, r->data_len, 0, r->max_align,
                      r->meta && json_object_size(r->meta) > 0);
    f->state = r;
    return CAIRN_OK;
}

static int tensor_exists(void *ctx, const char *name, size_t len)
{
    uint64_t i;
    const st_reader *r = ((const cairn_file *)ctx)->state;
    return cairn__table_lookup(&r->table, name, len, &i);
}

static cairn_status st_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const st_reader *r = f->state;
    return cairn__stmeta_decode(r->meta, f->path, tensor_exists, (void *)f, out, err);
}

/* Parses the file again and insists it still says the same thing (with
 * pread inputs it may have changed since open), then decodes the metadata. */
static cairn_status st_verify_structure(const cairn_file *f, cairn_error *err)
{
    const st_reader *r = f->state;
    st_reader *again;
    CAIRN_TRY(parse_file(f, &again, err));
    int same = again->count == r->count && again->data_at == r->data_at;
    for (uint64_t i = 0; same && i < r->count; i++) {
        cairn__tensor a, b;
        cairn__table_tensor_at(f, i, &a, NULL);
        cairn__packed_get(&again->tensors, again->by_name ? again->by_name[i] : i, &b);
        same = cairn__tensor_info_same(&a.info, &b.info);
    }
    reader_free(again);
    if (!same)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8 changed "
                           "since the file was opened", f->path);
    return cairn__metadata_check(f, err);
}

const cairn__reader_ops cairn__safetensors_reader =
    CAIRN__READER_OPS(st, CAIRN_FORMAT_SAFETENSORS, .verify_structure = st_verify_structure,
                      .read_metadata = st_read_metadata);

/* ------------------------------------------------------------------ sniff */

static int json_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int cairn__json_object_starts(const cairn_file *f, uint64_t at, uint64_t end)
{
    uint8_t b[256];
    while (at < end) {
        size_t len = end - at < sizeof b ? (size_t)(end - at) : sizeof b;
        if (cairn__file_read(f, at, b, len, NULL) != CAIRN_OK)
            return 0;
        for (size_t i = 0; i < len; i++) {
            if (b[i] == '{')
                return 1;
            if (!json_space(b[i]))
                return 0;
        }
        at += len;
    }
    return 0;
}

int cairn__safetensors_sniff(const cairn_file *f)
{
    uint8_t b[8];
    if (f->src.size < 10 || cairn__file_read(f, 0, b, 8, NULL) != CAIRN_OK)
        return 0;
    uint64_t n = cairn__le64(b);
    if (n < 2 || n > ST_MAX_HEADER || n > f->src.size - 8)
        return 0;
    return cairn__json_object_starts(f, 8, 8 + n);
}
