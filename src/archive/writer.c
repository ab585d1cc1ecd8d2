/* writer.c -- the save side shared by every format: argument checks, the
 * choice of format (format/registry.h), the plan of declared tensors, and
 * the all-or-nothing commit through io/sink.h (docs/FORMAT.md §9). */
#include "archive/archive.h"
#include "codec/codec.h"
#include "common/opts.h"
#include "format/native/native.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

/* Keeps the first failure's status and message so later calls can repeat it. */
cairn_status cairn__writer_failed(cairn_writer *w, cairn_status st, cairn_error *err)
{
    w->failed = 1;
    return st;
}

/* The format of a save: the one asked for, else the file extension's
 * (format/registry.h), else native. */
static const cairn__format_row *writer_row(cairn_format format, const char *path)
{
    if (format == CAIRN_FORMAT_AUTO) {
        const cairn__format_row *row = path ? cairn__format_row_for_path(path) : NULL;
        return row ? row : cairn__format_row_of(CAIRN_FORMAT_NATIVE);
    }
    const cairn__format_row *row = cairn__format_row_of(format);
    return row && row->writer ? row : NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static cairn_status writer_new(const cairn_write_opts *opts, const char *path, cairn_writer **out,
                               cairn_error *err)
{
    /* Callers built before format 1.1 pass a struct that ends at alignment;
     * older ones may end sooner (common/opts.h). */
    cairn_write_opts o = {.struct_size = sizeof o, .format = CAIRN_FORMAT_AUTO};
    CAIRN_TRY(CAIRN__OPTS_COPY(&o, opts, cairn_write_opts, flags, err));
    unsigned flags = o.flags;
    cairn_format format = o.format;
    uint64_t alignment = o.alignment;
    /* A sharded model is written by naming its first file (NAME.safetensors)
     * with shard_size: refuse the index's name rather than write a native
     * file called *.index.json. */
    if (format == CAIRN_FORMAT_AUTO && path && ends_with(path, ".safetensors.index.json"))
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: write a sharded safetensors model by "
                           "its NAME.safetensors path with cairn_write_opts.shard_size; the "
                           "index is written beside the shards", path);
    const cairn__format_row *row = writer_row(format, path);
    const cairn__writer_ops *ops = row ? row->writer : NULL;
    if (o.shard_size) {
        if (!path)
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "<memory>: a sharded save writes several "
                               "files: it needs a path");
        if (!ops || ops->format != CAIRN_FORMAT_SAFETENSORS || !ends_with(path, ".safetensors"))
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: only safetensors models are "
                               "written in shards, to a path ending in .safetensors", path);
        ops = &cairn__shards_writer;
    }
    if (alignment == 0)
        alignment = row ? row->alignment : 64;
    if (alignment < 8 || alignment > 65536 || (alignment & (alignment - 1)))
        return cairn__fail(err, CAIRN_E_ARG, "%s: alignment %llu is not a power of two in "
                           "[8, 65536]", path ? path : "<memory>", (unsigned long long)alignment);
    if (!ops)
        return cairn__fail(err, CAIRN_E_ARG, "%s: cannot write format code %d",
                           path ? path : "<memory>", (int)format);
    CAIRN_TRY(cairn__codec_check(path ? path : "<memory>", o.codec, o.level, o.filter, err));
    if (o.codec != CAIRN_CODEC_NONE && !ops->add_coded)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: %s files cannot hold compressed tensors "
                           "(only the native format compresses)", path ? path : "<memory>",
                           cairn_format_name(ops->format));
    uint64_t chunk = o.chunk_size ? o.chunk_size : NATIVE_DEFAULT_CHUNK;
    if (chunk < NATIVE_MIN_CHUNK || chunk > NATIVE_MAX_CHUNK || (chunk & (chunk - 1)))
        return cairn__fail(err, CAIRN_E_ARG, "%s: chunk size %llu is not a power of two from 64 KiB "
                           "to 16 MiB", path ? path : "<memory>", (unsigned long long)chunk);
    cairn_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path ? path : "<memory>"))) {
        free(w);
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory");
    }
    w->ops = ops;
    w->flags = flags;
    w->alignment = alignment;
    w->codec = o.codec;
    w->level = o.level;
    w->filter = o.filter;
    w->chunk_size = chunk;
    w->threads = o.threads;
    w->shard_size = o.shard_size;
    cairn__sink_init_memory(&w->sink, w->path);
    *out = w;
    return CAIRN_OK;
}

