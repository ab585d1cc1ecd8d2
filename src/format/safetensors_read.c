/* safetensors_read.c -- opens a safetensors file (docs/FORMAT.md §11): checks
 * the header length, parses the JSON header, enforces the reference
 * reader's layout rules and keeps a name-sorted tensor table. */
#include "safetensors.h"
#include "safetensors_meta.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct st_reader {
    cairn__tensor *tensors; /* sorted by name (memcmp order, shorter first) */
    uint64_t count;
    char *names;            /* every name, NUL-terminated; tensors point here */
    uint64_t header_len, data_at, data_len;
    uint64_t max_align;
    json_t *meta;           /* the "__metadata__" object (checked), or NULL */
} st_reader;

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

/* Safetensors dtypes cairn has no type for, to say so precisely. */
static const char *const foreign_dtypes[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E8M0",
                                             "F8_E4M3FNUZ", "F8_E5M2FNUZ"};

/* ---------------------------------------------------------------- messages */

/* File offset of the key `"name"` in the header text, best effort (a name
 * written with JSON escapes is not found): the start of the header then. */
static uint64_t key_offset(const st_parse *ps, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = ps->text, *end = ps->text + ps->len; p + n + 2 <= end; p++) {
        p = memchr(p, '"', (size_t)(end - p));
        if (!p || p + n + 2 > end)
            break;
        if (memcmp(p + 1, name, n) == 0 && p[n + 1] == '"')
            return 8 + (uint64_t)(p - ps->text);
    }
    return 8;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static cairn_status terr(const st_parse *ps, const char *name, cairn_status st, const char *fmt,
                         ...)
{
    char msg[320], shown[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cairn__fail(ps->err, st, "%s: safetensors header at offset %llu: tensor '%s': %s",
                       ps->f->path, (unsigned long long)key_offset(ps, name),
                       cairn__printable(name, strlen(name), shown, sizeof shown), msg);
}

static const char *kind(const json_t *v) { return cairn__stmeta_json_kind(v); }

/* ------------------------------------------------------------ tensor entry */

static cairn_status parse_dtype(const st_parse *ps, const char *name, const json_t *v,
                                cairn_dtype *out)
{
    char shown[64];
    if (!json_is_string(v))
        return terr(ps, name, CAIRN_E_CORRUPT, "\"dtype\" is %s, not a string", kind(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    const st_dtype *d = st_dtype_by_name(s, len);
    if (d) {
        *out = d->dtype;
        return CAIRN_OK;
    }
    cairn__printable(s, len, shown, sizeof shown);
    for (size_t i = 0; i < sizeof foreign_dtypes / sizeof foreign_dtypes[0]; i++)
        if (strlen(foreign_dtypes[i]) == len && memcmp(foreign_dtypes[i], s, len) == 0)
            return terr(ps, name, CAIRN_E_UNSUPPORTED, "safetensors dtype '%s' has no cairn "
                        "dtype", shown);
    return terr(ps, name, CAIRN_E_UNSUPPORTED, "unknown dtype '%s'", shown);
}

/* A JSON integer >= 0 (jansson already refused integers past 2^63 - 1). */
static cairn_status parse_uint(const st_parse *ps, const char *name, const char *field,
                               size_t i, const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v))
        return terr(ps, name, CAIRN_E_CORRUPT, "\"%s\"[%zu] is %s, not an integer", field, i,
                    kind(v));
    if (json_integer_value(v) < 0)
        return terr(ps, name, CAIRN_E_CORRUPT, "\"%s\"[%zu] is negative (%lld)", field, i,
                    (long long)json_integer_value(v));
    *out = (uint64_t)json_integer_value(v);
    return CAIRN_OK;
}

static cairn_status parse_shape(const st_parse *ps, const char *name, const json_t *v,
                                cairn_tensor_info *in)
{
    if (!json_is_array(v))
        return terr(ps, name, CAIRN_E_CORRUPT, "\"shape\" is %s, not an array", kind(v));
    size_t rank = json_array_size(v);
    if (rank > CAIRN_MAX_RANK)
        return terr(ps, name, CAIRN_E_LIMIT, "shape has %zu dimensions; cairn's rank limit is %d",
                    rank, CAIRN_MAX_RANK);
    in->rank = (uint32_t)rank;
    for (size_t d = 0; d < rank; d++)
        CAIRN_TRY(parse_uint(ps, name, "shape", d, json_array_get(v, d), &in->dims[d]));
    return CAIRN_OK;
}

static cairn_status parse_offsets(const st_parse *ps, const char *name, const json_t *v,
                                  st_span *span)
{
    if (!json_is_array(v) || json_array_size(v) != 2)
        return terr(ps, name, CAIRN_E_CORRUPT, "\"data_offsets\" is %s, not an array of two "
                    "integers [begin, end]", json_is_array(v) ? "an array of another length"
                                                              : kind(v));
    CAIRN_TRY(parse_uint(ps, name, "data_offsets", 0, json_array_get(v, 0), &span->begin));
    CAIRN_TRY(parse_uint(ps, name, "data_offsets", 1, json_array_get(v, 1), &span->end));
    if (span->end < span->begin)
        return terr(ps, name, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] end before they begin",
                    (unsigned long long)span->begin, (unsigned long long)span->end);
    if (span->end > ps->data_len)
        return terr(ps, name, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] run past the end of "
                    "the file: the data section at offset %llu holds %llu bytes",
                    (unsigned long long)span->begin, (unsigned long long)span->end,
                    (unsigned long long)(ps->f->src.size - ps->data_len),
                    (unsigned long long)ps->data_len);
    return CAIRN_OK;
}

