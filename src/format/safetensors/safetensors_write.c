/* safetensors_write.c -- writes safetensors (docs/FORMAT.md §11). The header
 * must come first but depends on every tensor. When the tensors were
 * declared (cairn_writer_declare) the layout is known up front: the header
 * is written then and each payload goes straight to its place. Otherwise
 * payloads are spooled as they arrive (an unlinked temporary file next to
 * the target, or memory for memory writers) and copied behind the header at
 * commit. */
#include "format/format.h"
#include "format/safetensors/safetensors.h"
#include "format/safetensors/safetensors_meta.h"

#include "common/nameset.h"
#include "io/spool.h"

#include <stdio.h>
#include <stdlib.h>

/* The shortest header entry, `"N":{"dtype":"U8","shape":[],"data_offsets":[0,0]},`
 * minus its name, so add() can refuse early what can never fit. */
#define ENTRY_MIN_BYTES 48

typedef struct st_entry {
    char *name;
    size_t name_len;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t spool_at, size; /* where the bytes are in the spool */
    uint64_t begin;          /* data_offsets[0], set when laid out */
} st_entry;

typedef struct st_writer {
    st_entry *entries;
    size_t count, cap;
    cairn__nameset names; /* entry indexes by name: O(1) duplicate checks */
    uint64_t header_min;  /* a lower bound on the header length so far */
    cairn_value *meta;
    cairn__spool spool;
    int planned;         /* laid out by sw_declare: payloads go to data_start + begin */
    uint64_t data_start; /* 8 + the header length, once laid out */
} st_writer;

static const char *entry_name(const void *ctx, uint32_t index, size_t *len)
{
    const st_writer *s = ctx;
    *len = s->entries[index].name_len;
    return s->entries[index].name;
}

static int64_t lookup(const st_writer *s, const char *name, size_t len)
{
    return cairn__nameset_find(&s->names, name, len, entry_name, s);
}

/* -------------------------------------------------------------------- ops */

static cairn_status sw_begin(cairn_writer *w, cairn_error *err)
{
    st_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    s->spool.fd = -1;
    s->header_min = 2; /* "{}" */
    w->state = s;
    return cairn__spool_open(&s->spool, &w->sink, err);
}

/* Appends a new entry (name copied) and indexes it. */
static cairn_status push_entry(cairn_writer *w, st_writer *s, const st_entry *proto,
                               const char *name, cairn_error *err)
{
    if (s->count >= UINT32_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': too many tensors", w->path, name);
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        st_entry *e = realloc(s->entries, cap * sizeof *e);
        if (!e)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the tensor table",
                               w->path);
        s->entries = e;
        s->cap = cap;
    }
    st_entry *e = &s->entries[s->count];
    *e = *proto;
    e->name = strdup(name);
    if (!e->name)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    cairn_status st = cairn__nameset_insert(&s->names, (uint32_t)s->count, entry_name, s, err);
    if (st != CAIRN_OK) {
        free(e->name);
        return st;
    }
    s->count++;
    return CAIRN_OK;
}

/* safetensors' own rules for a new tensor; *e gets everything but the
 * name and where its bytes are. */
static cairn_status new_entry(cairn_writer *w, st_writer *s, const char *name, cairn_dtype dtype,
                              uint32_t rank, const uint64_t *dims, st_entry *e, cairn_error *err)
{
    size_t len = strlen(name);
    const st_dtype *d = st_dtype_by_code(dtype);
    if (strcmp(name, ST_METADATA_KEY) == 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': the name is reserved for "
                           "safetensors metadata", w->path, name);
    if (!d)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': safetensors has no dtype "
                           "for %s (save it in the native format, or as F64 with a trailing "
                           "dimension of 2)", w->path, name, cairn_dtype_name(dtype));
    s->header_min += len + ENTRY_MIN_BYTES;
    if (s->header_min > ST_MAX_HEADER)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': the safetensors header would "
                           "exceed its limit of %u bytes", w->path, name, ST_MAX_HEADER);
    memset(e, 0, sizeof *e);
    e->name_len = len;
    e->dtype = dtype;
    e->rank = rank;
    e->size = cairn_dtype_size(dtype);
    for (uint32_t k = 0; k < rank; k++) {
        e->dims[k] = dims[k];
        e->size *= dims[k]; /* overflow was ruled out by cairn_writer_add / _declare */
    }
    if (e->size > SIZE_MAX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': %llu bytes do not fit in memory",
                           w->path, name, (unsigned long long)e->size);
    return CAIRN_OK;
}

