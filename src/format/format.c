/* format.c -- helpers every format's reader may share (format.h). */
#include "format/format.h"

static cairn_status not_found(const cairn_file *f, const char *name, size_t len,
                              const char *hint, cairn_error *err)
{
    char shown[96];
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s'%s%s%s", f->path,
                       cairn__printable(name, len, shown, sizeof shown), hint ? " (" : "",
                       hint ? hint : "", hint ? ")" : "");
}

/* ------------------------------------------------------------ tensor table */

void cairn__table_init(cairn__tensor_table *t, const void *records, size_t stride,
                       uint64_t count, void (*free_state)(void *state))
{
    memset(t, 0, sizeof *t);
    t->records = records;
    t->stride = stride;
    t->count = count;
    t->free_state = free_state;
}

void cairn__table_init_packed(cairn__tensor_table *t, const cairn__packed *p,
                              const size_t *order, void (*free_state)(void *state))
{
    cairn__table_init(t, NULL, 0, p->count, free_state);
    t->packed = p;
    t->order = order;
}

void cairn__table_index(cairn__tensor_table *t, const cairn__nameset *index,
                        cairn__name_fn name_at, const void *ctx)
{
    t->index = index;
    t->index_name = name_at;
    t->ctx = ctx;
}

void cairn__table_sorted(cairn__tensor_table *t, cairn__sorted_name_fn name_at,
                         const size_t *by_name, const void *ctx)
{
    t->sorted_name = name_at;
    t->by_name = by_name;
    t->ctx = ctx;
}

void cairn__table_info(cairn__tensor_table *t, cairn_format format, uint32_t version_major,
                       uint64_t payload, uint64_t raw, uint64_t alignment, int has_metadata)
{
    t->info.format = format;
    t->info.version_major = version_major;
    t->info.payload_bytes = payload;
    t->info.raw_bytes = raw;
    t->info.alignment = alignment;
    t->info.has_metadata = has_metadata;
}

static const cairn__tensor *record(const cairn__tensor_table *t, uint64_t i)
{
    return (const cairn__tensor *)((const char *)t->records + (size_t)i * t->stride);
}

/* The records' own names, in name order (through by_name). */
static const char *record_name(const void *ctx, uint64_t pos, size_t *len)
{
    const cairn__tensor_table *t = ctx;
    uint64_t i = t->by_name ? t->by_name[pos] : pos;
    if (t->packed)
        return cairn__packed_name(t->packed, t->order ? t->order[i] : i, len);
    const cairn_tensor_info *in = &record(t, i)->info;
    *len = in->name_len;
    return in->name;
}

int cairn__table_lookup(const cairn__tensor_table *t, const char *name, size_t len,
                        uint64_t *index)
{
    if (t->index) {
        int64_t i = cairn__nameset_find(t->index, name, len, t->index_name, t->ctx);
        if (i < 0)
            return 0;
        *index = (uint64_t)i;
        return 1;
    }
    uint64_t pos;
    if (!cairn__name_search(t->count, t->sorted_name ? t->sorted_name : record_name,
                            t->sorted_name ? t->ctx : t, name, len, &pos))
        return 0;
    *index = t->by_name ? t->by_name[pos] : pos;
    return 1;
}

uint64_t cairn__table_count(const cairn_file *f)
{
    const cairn__tensor_table *t = f->state;
    return t ? t->count : 0;
}

cairn_status cairn__table_tensor_at(const cairn_file *f, uint64_t index, cairn__tensor *out,
                                    cairn_error *err)
{
    const cairn__tensor_table *t = f->state;
    if (t->packed)
        cairn__packed_get(t->packed, t->order ? t->order[index] : index, out);
    else
        *out = *record(t, index);
    return CAIRN_OK;
}

cairn_status cairn__table_find(const cairn_file *f, const char *name, size_t len,
                               uint64_t *index, cairn_error *err)
{
    const cairn__tensor_table *t = f->state;
    return cairn__table_lookup(t, name, len, index) ? CAIRN_OK
                                                    : not_found(f, name, len, t->hint, err);
}

cairn_status cairn__table_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    const cairn__tensor_table *t = f->state;
    *out = t->info;
    out->tensor_count = t->count;
    out->file_size = f->src.size;
    return CAIRN_OK;
}

void cairn__table_close(cairn_file *f)
{
    cairn__tensor_table *t = f->state;
    if (t)
        t->free_state(t);
    f->state = NULL;
}

/* ------------------------------------------------------ shared reader parts */

cairn_status cairn__metadata_copy(const cairn_file *f, const cairn_value *tree, cairn_value **out,
                                  cairn_error *err)
{
    *out = tree ? cairn_value_clone(tree) : cairn_value_map();
    return *out ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
}

cairn_status cairn__metadata_check(const cairn_file *f, cairn_error *err)
{
    cairn_value *meta;
    CAIRN_TRY(f->ops->read_metadata(f, &meta, err));
    cairn_value_free(meta);
    return CAIRN_OK;
}

int cairn__tensor_info_same(const cairn_tensor_info *a, const cairn_tensor_info *b)
{
    return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0 &&
           a->dtype == b->dtype && a->rank == b->rank &&
           memcmp(a->dims, b->dims, sizeof a->dims) == 0 && a->offset == b->offset &&
           a->stored_size == b->stored_size;
}