/* Element count and bytes of the shape; a zero dimension makes both 0
 * whatever the others are. */
static cairn_status check_size(const st_parse *ps, const char *name, cairn_tensor_info *in,
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
        return terr(ps, name, CAIRN_E_CORRUPT, "shape times the %s element size overflows 64 bits",
                    cairn_dtype_name(in->dtype));
    if (span->end - span->begin != bytes)
        return terr(ps, name, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] hold %llu bytes; %s "
                    "with %llu elements needs %llu", (unsigned long long)span->begin,
                    (unsigned long long)span->end, (unsigned long long)(span->end - span->begin),
                    cairn_dtype_name(in->dtype), (unsigned long long)count,
                    (unsigned long long)bytes);
    in->count = count;
    in->raw_size = in->stored_size = bytes;
    return CAIRN_OK;
}

/* {"dtype": str, "shape": [uint...], "data_offsets": [begin, end]}, no other key. */
static cairn_status parse_entry(const st_parse *ps, const char *name, const json_t *v,
                                cairn_tensor_info *in, st_span *span)
{
    char shown[64];
    size_t len = strlen(name); /* jansson refuses NUL bytes in keys */
    if (len == 0)
        return terr(ps, name, CAIRN_E_UNSUPPORTED, "empty tensor name; cairn names are 1 to %d "
                    "bytes", CAIRN_NAME_MAX);
    if (len > CAIRN_NAME_MAX)
        return terr(ps, name, CAIRN_E_LIMIT, "name of %zu bytes is longer than %d bytes", len,
                    CAIRN_NAME_MAX);
    if (!json_is_object(v))
        return terr(ps, name, CAIRN_E_CORRUPT, "entry is %s, not an object", kind(v));
    const char *key;
    const json_t *field;
    const json_t *dtype = NULL, *shape = NULL, *offsets = NULL;
    json_object_foreach((json_t *)v, key, field) {
        if (strcmp(key, "dtype") == 0)
            dtype = field;
        else if (strcmp(key, "shape") == 0)
            shape = field;
        else if (strcmp(key, "data_offsets") == 0)
            offsets = field;
        else
            return terr(ps, name, CAIRN_E_CORRUPT, "unexpected key '%s' (an entry has exactly "
                        "\"dtype\", \"shape\" and \"data_offsets\")",
                        cairn__printable(key, strlen(key), shown, sizeof shown));
    }
    if (!dtype || !shape || !offsets)
        return terr(ps, name, CAIRN_E_CORRUPT, "missing key \"%s\"",
                    !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    CAIRN_TRY(parse_dtype(ps, name, dtype, &in->dtype));
    CAIRN_TRY(parse_shape(ps, name, shape, in));
    CAIRN_TRY(parse_offsets(ps, name, offsets, span));
    return check_size(ps, name, in, span);
}

/* ------------------------------------------------------------------ layout */

static int span_cmp(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The reference reader's rule: sorted by offsets, the tensors tile the data
 * section exactly -- first at 0, each where the previous ended, the last
 * at its end. No holes (no polyglot files) and no shared bytes. */
static cairn_status check_layout(const st_parse *ps, const cairn__tensor *t, st_span *spans,
                                 uint64_t count)
{
    if (count > 1)
        qsort(spans, (size_t)count, sizeof *spans, span_cmp);
    uint64_t at = 0;
    for (uint64_t i = 0; i < count; i++) {
        const st_span *s = &spans[i];
        const char *name = t[s->index].info.name;
        if (s->begin < at)
            return terr(ps, name, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] overlap the "
                        "previous tensor '%s', which ends at %llu", (unsigned long long)s->begin,
                        (unsigned long long)s->end, t[spans[i - 1].index].info.name,
                        (unsigned long long)at);
        if (s->begin > at)
            return terr(ps, name, CAIRN_E_CORRUPT, "data_offsets [%llu, %llu] leave a gap of "
                        "%llu unindexed bytes after offset %llu of the data section",
                        (unsigned long long)s->begin, (unsigned long long)s->end,
                        (unsigned long long)(s->begin - at), (unsigned long long)at);
        at = s->end;
    }
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

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int tensor_cmp(const void *a, const void *b)
{
    const cairn_tensor_info *x = &((const cairn__tensor *)a)->info;
    const cairn_tensor_info *y = &((const cairn__tensor *)b)->info;
    return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static uint64_t offset_alignment(uint64_t off)
{
    uint64_t a = off & (~off + 1);
    return a == 0 || a > ST_ALIGN_CAP ? ST_ALIGN_CAP : a;
}

/* Copies every name into one block so the table can outlive the JSON. */
static cairn_status copy_names(const st_parse *ps, const json_t *root, st_reader *r)
{
    size_t total = 1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)root, key, v)
        total += strlen(key) + 1;
    r->names = malloc(total);
    if (!r->names)
        return cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory for %zu bytes of names",
                           ps->f->path, total);
    size_t at = 0;
    uint64_t i = 0;
    json_object_foreach((json_t *)root, key, v) {
        if (strcmp(key, ST_METADATA_KEY) == 0)
            continue;
        size_t n = strlen(key);
        memcpy(r->names + at, key, n + 1);
        r->tensors[i].info.name = r->names + at;
        r->tensors[i++].info.name_len = n;
        at += n + 1;
    }
    return CAIRN_OK;
}

