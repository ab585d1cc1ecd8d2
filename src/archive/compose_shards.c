/* compose_shards.c -- writing a sharded safetensors model (docs/FORMAT.md
 * §11.6, Writing): NAME-0000K-of-0000N.safetensors shards and the index
 * NAME.safetensors.index.json, as huggingface_hub writes them.
 *
 * A composite writer: every shard is an ordinary safetensors save through
 * the public writer (the accepted loop of ARCHITECTURE.md), so each shard
 * gets the same checks and commit as any file. Tensors are cut into shards
 * in declaration order, a shard ending when the next tensor would take it
 * past cairn_write_opts.shard_size (a larger tensor sits alone); when every
 * tensor fits in one shard the save is one plain file at the path, with no
 * index. So the shards must be known up front: a sharded save needs
 * cairn_writer_declare before its first add.
 *
 * Nothing ever verifies as a mix of two saves: shards stay unnamed (or
 * under temporary names) until every one is complete; then an index of an
 * earlier save at the same path is removed first, the shards are named,
 * and the new index is written last, atomically. A crash in between leaves
 * shards with no index, which no reader takes for a model; a failure
 * removes the shards this save had named. */
#include "archive/archive.h"
#include "io/remote.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct shard {
    char *path;
    cairn_writer *w;
    uint64_t lo, hi; /* declared tensors lo..hi-1 */
} shard;

typedef struct shards_state {
    cairn_write_opts opts; /* for each shard: safetensors, no sharding */
    cairn_value *meta;
    shard *shards;
    size_t count;
    char **names;       /* declared names, in declaration order */
    uint32_t *shard_of; /* declaration index -> shard */
    size_t declared;
    cairn__nameset index; /* declared names */
    uint64_t total;     /* the index's total_size */
} shards_state;

static const char *declared_name(const void *ctx, uint32_t i, size_t *len)
{
    const shards_state *s = ctx;
    *len = strlen(s->names[i]);
    return s->names[i];
}

/* "dir/model.safetensors", shard k of n -> "dir/model-0000k-of-0000n.safetensors". */
static char *shard_path(const char *out, size_t k, size_t n)
{
    size_t stem = strlen(out) - strlen(".safetensors"), size = stem + 64;
    char *path = malloc(size);
    if (path)
        snprintf(path, size, "%.*s-%05zu-of-%05zu.safetensors", (int)stem, out, k + 1, n);
    return path;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static cairn_status sh_begin(cairn_writer *w, cairn_error *err)
{
    shards_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    s->opts = (cairn_write_opts){.struct_size = sizeof s->opts, .flags = w->flags,
                                 .format = CAIRN_FORMAT_SAFETENSORS, .alignment = w->alignment};
    w->state = s;
    return CAIRN_OK;
}

static int holds_tensor_ref(const cairn_value *v)
{
    if (cairn_value_get_type(v) == CAIRN_VALUE_TENSOR)
        return 1;
    for (size_t k = 0; k < cairn_value_count(v); k++)
        if (holds_tensor_ref(cairn_value_at(v, k)))
            return 1;
    return 0;
}

/* Every shard carries the metadata, so it cannot name tensors: a shard
 * holds only some of them (the index reader wants every shard's copy of
 * the metadata to be the same). */
static cairn_status sh_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    shards_state *s = w->state;
    for (size_t k = 0; k < cairn_value_count(tree); k++)
        if (holds_tensor_ref(cairn_value_at(tree, k))) {
            cairn_status st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: metadata key '%s' holds "
                                          "a tensor reference, which the shards of a sharded "
                                          "model cannot carry", w->path,
                                          cairn_value_key_at(tree, k));
            cairn_value_free(tree);
            return st;
        }
    cairn_value_free(s->meta);
    s->meta = tree;
    return CAIRN_OK;
}

static cairn_status open_shard(cairn_writer *w, shards_state *s, shard *sh,
                               const cairn_tensor_decl *decls, cairn_error *err)
{
    CAIRN_TRY(cairn_writer_open_path(sh->path, &s->opts, &sh->w, err));
    if (s->meta && cairn_value_count(s->meta))
        CAIRN_TRY(cairn_writer_set_metadata(sh->w, s->meta, err));
    return cairn_writer_declare(sh->w, decls + sh->lo, (size_t)(sh->hi - sh->lo), err);
}

static cairn_status sh_declare(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                               cairn_error *err)
{
    shards_state *s = w->state;
    uint64_t limit = w->shard_size, size = 0;
    s->names = calloc(count ? count : 1, sizeof *s->names);
    s->shard_of = calloc(count ? count : 1, sizeof *s->shard_of);
    s->shards = calloc(count ? count : 1, sizeof *s->shards);
    if (!s->names || !s->shard_of || !s->shards)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    for (size_t i = 0; i < count; i++) {
        uint64_t bytes = 0; /* writer.c checked the product */
        cairn__mul_overflow(cairn_dtype_size(decls[i].dtype), 1, &bytes);
        for (uint32_t d = 0; d < decls[i].rank; d++)
            cairn__mul_overflow(bytes, decls[i].dims[d], &bytes);
        if (i == 0 || size + bytes > limit) {
            s->shards[s->count++].lo = i;
            size = 0;
        }
        size += bytes;
        s->total += bytes;
        s->shard_of[i] = (uint32_t)(s->count - 1);
        if (!(s->names[i] = strdup(decls[i].name)))
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
        s->declared = i + 1;
        CAIRN_TRY(cairn__nameset_insert(&s->index, (uint32_t)i, declared_name, s, err));
    }
    if (count == 0)
        s->count = 1; /* an empty model: one empty plain file */
    for (size_t k = 0; k < s->count; k++) {
        shard *sh = &s->shards[k];
        sh->hi = k + 1 < s->count ? s->shards[k + 1].lo : count;
        sh->path = s->count == 1 ? strdup(w->path) : shard_path(w->path, k, s->count);
        if (!sh->path)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
        CAIRN_TRY(open_shard(w, s, sh, decls, err));
    }
    return CAIRN_OK;
}

