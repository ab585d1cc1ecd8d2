/* safetensors_write.c -- writes safetensors (docs/FORMAT.md §11). The header
 * must come first but depends on every tensor. When the tensors were
 * declared (cairn_writer_declare) the layout is known up front: the header
 * is written then and each payload goes straight to its place. Otherwise
 * payloads are spooled as they arrive (an unlinked temporary file next to
 * the target, or memory for memory writers) and copied behind the header at
 * commit. */
#include "format/headfirst.h"
#include "format/safetensors/safetensors.h"
#include "format/safetensors/safetensors_meta.h"


#include <stdio.h>
#include <stdlib.h>

/* The shortest header entry, `"N":{"dtype":"U8","shape":[],"data_offsets":[0,0]},`
 * minus its name, so add() can refuse early what can never fit. */
#define ENTRY_MIN_BYTES 48

typedef struct st_writer {
    cairn__hf_writer hf;  /* first: entries, names, metadata, spool and plan (headfirst.h) */
    uint64_t header_min;  /* a lower bound on the header length so far */
} st_writer;
CAIRN__HF_FIRST(st_writer);

/* -------------------------------------------------------------------- ops */

/* safetensors' own rules for a new tensor; *size gets its payload bytes. */
static cairn_status check_entry(cairn_writer *w, const char *name, cairn_dtype dtype,
                                uint32_t rank, const uint64_t *dims, uint64_t *size,
                                cairn_error *err)
{
    st_writer *s = w->state;
    const st_dtype *d = st_dtype_by_code(dtype);
    if (strcmp(name, ST_METADATA_KEY) == 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': the name is reserved for "
                           "safetensors metadata", w->path, name);
    if (!d)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': safetensors has no dtype "
                           "for %s (save it in the native format, or as F64 with a trailing "
                           "dimension of 2)", w->path, name, cairn_dtype_name(dtype));
    s->header_min += strlen(name) + ENTRY_MIN_BYTES;
    if (s->header_min > ST_MAX_HEADER)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': the safetensors header would "
                           "exceed its limit of %u bytes", w->path, name, ST_MAX_HEADER);
    *size = cairn_dtype_size(dtype);
    for (uint32_t k = 0; k < rank; k++)
        *size *= dims[k]; /* overflow was ruled out by cairn_writer_add / _declare */
    if (*size > SIZE_MAX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': %llu bytes do not fit in memory",
                           w->path, name, (unsigned long long)*size);
    return CAIRN_OK;
}

static cairn_status sw_begin(cairn_writer *w, cairn_error *err)
{
    CAIRN_TRY(cairn__hf_begin(w, sizeof(st_writer), check_entry, err));
    ((st_writer *)w->state)->header_min = 2; /* "{}" */
    return CAIRN_OK;
}

/* ----------------------------------------------------------------- finish */

/* The reference writer's order: descending dtype alignment, then name. It
 * keeps every tensor naturally aligned within the data section. */
static int layout_cmp(const void *a, const void *b)
{
    const cairn__hf_entry *x = *(const cairn__hf_entry *const *)a;
    const cairn__hf_entry *y = *(const cairn__hf_entry *const *)b;
    int ox = st_dtype_by_code(x->dtype)->order, oy = st_dtype_by_code(y->dtype)->order;
    if (ox != oy)
        return oy - ox;
    return cairn__name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* `"NAME":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}` */
static void append_entry(cairn__buf *t, const cairn__hf_entry *e)
{
    char num[64];
    const char *dname = st_dtype_by_code(e->dtype)->name;
    cairn__sttext_append_string(t, e->name, e->name_len);
    cairn__buf_put(t, ":{\"dtype\":\"", 11);
    cairn__buf_put(t, dname, strlen(dname));
    cairn__buf_put(t, "\",\"shape\":[", 11);
    for (uint32_t d = 0; d < e->rank; d++) {
        int n = snprintf(num, sizeof num, d ? ",%llu" : "%llu", (unsigned long long)e->dims[d]);
        cairn__buf_put(t, num, (size_t)n);
    }
    int n = snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
                     (unsigned long long)e->at, (unsigned long long)(e->at + e->size));
    cairn__buf_put(t, num, (size_t)n);
}

/* Compact JSON: "__metadata__" first, then the tensors in data order, padded
 * with spaces so the data section starts at a multiple of 8. */