/* ------------------------------------------------------------- the plan */

/* One tensor announced by cairn_writer_declare. */
typedef struct plan_entry {
    char *name;
    size_t name_len;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    int added;
} plan_entry;

/* What cairn_writer_declare announced: every add is checked against it and
 * commit checks that nothing is missing, whatever the format. */
struct cairn__plan {
    plan_entry *entries; /* in declaration order */
    size_t count, added;
    cairn__nameset names;
};

static const char *plan_name(const void *ctx, uint32_t index, size_t *len)
{
    const struct cairn__plan *p = ctx;
    *len = p->entries[index].name_len;
    return p->entries[index].name;
}

static int64_t plan_find(const struct cairn__plan *p, const char *name)
{
    return cairn__nameset_find(&p->names, name, strlen(name), plan_name, p);
}

static void plan_free(struct cairn__plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->count; i++)
        free(p->entries[i].name);
    free(p->entries);
    cairn__nameset_free(&p->names);
    free(p);
}

/* ------------------------------------------------- names added so far */

/* Every tensor and alias name added: a second add of a name is refused here,
 * once for every format (the formats keep no duplicate checks of their own). */
struct cairn__added {
    char **names;
    size_t count, cap;
    cairn__nameset set;
};

static const char *added_name(const void *ctx, uint32_t index, size_t *len)
{
    const struct cairn__added *a = ctx;
    *len = strlen(a->names[index]);
    return a->names[index];
}

static cairn_status check_new_name(const cairn_writer *w, const char *name, cairn_error *err)
{
    const struct cairn__added *a = w->added;
    if (a && cairn__nameset_find(&a->set, name, strlen(name), added_name, a) >= 0)
        return cairn__fail(err, CAIRN_E_EXISTS, "%s: tensor '%s' was already added", w->path,
                           name);
    return CAIRN_OK;
}