/* Parses every entry into a table that grows as entries pass their checks,
 * so a header of a million bogus keys fails at the first one instead of
 * allocating a table for all of them first. */
static cairn_status parse_entries(const st_parse *ps, const json_t *root, st_reader *r,
                                  st_span **spans)
{
    size_t cap = 0;
    const char *key;
    const json_t *v;
    uint64_t i = 0;
    json_object_foreach((json_t *)root, key, v) {
        if (strcmp(key, ST_METADATA_KEY) == 0)
            continue;
        if (i == cap) {
            cap = cap ? cap * 2 : 16;
            cairn__tensor *t = realloc(r->tensors, cap * sizeof *t);
            if (t)
                r->tensors = t;
            st_span *sp = t ? realloc(*spans, cap * sizeof *sp) : NULL;
            if (!sp)
                return cairn__fail(ps->err, CAIRN_E_NOMEM, "%s: out of memory for %zu tensors",
                                   ps->f->path, cap);
            *spans = sp;
        }
        memset(&r->tensors[i], 0, sizeof r->tensors[i]);
        (*spans)[i].index = i;
        r->tensors[i].info.name = key; /* for messages until copy_names */
        CAIRN_TRY(parse_entry(ps, key, v, &r->tensors[i].info, &(*spans)[i]));
        i++;
    }
    return CAIRN_OK;
}