/* A declared tensor: its bytes go straight to their place in the file. */
static cairn_status add_planned(cairn_writer *w, st_writer *s, const char *name,
                                const void *data, cairn_error *err)
{
    int64_t at = lookup(s, name, strlen(name)); /* writer.c checked it is declared */
    const st_entry *e = &s->entries[at];
    return cairn__sink_place(&w->sink, s->data_start + e->begin, data, (size_t)e->size, name, err);
}

static cairn_status sw_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    st_writer *s = w->state;
    if (s->planned)
        return add_planned(w, s, name, data, err);
    if (lookup(s, name, strlen(name)) >= 0)
        return cairn__fail(err, CAIRN_E_EXISTS, "%s: tensor '%s' was already added", w->path, name);
    st_entry e;
    CAIRN_TRY(new_entry(w, s, name, dtype, rank, dims, &e, err));
    e.spool_at = s->spool.len;
    if (e.size)
        CAIRN_TRY(cairn__spool_write(&s->spool, &w->sink, data, (size_t)e.size, name, err));
    return push_entry(w, s, &e, name, err);
}

static cairn_status sw_add_alias(cairn_writer *w, const char *name, const char *existing,
                                 cairn_error *err)
{
    return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: alias '%s' of '%s': safetensors cannot "
                       "share bytes between tensors (every byte has exactly one owner); add the "
                       "tensor again under the new name to store a copy", w->path, name,
                       existing);
}

static cairn_status sw_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    st_writer *s = w->state;
    cairn_value_free(s->meta);
    s->meta = tree;
    return CAIRN_OK;
}

/* ----------------------------------------------------------------- finish */

/* The reference writer's order: descending dtype alignment, then name. It
 * keeps every tensor naturally aligned within the data section. */
static int layout_cmp(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    int ox = st_dtype_by_code(x->dtype)->order, oy = st_dtype_by_code(y->dtype)->order;
    if (ox != oy)
        return oy - ox;
    return cairn__name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* `"NAME":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}` */
static void append_entry(cairn__buf *t, const st_entry *e)
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
                     (unsigned long long)e->begin, (unsigned long long)(e->begin + e->size));
    cairn__buf_put(t, num, (size_t)n);
}

/* Compact JSON: "__metadata__" first, then the tensors in data order, padded
 * with spaces so the data section starts at a multiple of 8. */