/* Records `name` (copied) once the format has taken it. */
static cairn_status remember_name(cairn_writer *w, const char *name, cairn_error *err)
{
    struct cairn__added *a = w->added;
    if (!a && !(a = w->added = calloc(1, sizeof *a)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    if (a->count >= UINT32_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': too many tensors", w->path, name);
    if (!CAIRN__GROW(a->names, a->cap, a->count, 8) || !(a->names[a->count] = strdup(name)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    a->count++;
    return cairn__nameset_insert(&a->set, (uint32_t)(a->count - 1), added_name, a, err);
}

static void added_free(struct cairn__added *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->count; i++)
        free(a->names[i]);
    free(a->names);
    cairn__nameset_free(&a->set);
    free(a);
}

static void writer_free(cairn_writer *w)
{
    plan_free(w->plan);
    added_free(w->added);
    cairn_value_free(w->meta);
    cairn_value_free(w->objects);
    if (w->state)
        w->ops->destroy(w);
    cairn__sink_discard(&w->sink);
    free(w->path);
    free(w);
}

/* The format's begin op once the sink is ready (st): *out = w, or w is
 * freed. */
static cairn_status begin(cairn_writer *w, cairn_status st, cairn_writer **out, cairn_error *err)
{
    if (st == CAIRN_OK)
        st = w->ops->begin(w, err);
    if (st != CAIRN_OK) {
        writer_free(w);
        return st;
    }
    *out = w;
    return CAIRN_OK;
}

cairn_status cairn_writer_open_path(const char *path, const cairn_write_opts *opts,
                                    cairn_writer **out, cairn_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !*path || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_writer_open_path: path and out must be given");
    cairn_writer *w = NULL;
    CAIRN_TRY(writer_new(opts, path, &w, err));
    cairn_status st = w->ops->composite ? CAIRN_OK : cairn__sink_open_file(&w->sink, w->path, err);
    return begin(w, st, out, err);
}

cairn_status cairn_writer_open_memory(const cairn_write_opts *opts, cairn_writer **out,
                                      cairn_error *err)
{
    if (out)
        *out = NULL;
    if (!out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_writer_open_memory: out must not be NULL");
    cairn_writer *w = NULL;
    CAIRN_TRY(writer_new(opts, NULL, &w, err));
    return begin(w, CAIRN_OK, out, err);
}

cairn_status cairn__writer_usable(cairn_writer *w, cairn_error *err)
{
    if (!w)
        return cairn__fail(err, CAIRN_E_ARG, "NULL cairn_writer");
    if (w->failed)
        return cairn__fail(err, CAIRN_E_STATE, "%s: the writer failed earlier; abort it", w->path);
    return CAIRN_OK;
}

/* The checks every format relies on for a tensor's name, dtype, rank and
 * dims (cairn_writer_add and cairn_writer_declare); *bytes gets its size. */
static cairn_status check_tensor(const cairn_writer *w, const char *name, cairn_dtype dtype,
                                 uint32_t rank, const uint64_t *dims, uint64_t *bytes,
                                 cairn_error *err)
{
    if (!name)
        return cairn__fail(err, CAIRN_E_ARG, "%s: NULL tensor name", w->path);
    size_t len = strlen(name);
    if (cairn__name_check(name, len, "tensor", NULL) != CAIRN_OK) { /* the message names the file */
        char what[256];
        snprintf(what, sizeof what, "%s: tensor", w->path);
        return cairn__name_check(name, len, what, err);
    }
    if (cairn_dtype_size(dtype) == 0)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': invalid dtype %d", w->path, name,
                           (int)dtype);
    if (rank > CAIRN_MAX_RANK)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': rank %u exceeds %d", w->path,
                           name, rank, CAIRN_MAX_RANK);
    if (rank > 0 && !dims)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL dims for rank %u", w->path,
                           name, rank);
    if (cairn__shape_too_big(rank, dims, cairn_dtype_size(dtype)))
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': size overflows (counting each "
                           "zero dimension as 1, more than 2^62 bytes)", w->path, name);
    *bytes = cairn_dtype_size(dtype);
    for (uint32_t d = 0; d < rank; d++)
        *bytes *= dims[d];
    return CAIRN_OK;
}

/* "F32 [2, 3]" for messages. */
static const char *shape_text(char *buf, size_t size, cairn_dtype dtype, uint32_t rank,
                              const uint64_t *dims)
{
    size_t n = (size_t)snprintf(buf, size, "%s [", cairn_dtype_name(dtype));
    for (uint32_t k = 0; k < rank && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, k ? ", %llu" : "%llu",
                              (unsigned long long)dims[k]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

static int same_shape(const plan_entry *e, cairn_dtype dtype, uint32_t rank, const uint64_t *dims)
{
    return e->dtype == dtype && e->rank == rank &&
           (rank == 0 || memcmp(e->dims, dims, rank * sizeof *dims) == 0);
}

/* An add in a declared save: `name` must be declared with this dtype and
 * dims and not added yet; *index gets its plan entry. */
static cairn_status plan_check_add(const cairn_writer *w, const char *name, cairn_dtype dtype,
                                   uint32_t rank, const uint64_t *dims, size_t *index,
                                   cairn_error *err)
{
    const struct cairn__plan *p = w->plan;
    int64_t at = plan_find(p, name);
    if (at < 0)
        return cairn__fail(err, CAIRN_E_MISMATCH, "%s: tensor '%s' was not declared "
                           "(cairn_writer_declare announced %zu other tensors)", w->path, name,
                           p->count);
    const plan_entry *e = &p->entries[at]; /* not added yet: check_new_name saw to that */
    if (!same_shape(e, dtype, rank, dims)) {
        char have[160], want[160];
        return cairn__fail(err, CAIRN_E_MISMATCH, "%s: tensor '%s' is %s, but was declared %s",
                           w->path, name, shape_text(have, sizeof have, dtype, rank, dims),
                           shape_text(want, sizeof want, e->dtype, e->rank, e->dims));
    }
    *index = (size_t)at;
    return CAIRN_OK;
}

/* An alias in a declared save: its name must be declared with the dtype
 * and dims of `existing`, itself declared. */
static cairn_status plan_check_alias(const cairn_writer *w, const char *name,
                                     const char *existing, size_t *index, cairn_error *err)
{
    int64_t of = plan_find(w->plan, existing), at = plan_find(w->plan, name);
    if (of < 0)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: alias '%s' of '%s': '%s' was not "
                           "declared", w->path, name, existing, existing);
    const plan_entry *e = &w->plan->entries[of], *a = at >= 0 ? &w->plan->entries[at] : NULL;
    if (a && !a->added && !same_shape(a, e->dtype, e->rank, e->dims)) {
        char have[160], want[160];
        return cairn__fail(err, CAIRN_E_MISMATCH, "%s: alias '%s' was declared %s, but '%s' is "
                           "%s", w->path, name,
                           shape_text(want, sizeof want, a->dtype, a->rank, a->dims), existing,
                           shape_text(have, sizeof have, e->dtype, e->rank, e->dims));
    }
    return plan_check_add(w, name, e->dtype, e->rank, e->dims, index, err);
}

static void plan_mark(struct cairn__plan *p, size_t index)
{
    p->entries[index].added = 1;
    p->added++;
}

/* At commit: every declared tensor was added. */
static cairn_status plan_complete(const cairn_writer *w, cairn_error *err)
{
    const struct cairn__plan *p = w->plan;
    if (!p || p->added == p->count)
        return CAIRN_OK;
    size_t i = 0;
    while (p->entries[i].added)
        i++;
    return cairn__fail(err, CAIRN_E_STATE, "%s: tensor '%s' was declared but never added (%zu "
                       "of %zu declared tensors are missing)", w->path, p->entries[i].name,
                       p->count - p->added, p->count);
}

/* Copies and indexes the declarations (checked as adds are). */
static cairn_status plan_build(const cairn_writer *w, const cairn_tensor_decl *decls,
                               size_t count, struct cairn__plan **out, cairn_error *err)
{
    struct cairn__plan *p = calloc(1, sizeof *p);
    if (!p || !(p->entries = calloc(count ? count : 1, sizeof *p->entries))) {
        free(p);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %zu declared tensors",
                           w->path, count);
    }
    *out = p;
    for (size_t i = 0; i < count; i++) {
        const cairn_tensor_decl *d = &decls[i];
        uint64_t bytes;
        CAIRN_TRY(check_tensor(w, d->name, d->dtype, d->rank, d->dims, &bytes, err));
        if (plan_find(p, d->name) >= 0)
            return cairn__fail(err, CAIRN_E_EXISTS, "%s: tensor '%s' is declared twice", w->path,
                               d->name);
        plan_entry *e = &p->entries[p->count];
        e->name_len = strlen(d->name);
        e->dtype = d->dtype;
        e->rank = d->rank;
        if (d->rank)
            memcpy(e->dims, d->dims, d->rank * sizeof *d->dims);
        if (!(e->name = strdup(d->name)))
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
        p->count++;
        CAIRN_TRY(cairn__nameset_insert(&p->names, (uint32_t)i, plan_name, p, err));
    }
    return CAIRN_OK;
}

cairn_status cairn_writer_declare(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                                  cairn_error *err)
{
    CAIRN_TRY(cairn__writer_usable(w, err));
    cairn_status st = CAIRN_OK;
    if (w->plan)
        st = cairn__fail(err, CAIRN_E_STATE, "%s: cairn_writer_declare was already called (it "
                         "announces every tensor at once)", w->path);
    else if (w->started || w->objects)
        st = cairn__fail(err, CAIRN_E_STATE, "%s: cairn_writer_declare must come before the "
                         "first tensor is added", w->path);
    else if (!decls && count)
        st = cairn__fail(err, CAIRN_E_ARG, "%s: cairn_writer_declare: NULL decls for %zu tensors",
                         w->path, count);
    else if (count > NATIVE_MAX_TENSORS)
        st = cairn__fail(err, CAIRN_E_LIMIT, "%s: %zu tensors declared; a save holds at most "
                         "%llu", w->path, count, (unsigned long long)NATIVE_MAX_TENSORS);
    struct cairn__plan *p = NULL;
    if (st == CAIRN_OK)
        st = plan_build(w, decls, count, &p, err);
    if (st == CAIRN_OK && w->ops->declare)
        st = w->ops->declare(w, decls, count, err);
    if (st != CAIRN_OK) {
        plan_free(p);
        return cairn__writer_failed(w, st, err);
    }
    w->plan = p;
    return CAIRN_OK;
}

/* After the format's add (status st) of `name`: the name is taken and its
 * plan entry done, or the writer fails. */
static cairn_status add_done(cairn_writer *w, cairn_status st, const char *name, size_t planned,
                             cairn_error *err)
{
    if (st == CAIRN_OK)
        st = remember_name(w, name, err);
    if (st != CAIRN_OK)
        return cairn__writer_failed(w, st, err);
    if (w->plan)
        plan_mark(w->plan, planned);
    return CAIRN_OK;
}

/* cairn_writer_add and cairn_writer_add_ex: the checks every format
 * relies on, then the format's add (or add_coded for a codec). */
static cairn_status add_tensor(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                               const uint64_t *dims, const void *data, uint32_t codec,
                               int32_t level, uint32_t filter, cairn_error *err)
{
    uint64_t bytes = 0;
    size_t planned = 0;
    w->started = 1;
    cairn_status st = check_tensor(w, name, dtype, rank, dims, &bytes, err);
    if (st != CAIRN_OK)
        return cairn__writer_failed(w, st, err);
    if (!data && bytes > 0)
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL data",
                                            w->path, name), err);
    if (codec != CAIRN_CODEC_NONE && !w->ops->add_coded)
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': %s files "
                                            "cannot hold compressed tensors", w->path, name,
                                            cairn_format_name(w->ops->format)), err);
    if ((st = check_new_name(w, name, err)) != CAIRN_OK)
        return cairn__writer_failed(w, st, err);
    if (w->plan && (st = plan_check_add(w, name, dtype, rank, dims, &planned, err)) != CAIRN_OK)
        return cairn__writer_failed(w, st, err);
    if (w->ops->add_coded)
        st = w->ops->add_coded(w, name, dtype, rank, dims, data, codec, level, filter, err);
    else
        st = w->ops->add(w, name, dtype, rank, dims, data, err);
    return add_done(w, st, name, planned, err);
}