/* Parses every tensor entry, checks the layout, fills r->tensors. */
static cairn_status build_table(const st_parse *ps, const json_t *root, st_reader *r)
{
    st_span *spans = NULL;
    cairn_status st = parse_entries(ps, root, r, &spans);
    if (st == CAIRN_OK)
        st = check_layout(ps, r->tensors, spans, r->count);
    if (st == CAIRN_OK)
        st = copy_names(ps, root, r);
    for (uint64_t k = 0; st == CAIRN_OK && k < r->count; k++) {
        cairn_tensor_info *in = &r->tensors[spans[k].index].info;
        in->offset = r->data_at + spans[k].begin;
        in->alignment = offset_alignment(in->offset);
        in->codec = CAIRN_CODEC_NONE;
        in->zero_copy = cairn__source_ptr(ps->f, in->offset, in->stored_size) != NULL;
        if (in->alignment > r->max_align)
            r->max_align = in->alignment;
    }
    free(spans);
    if (st == CAIRN_OK && r->count > 1)
        qsort(r->tensors, (size_t)r->count, sizeof *r->tensors, tensor_cmp);
    return st;
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
    CAIRN_TRY(cairn__source_read(f, 0, b, 8, err));
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

/* Parses the JSON: duplicate keys are refused; whitespace (the reference
 * writer pads with spaces; PR #686 readers also accept it in front) is the
 * only thing allowed around the object. */
static cairn_status parse_json(const cairn_file *f, const char *text, size_t len,
                               json_t **root, cairn_error *err)
{
    json_error_t jerr;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!*root) {
        /* jansson quotes the offending token: keep hostile bytes out of messages. */
        for (char *c = jerr.text; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        return cairn__fail(err, json_error_code(&jerr) == json_error_out_of_memory
                                    ? CAIRN_E_NOMEM : CAIRN_E_CORRUPT,
                           "%s: safetensors header at offset %llu: invalid JSON: %s", f->path,
                           (unsigned long long)(8 + (uint64_t)jerr.position), jerr.text);
    }
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8: the "
                           "header is a JSON array, not an object", f->path);
    }
    return CAIRN_OK;
}

static cairn_status parse_header(const cairn_file *f, const char *text, st_reader *r,
                                 cairn_error *err)
{
    json_t *root;
    st_parse ps = {f, text, (size_t)r->header_len, r->data_len, err};
    CAIRN_TRY(parse_json(f, text, (size_t)r->header_len, &root, err));
    json_t *meta = json_object_get(root, ST_METADATA_KEY);
    cairn_status st = cairn__stmeta_check(meta, f->path, 8, err);
    r->count = json_object_size(root) - (meta ? 1 : 0);
    if (st == CAIRN_OK)
        st = build_table(&ps, root, r);
    if (st == CAIRN_OK && meta)
        r->meta = json_incref(meta);
    json_decref(root);
    return st;
}

static void reader_free(st_reader *r)
{
    if (!r)
        return;
    free(r->tensors);
    free(r->names);
    json_decref(r->meta);
    free(r);
}

/* The header text comes from the mapping when there is one. */
static cairn_status parse_file(const cairn_file *f, st_reader **out, cairn_error *err)
{
    st_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    r->max_align = 1;
    cairn_status st = read_length(f, r, err);
    const char *text = st == CAIRN_OK ? (const char *)cairn__source_ptr(f, 8, r->header_len) : NULL;
    char *heap = NULL;
    if (st == CAIRN_OK && !text) {
        heap = malloc(r->header_len ? (size_t)r->header_len : 1);
        st = heap ? cairn__source_read(f, 8, heap, (size_t)r->header_len, err)
                  : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for a %llu-byte "
                                "safetensors header", f->path, (unsigned long long)r->header_len);
        text = heap;
    }
    if (st == CAIRN_OK)
        st = parse_header(f, text, r, err);
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
    f->state = r;
    return CAIRN_OK;
}

static void st_close(cairn_file *f)
{
    reader_free(f->state);
    f->state = NULL;
}

