/* headfirst.c -- the entry table, spool and plan of the header-first
 * writers (headfirst.h). */
#include "format/headfirst.h"

#include <stdlib.h>

static const char *entry_name(const void *ctx, uint32_t index, size_t *len)
{
    const cairn__hf_writer *h = ctx;
    *len = h->entries[index].name_len;
    return h->entries[index].name;
}

int64_t cairn__hf_find(const cairn__hf_writer *h, const char *name, size_t len)
{
    return cairn__nameset_find(&h->names, name, len, entry_name, h);
}

int cairn__hf_exists(void *ctx, const char *name, size_t len)
{
    return cairn__hf_find(ctx, name, len) >= 0;
}

cairn_status cairn__hf_begin(cairn_writer *w, size_t size, cairn__hf_check_fn check,
                             cairn_error *err)
{
    cairn__hf_writer *h = calloc(1, size);
    if (!h)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    h->spool.fd = -1;
    h->check = check;
    w->state = h;
    return cairn__spool_open(&h->spool, &w->sink, err);
}

/* Appends a checked tensor's entry (name copied) and indexes it. */
static cairn_status push(cairn_writer *w, cairn__hf_writer *h, const char *name,
                         cairn_dtype dtype, uint32_t rank, const uint64_t *dims, uint64_t size,
                         uint64_t spool_at, cairn_error *err)
{
    if (h->count >= UINT32_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': too many tensors", w->path, name);
    if (!CAIRN__GROW(h->entries, h->cap, h->count, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the tensor table",
                           w->path);
    cairn__hf_entry *e = &h->entries[h->count];
    memset(e, 0, sizeof *e);
    e->name_len = strlen(name);
    e->dtype = dtype;
    e->rank = rank;
    if (rank) /* a scalar may come with dims == NULL */
        memcpy(e->dims, dims, rank * sizeof *dims);
    e->size = size;
    e->spool_at = spool_at;
    if (!(e->name = strdup(name)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    cairn_status st = cairn__nameset_insert(&h->names, (uint32_t)h->count, entry_name, h, err);
    if (st != CAIRN_OK) {
        free(e->name);
        return st;
    }
    h->count++;
    return CAIRN_OK;
}

cairn_status cairn__hf_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    cairn__hf_writer *h = w->state;
    if (h->planned) { /* declared (writer.c checked): straight to its place */
        const cairn__hf_entry *e = &h->entries[cairn__hf_find(h, name, strlen(name))];
        return cairn__sink_place(&w->sink, h->data_start + e->at, data, (size_t)e->size, name,
                                 err);
    }
    uint64_t size, spool_at = h->spool.len;
    CAIRN_TRY(h->check(w, name, dtype, rank, dims, &size, err));
    if (size)
        CAIRN_TRY(cairn__spool_write(&h->spool, &w->sink, data, (size_t)size, name, err));
    return push(w, h, name, dtype, rank, dims, size, spool_at, err);
}

cairn_status cairn__hf_declare_all(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                                   cairn_error *err)
{
    cairn__hf_writer *h = w->state;
    for (size_t i = 0; i < count; i++) {
        const cairn_tensor_decl *d = &decls[i];
        uint64_t size;
        CAIRN_TRY(h->check(w, d->name, d->dtype, d->rank, d->dims, &size, err));
        CAIRN_TRY(push(w, h, d->name, d->dtype, d->rank, d->dims, size, 0, err));
    }
    return CAIRN_OK;
}

cairn_status cairn__hf_planned(cairn_writer *w, uint64_t data_size, cairn_error *err)
{
    cairn__hf_writer *h = w->state;
    h->data_start = w->sink.pos;
    CAIRN_TRY(cairn__sink_extend(&w->sink, h->data_start + data_size, err));
    cairn__spool_close(&h->spool); /* never needed now */
    h->planned = 1;
    return CAIRN_OK;
}

cairn_status cairn__hf_copy(cairn_writer *w, cairn__hf_entry *const *order, uint64_t alignment,
                            cairn_error *err)
{
    cairn__hf_writer *h = w->state;
    for (size_t i = 0; i < h->count;) {
        const cairn__hf_entry *e = order ? order[i] : &h->entries[i];
        uint64_t at = e->spool_at, n = e->size;
        for (i++; alignment <= 1 && i < h->count; i++) {
            const cairn__hf_entry *next = order ? order[i] : &h->entries[i];
            if (next->spool_at != at + n)
                break;
            n += next->size;
        }
        if (n)
            CAIRN_TRY(cairn__spool_copy(&h->spool, &w->sink, at, n, err));
        if (alignment > 1)
            CAIRN_TRY(cairn__sink_pad(&w->sink, alignment, err));
    }
    return CAIRN_OK;
}

cairn_status cairn__hf_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    cairn__hf_writer *h = w->state;
    cairn_value_free(h->meta);
    h->meta = tree;
    return CAIRN_OK;
}

void cairn__hf_destroy(cairn_writer *w)
{
    cairn__hf_writer *h = w->state;
    for (size_t i = 0; i < h->count; i++)
        free(h->entries[i].name);
    free(h->entries);
    cairn__nameset_free(&h->names);
    cairn_value_free(h->meta);
    cairn__spool_close(&h->spool);
    free(h);
}