cairn_status cairn_writer_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                              const uint64_t *dims, const void *data, cairn_error *err)
{
    CAIRN_TRY(cairn__writer_usable(w, err));
    return add_tensor(w, name, dtype, rank, dims, data, w->codec, w->level, w->filter, err);
}

cairn_status cairn_writer_add_ex(cairn_writer *w, const char *name, cairn_dtype dtype,
                                 uint32_t rank, const uint64_t *dims, const void *data,
                                 const cairn_tensor_opts *opts, cairn_error *err)
{
    CAIRN_TRY(cairn__writer_usable(w, err));
    if (!opts)
        return add_tensor(w, name, dtype, rank, dims, data, w->codec, w->level, w->filter, err);
    cairn_tensor_opts o = {.struct_size = sizeof o};
    cairn_status st = CAIRN__OPTS_COPY(&o, opts, cairn_tensor_opts, codec, err);
    if (st != CAIRN_OK)
        return cairn__writer_failed(w, st, err);
    char what[CAIRN_NAME_MAX + 64];
    snprintf(what, sizeof what, "%s: tensor '%.*s'", w->path, 200, name ? name : "(null)");
    st = cairn__codec_check(what, o.codec, o.level, o.filter, err);
    if (st != CAIRN_OK)
        return cairn__writer_failed(w, st, err);
    return add_tensor(w, name, dtype, rank, dims, data, o.codec, o.level, o.filter,
                      err);
}