static cairn_status build_header(cairn_writer *w, st_entry *const *order, size_t count,
                                 cairn__buf *t, cairn_error *err)
{
    st_writer *s = w->state;
    cairn__buf meta = {0};
    int has_meta = 0;
    cairn_status st = CAIRN_OK;
    if (s->meta)
        st = cairn__stmeta_encode(s->meta, w->path, &meta, &has_meta, err);
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

static int entry_exists(void *ctx, const char *name, size_t len)
{
    return lookup(ctx, name, len) >= 0;
}

/* Writes header and payloads in `order`, merging spool runs that are
 * already adjacent so tensors added in layout order copy in one call. */
static cairn_status write_all(cairn_writer *w, st_entry *const *order, size_t count,
                              const cairn__buf *t, cairn_error *err)
{
    st_writer *s = w->state;
    uint8_t len[8];
    cairn__put64(len, t->len);
    CAIRN_TRY(cairn__sink_write(&w->sink, len, 8, err));
    CAIRN_TRY(cairn__sink_write(&w->sink, t->p, t->len, err));
    for (size_t i = 0; i < count;) {
        uint64_t at = order[i]->spool_at, n = order[i]->size;
        for (i++; i < count && order[i]->spool_at == at + n; i++)
            n += order[i]->size;
        if (n)
            CAIRN_TRY(cairn__spool_copy(&s->spool, &w->sink, at, n, err));
    }
    return CAIRN_OK;
}

/* Checks the metadata, orders the tensors (*order, caller frees), sets
 * every begin, builds the header into t (caller frees t->p) and gives the
 * data section's size. */
static cairn_status lay_out(cairn_writer *w, st_entry ***order, cairn__buf *t, uint64_t *data_size,
                            cairn_error *err)
{
    st_writer *s = w->state;
    *order = NULL;
    CAIRN_TRY(cairn__meta_check(s->meta, entry_exists, s, err));
    st_entry **o = malloc((s->count ? s->count : 1) * sizeof *o);
    if (!o)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < s->count; i++)
        o[i] = &s->entries[i];
    qsort(o, s->count, sizeof *o, layout_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < s->count; i++) {
        o[i]->begin = at;
        at += o[i]->size;
    }
    *order = o;
    *data_size = at;
    return build_header(w, o, s->count, t, err);
}

/* Every tensor is known: lay the file out, write the header and make the
 * file its final size, so each add writes its payload in place (no spool). */
static cairn_status sw_declare(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                               cairn_error *err)
{
    st_writer *s = w->state;
    for (size_t i = 0; i < count; i++) {
        st_entry e;
        CAIRN_TRY(new_entry(w, s, decls[i].name, decls[i].dtype, decls[i].rank, decls[i].dims,
                            &e, err));
        CAIRN_TRY(push_entry(w, s, &e, decls[i].name, err));
    }
    st_entry **order = NULL;
    cairn__buf t = {0};
    uint64_t data_size = 0;
    uint8_t len[8];
    cairn_status st = lay_out(w, &order, &t, &data_size, err);
    free(order);
    if (st == CAIRN_OK) {
        cairn__put64(len, t.len);
        st = cairn__sink_write(&w->sink, len, 8, err);
    }
    if (st == CAIRN_OK)
        st = cairn__sink_write(&w->sink, t.p, t.len, err);
    s->data_start = 8 + (uint64_t)t.len;
    free(t.p);
    if (st == CAIRN_OK)
        st = cairn__sink_extend(&w->sink, s->data_start + data_size, err);
    if (st != CAIRN_OK)
        return st;
    cairn__spool_close(&s->spool); /* never needed now */
    s->planned = 1;
    return CAIRN_OK;
}

static cairn_status sw_finish(cairn_writer *w, cairn_error *err)
{
    st_writer *s = w->state;
    if (s->planned) /* header written at declare, payloads in place */
        return CAIRN_OK;
    st_entry **order = NULL;
    cairn__buf t = {0};
    uint64_t data_size = 0;
    cairn_status st = lay_out(w, &order, &t, &data_size, err);
    if (st == CAIRN_OK)
        st = write_all(w, order, s->count, &t, err);
    free(t.p);
    free(order);
    return st;
}

static void sw_destroy(cairn_writer *w)
{
    st_writer *s = w->state;
    for (size_t i = 0; i < s->count; i++)
        free(s->entries[i].name);
    free(s->entries);
    cairn__nameset_free(&s->names);
    cairn_value_free(s->meta);
    cairn__spool_close(&s->spool);
    free(s);
    w->state = NULL;
}

const cairn__writer_ops cairn__safetensors_writer = {
    .format = CAIRN_FORMAT_SAFETENSORS,
    .begin = sw_begin,
    .add = sw_add,
    .add_alias = sw_add_alias,
    .declare = sw_declare,
    .set_metadata = sw_set_metadata,
    .finish = sw_finish,
    .destroy = sw_destroy,
};