static uint64_t st_count(const cairn_file *f)
{
    const st_reader *r = f->state;
    return r ? r->count : 0;
}

static cairn_status st_tensor_at(const cairn_file *f, uint64_t index, cairn__tensor *out,
                                 cairn_error *err)
{
    const st_reader *r = f->state;
    *out = r->tensors[index];
    return CAIRN_OK;
}

static int lookup(const st_reader *r, const char *name, size_t len, uint64_t *index)
{
    uint64_t lo = 0, hi = r->count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const cairn_tensor_info *in = &r->tensors[mid].info;
        int c = name_cmp(name, len, in->name, in->name_len);
        if (c == 0) {
            *index = mid;
            return 1;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static cairn_status st_find(const cairn_file *f, const char *name, size_t len, uint64_t *index,
                            cairn_error *err)
{
    char shown[96];
    if (lookup(f->state, name, len, index))
        return CAIRN_OK;
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s'", f->path,
                       cairn__printable(name, len, shown, sizeof shown));
}

static cairn_status st_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    const st_reader *r = f->state;
    (void)err;
    out->format = CAIRN_FORMAT_SAFETENSORS;
    out->version_major = 0; /* safetensors has no version field */
    out->version_minor = 0;
    out->tensor_count = r->count;
    out->file_size = f->src.size;
    out->payload_bytes = r->data_len;
    out->alignment = r->max_align;
    out->has_metadata = r->meta && json_object_size(r->meta) > 0;
    return CAIRN_OK;
}

static int tensor_exists(void *ctx, const char *name, size_t len)
{
    uint64_t i;
    return lookup(((const cairn_file *)ctx)->state, name, len, &i);
}

static cairn_status st_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const st_reader *r = f->state;
    return cairn__stmeta_decode(r->meta, f->path, tensor_exists, (void *)f, out, err);
}

static int same_tensor(const cairn_tensor_info *a, const cairn_tensor_info *b)
{
    return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0 &&
           a->dtype == b->dtype && a->rank == b->rank &&
           memcmp(a->dims, b->dims, sizeof a->dims) == 0 && a->offset == b->offset &&
           a->stored_size == b->stored_size;
}

/* Parses the file again and insists it still says the same thing (with
 * pread inputs it may have changed since open), then decodes the metadata. */
static cairn_status st_verify_structure(const cairn_file *f, cairn_error *err)
{
    const st_reader *r = f->state;
    st_reader *again;
    CAIRN_TRY(parse_file(f, &again, err));
    int same = again->count == r->count && again->data_at == r->data_at;
    for (uint64_t i = 0; same && i < r->count; i++)
        same = same_tensor(&r->tensors[i].info, &again->tensors[i].info);
    reader_free(again);
    if (!same)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: safetensors header at offset 8 changed "
                           "since the file was opened", f->path);
    cairn_value *meta;
    CAIRN_TRY(st_read_metadata(f, &meta, err));
    cairn_value_free(meta);
    return CAIRN_OK;
}

const cairn__reader_ops cairn__safetensors_reader = {
    .format = CAIRN_FORMAT_SAFETENSORS,
    .open = st_open,
    .close = st_close,
    .count = st_count,
    .tensor_at = st_tensor_at,
    .find = st_find,
    .file_info = st_file_info,
    .verify_structure = st_verify_structure,
    .read_metadata = st_read_metadata,
};

/* ------------------------------------------------------------------ sniff */

static int json_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int cairn__safetensors_sniff(const cairn_file *f)
{
    uint8_t b[256];
    if (f->src.size < 10 || cairn__source_read(f, 0, b, 8, NULL) != CAIRN_OK)
        return 0;
    uint64_t n = cairn__le64(b);
    if (n < 2 || n > ST_MAX_HEADER || n > f->src.size - 8)
        return 0;
    for (uint64_t at = 8; at < 8 + n;) {
        size_t len = 8 + n - at < sizeof b ? (size_t)(8 + n - at) : sizeof b;
        if (cairn__source_read(f, at, b, len, NULL) != CAIRN_OK)
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