cairn_status cairn_writer_add_alias(cairn_writer *w, const char *name, const char *existing,
                                    cairn_error *err)
{
    CAIRN_TRY(cairn__writer_usable(w, err));
    if (!name || !existing)
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_ARG, "%s: NULL alias name", w->path), err);
    w->started = 1;
    char what[256];
    size_t planned = 0;
    snprintf(what, sizeof what, "%s: alias", w->path);
    cairn_status st = cairn__name_check(name, strlen(name), what, err);
    if (st == CAIRN_OK)
        st = check_new_name(w, name, err);
    if (st == CAIRN_OK && w->plan)
        st = plan_check_alias(w, name, existing, &planned, err);
    if (st == CAIRN_OK && !w->ops->add_alias)
        st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: alias '%s' of '%s': %s, so it has no "
                         "aliases; add the tensor again under the new name to store a copy",
                         w->path, name, existing, w->ops->no_alias);
    else if (st == CAIRN_OK)
        st = w->ops->add_alias(w, name, existing, err);
    return add_done(w, st, name, planned, err);
}

/* Hands `tree` (owned) to the format, or for a format that stores no
 * metadata (no set_metadata) accepts an empty map and refuses any other in
 * its no_metadata words. */
static cairn_status format_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    if (w->ops->set_metadata)
        return w->ops->set_metadata(w, tree, err);
    int empty = cairn_value_get_type(tree) == CAIRN_VALUE_MAP && cairn_value_count(tree) == 0;
    cairn_value_free(tree);
    return empty ? CAIRN_OK
                 : cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: metadata: %s", w->path,
                               w->ops->no_metadata);
}