static cairn_status build_header(cairn_writer *w, cairn__hf_entry *const *order, size_t count,
                                 cairn__buf *t, cairn_error *err)
{
    const cairn__hf_writer *h = w->state;
    cairn__buf meta = {0};
    int has_meta = 0;
    cairn_status st = CAIRN_OK;
    if (h->meta)
        st = cairn__stmeta_encode(h->meta, w->path, &meta, &has_meta, err);
    cairn__buf_put(t, "{", 1);
    if (has_meta) {
        cairn__buf_put(t, "\"" ST_METADATA_KEY "\":", sizeof ST_METADATA_KEY + 2);
        cairn__buf_put(t, meta.p, meta.len);
    }
    free(meta.p);
    CAIRN_TRY(st);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 || has_meta)
            cairn__buf_put(t, ",", 1);
        append_entry(t, order[i]);
    }
    cairn__buf_put(t, "}", 1);
    while (!t->oom && t->len % 8)
        cairn__buf_put(t, " ", 1);
    if (t->oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the safetensors header",
                           w->path);
    if (t->len > ST_MAX_HEADER)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: the safetensors header would be %zu bytes, "
                           "past its limit of %u", w->path, t->len, ST_MAX_HEADER);
    return CAIRN_OK;
}

/* Checks the metadata, orders the tensors (*order, caller frees), sets
 * every entry's `at`, builds the header into t (caller frees t->p) and gives
 * the data section's size. */
static cairn_status lay_out(cairn_writer *w, cairn__hf_entry ***order, cairn__buf *t,
                            uint64_t *data_size, cairn_error *err)
{
    cairn__hf_writer *h = w->state;
    *order = NULL;
    CAIRN_TRY(cairn__meta_check(h->meta, cairn__hf_exists, h, err));
    cairn__hf_entry **o = malloc((h->count ? h->count : 1) * sizeof *o);
    if (!o)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < h->count; i++)
        o[i] = &h->entries[i];
    qsort(o, h->count, sizeof *o, layout_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < h->count; i++) {
        o[i]->at = at;
        at += o[i]->size;
    }
    *order = o;
    *data_size = at;
    return build_header(w, o, h->count, t, err);
}

/* The header: its 8-byte length, then the text. */
static cairn_status write_header(cairn_writer *w, const cairn__buf *t, cairn_error *err)
{
    uint8_t len[8];
    cairn__put64(len, t->len);
    CAIRN_TRY(cairn__sink_write(&w->sink, len, 8, err));
    return cairn__sink_write(&w->sink, t->p, t->len, err);
}

/* Every tensor is known: lay the file out, write the header and make the
 * file its final size, so each add writes its payload in place (no spool). */
static cairn_status sw_declare(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                               cairn_error *err)
{
    CAIRN_TRY(cairn__hf_declare_all(w, decls, count, err));
    cairn__hf_entry **order = NULL;
    cairn__buf t = {0};
    uint64_t data_size = 0;
    cairn_status st = lay_out(w, &order, &t, &data_size, err);
    free(order);
    if (st == CAIRN_OK)
        st = write_header(w, &t, err);
    free(t.p);
    return st == CAIRN_OK ? cairn__hf_planned(w, data_size, err) : st;
}

/* Header and payloads in layout order, spool runs that are already adjacent
 * in one copy (tensors added in layout order copy in one call). */
static cairn_status sw_finish(cairn_writer *w, cairn_error *err)
{
    const cairn__hf_writer *h = w->state;
    if (h->planned) /* header written at declare, payloads in place */
        return CAIRN_OK;
    cairn__hf_entry **order = NULL;
    cairn__buf t = {0};
    uint64_t data_size = 0;
    cairn_status st = lay_out(w, &order, &t, &data_size, err);
    if (st == CAIRN_OK)
        st = write_header(w, &t, err);
    if (st == CAIRN_OK)
        st = cairn__hf_copy(w, order, 1, err);
    free(t.p);
    free(order);
    return st;
}

const cairn__writer_ops cairn__safetensors_writer = CAIRN__HF_WRITER_OPS(
    sw, CAIRN_FORMAT_SAFETENSORS,
    .no_alias = "safetensors cannot share bytes between tensors (every byte has exactly "
                "one owner)",
    .set_metadata = cairn__hf_set_metadata, .destroy = cairn__hf_destroy);