static cairn_status sh_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    shards_state *s = w->state;
    if (!s->shards)
        return cairn__fail(err, CAIRN_E_STATE, "%s: a sharded save lays its shards out first: "
                           "call cairn_writer_declare before adding tensors", w->path);
    int64_t i = cairn__nameset_find(&s->index, name, strlen(name), declared_name, s);
    if (i < 0) /* writer.c checked the plan: unreachable but for a caller race */
        return cairn__fail(err, CAIRN_E_MISMATCH, "%s: tensor '%s' was not declared", w->path,
                           name);
    return cairn_writer_add(s->shards[s->shard_of[i]].w, name, dtype, rank, dims, data, err);
}

static cairn_status sh_add_alias(cairn_writer *w, const char *name, const char *existing,
                                 cairn_error *err)
{
    return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: safetensors has no aliases; add '%s' "
                       "under the new name to store a copy", w->path, existing);
}

/* The index: {"metadata": {"total_size": N}, "weight_map": {tensor: shard}},
 * keys sorted and indented as huggingface_hub writes it. */
static char *index_text(const shards_state *s)
{
    json_t *root = json_object(), *meta = json_object(), *map = json_object();
    int bad = !root || !meta || !map || s->total > (uint64_t)INT64_MAX ||
              json_object_set_new(meta, "total_size", json_integer((json_int_t)s->total));
    for (size_t i = 0; !bad && i < s->declared; i++)
        bad = json_object_set_new(map, s->names[i],
                                  json_string(base_name(s->shards[s->shard_of[i]].path)));
    bad = bad || json_object_set(root, "metadata", meta) || json_object_set(root, "weight_map", map);
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    size_t len = text ? strlen(text) : 0;
    char *line = text ? realloc(text, len + 2) : NULL; /* end with a newline, as HF's does */
    if (line)
        memcpy(line + len, "\n", 2);
    else
        free(text);
    json_decref(map);
    json_decref(meta);
    json_decref(root);
    return line;
}

static cairn_status sh_finish(cairn_writer *w, cairn_error *err)
{
    shards_state *s = w->state;
    if (!s->shards)
        return cairn__fail(err, CAIRN_E_STATE, "%s: a sharded save needs cairn_writer_declare",
                           w->path);
    unsigned flags = (w->flags & CAIRN_WRITE_NO_SYNC) ? CAIRN__COMMIT_NO_SYNC : 0;
    size_t ilen = strlen(w->path) + sizeof ".index.json";
    char *index = malloc(ilen), *text = s->count > 1 ? index_text(s) : NULL;
    if (!index || (s->count > 1 && !text)) {
        free(index);
        free(text);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the index", w->path);
    }
    snprintf(index, ilen, "%s.index.json", w->path);
    /* An earlier save's index goes first: from here until the new index is
     * written no index names these shards, so no mix can be read as a model. */
    cairn_status st = CAIRN_OK;
    if (cairn__remote_is_url(index))
        st = cairn__remote_remove(index, err); /* object storage: nothing to sync */
    else if (unlink(index) == 0 && !(flags & CAIRN__COMMIT_NO_SYNC))
        st = cairn__commit_sync_parent(index, err);
    size_t named = 0;
    for (; st == CAIRN_OK && named < s->count; named++) {
        cairn_writer *part = s->shards[named].w;
        s->shards[named].w = NULL;
        st = cairn_writer_commit(part, err);
    }
    if (st == CAIRN_OK && text)
        st = cairn__commit_small_file(index, text, strlen(text), flags, err);
    if (st != CAIRN_OK) /* what this save named is removed: a failure leaves no half model */
        for (size_t k = 0; k < named; k++) {
            if (cairn__remote_is_url(s->shards[k].path))
                (void)cairn__remote_remove(s->shards[k].path, NULL);
            else
                unlink(s->shards[k].path);
        }
    free(index);
    free(text);
    return st;
}

static void sh_destroy(cairn_writer *w)
{
    shards_state *s = w->state;
    for (size_t k = 0; s->shards && k < s->count; k++) {
        cairn_writer_abort(s->shards[k].w);
        free(s->shards[k].path);
    }
    for (size_t i = 0; i < s->declared; i++)
        free(s->names[i]);
    free(s->names);
    free(s->shard_of);
    free(s->shards);
    cairn__nameset_free(&s->index);
    cairn_value_free(s->meta);
    free(s);
}

const cairn__writer_ops cairn__shards_writer =
    CAIRN__WRITER_OPS(sh, CAIRN_FORMAT_SAFETENSORS, .composite = 1, .add_alias = sh_add_alias,
                      .declare = sh_declare, .set_metadata = sh_set_metadata);