cairn_status cairn_writer_set_metadata(cairn_writer *w, const cairn_value *tree, cairn_error *err)
{
    CAIRN_TRY(cairn__writer_usable(w, err));
    if (!tree || cairn_value_get_type(tree) != CAIRN_VALUE_MAP)
        return cairn__fail(err, CAIRN_E_ARG, "%s: metadata must be a map", w->path);
    if (w->plan) /* the declared layout holds the metadata (safetensors, GGUF headers) */
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_STATE, "%s: the metadata must be set "
                                            "before cairn_writer_declare", w->path), err);
    cairn_value *copy = cairn_value_clone(tree);
    if (!copy)
        return cairn__writer_failed(w, cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory copying "
                                            "metadata", w->path), err);
    /* The format sees the tree now, so it can refuse what it cannot hold at
     * once; the writer keeps its own copy to merge objects into at commit. */
    cairn_value *mine = cairn_value_clone(tree);
    cairn_status st = mine ? format_metadata(w, copy, err)
                           : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    if (!mine)
        cairn_value_free(copy);
    if (st != CAIRN_OK) {
        cairn_value_free(mine);
        /* A format that cannot hold the tree refuses it without having
         * written anything, so the save can go on without metadata. */
        return st == CAIRN_E_UNSUPPORTED ? st : cairn__writer_failed(w, st, err);
    }
    cairn_value_free(w->meta);
    w->meta = mine;
    return CAIRN_OK;
}

/* Hands the metadata tree with the objects merged in to the format (which
 * already holds the tree without them). */
static cairn_status flush_metadata(cairn_writer *w, cairn_error *err)
{
    if (!w->objects)
        return CAIRN_OK;
    if (!w->meta && !(w->meta = cairn_value_map()))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    if (cairn_value_get(w->meta, "objects"))
        return cairn__fail(err, CAIRN_E_EXISTS, "%s: metadata key 'objects' is reserved for "
                           "cairn_writer_append_object", w->path);
    CAIRN_TRY(cairn_value_set(w->meta, "objects", w->objects, err));
    w->objects = NULL;
    cairn_value *meta = w->meta;
    w->meta = NULL;
    return format_metadata(w, meta, err);
}

/* The commit protocol is io/'s (io/commit.h through the sink). */
static cairn_status commit_file(cairn_writer *w, cairn_error *err)
{
    unsigned flags = (w->flags & CAIRN_WRITE_NO_SYNC) ? CAIRN__COMMIT_NO_SYNC : 0;
    if (w->flags & CAIRN_WRITE_NO_REPLACE)
        flags |= CAIRN__COMMIT_NO_REPLACE;
    return cairn__sink_commit(&w->sink, flags, err);
}

/* What both commits do before handing the bytes over: every declared
 * tensor added, the metadata given to the format, the format's tail written. */
static cairn_status finish_format(cairn_writer *w, cairn_error *err)
{
    CAIRN_TRY(plan_complete(w, err));
    CAIRN_TRY(flush_metadata(w, err));
    return w->ops->finish(w, err);
}

/* Both path commits; `id` (may be NULL) receives a native file's identity,
 * taken before the commit so a format without one commits nothing. */
static cairn_status commit_path(cairn_writer *w, cairn_file_id *id, cairn_error *err)
{
    cairn_status st = cairn__writer_usable(w, err);
    if (w && st == CAIRN_OK && cairn__sink_is_memory(&w->sink) && !w->ops->composite)
        st = cairn__fail(err, CAIRN_E_STATE, "<memory>: use cairn_writer_commit_memory");
    if (st == CAIRN_OK)
        st = finish_format(w, err);
    if (st == CAIRN_OK && id && (!w->has_index_hash || w->ops->composite))
        st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: only a native file has an identity "
                         "(size and index hash)", w->path);
    if (st == CAIRN_OK && id)
        *id = (cairn_file_id){.size = w->sink.pos, .index_hash = w->index_hash};
    if (st == CAIRN_OK && !w->ops->composite)
        st = commit_file(w, err);
    if (w)
        writer_free(w);
    return st;
}

cairn_status cairn_writer_commit(cairn_writer *w, cairn_error *err)
{
    return commit_path(w, NULL, err);
}

cairn_status cairn_writer_commit_id(cairn_writer *w, cairn_file_id *out, cairn_error *err)
{
    cairn_file_id id = {0};
    if (out)
        *out = id;
    if (!out) {
        cairn_writer_abort(w);
        return cairn__fail(err, CAIRN_E_ARG, "cairn_writer_commit_id: NULL out");
    }
    CAIRN_TRY(commit_path(w, &id, err));
    *out = id;
    return CAIRN_OK;
}

cairn_status cairn_writer_commit_memory(cairn_writer *w, void **out_data, size_t *out_size,
                                        cairn_error *err)
{
    if (out_data)
        *out_data = NULL;
    if (out_size)
        *out_size = 0;
    cairn_status st = cairn__writer_usable(w, err);
    if (st == CAIRN_OK && (!out_data || !out_size))
        st = cairn__fail(err, CAIRN_E_ARG, "cairn_writer_commit_memory: NULL out pointer");
    if (st == CAIRN_OK && !cairn__sink_is_memory(&w->sink))
        st = cairn__fail(err, CAIRN_E_STATE, "%s: use cairn_writer_commit for a path writer",
                         w->path);
    if (st == CAIRN_OK)
        st = finish_format(w, err);
    if (st == CAIRN_OK)
        st = cairn__sink_take_memory(&w->sink, out_data, out_size, err);
    if (w)
        writer_free(w);
    return st;
}

void cairn_writer_abort(cairn_writer *w)
{
    if (w)
        writer_free(w);
}
