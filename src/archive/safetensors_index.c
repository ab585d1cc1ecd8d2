/* safetensors_index.c -- a sharded safetensors model (an index JSON plus the
 * shards it names, docs/FORMAT.md §11.6) opened as one archive. */
#include "format/safetensors/safetensors.h"
#include "archive/safetensors_index.h"
#include "format/safetensors/safetensors_json.h"
#include "format/safetensors/safetensors_meta.h"
#include "common/nameset.h"

#include <stdlib.h>

/* One weight_map entry; the strings live in the index text or its parse
 * (not NUL-terminated). */
typedef struct stx_entry {
    const char *name;  /* the tensor */
    const char *shard; /* the shard's file name */
    uint32_t name_len, shard_len;
    uint32_t shard_at; /* into stx_plan.shards */
} stx_entry;

/* What the index says, checked, before any shard is opened. The index is
 * read with the safetensors header's parser, weight_map one entry at a time
 * (a DOM would cost ~200 bytes per tensor). */
typedef struct stx_plan {
    char *heap;           /* the text when it is not the mapping's */
    cairn__stj_doc *doc;  /* the parse, while the plan is made */
    char *strings;        /* entry strings that are not the text's (escaped ones) */
    json_t *meta;         /* the "metadata" object, or NULL */
    stx_entry *entries;   /* weight_map order */
    uint64_t count, cap;
    uint32_t *by_name;    /* entries in name order */
    char **shards;        /* distinct shard names (NUL-terminated copies), strcmp order */
    uint32_t shard_count;
    int has_total;
    uint64_t total_size;
} stx_plan;

/* One tensor of the union: where it lives (its name is the shard's). A
 * shard holds at most STX_MAX_TENSORS tensors the map lists. */
typedef struct stx_tensor {
    uint32_t shard;
    uint32_t local; /* its index in that shard */
} stx_tensor;

typedef struct stx_reader {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn_file **shards; /* shard_count handles, in shard-name order, each opened once */
    char **shard_names;
    uint32_t shard_count;
    stx_tensor *tensors; /* sorted by name (memcmp order, shorter first) */
    uint64_t count;
    json_t *meta;        /* the index's "metadata" object, or NULL */
} stx_reader;
CAIRN__TABLE_FIRST(stx_reader);

static const char *kind(const json_t *v) { return cairn__stmeta_json_kind(v); }

static const char *shown(const char *s, char *buf, size_t size)
{
    return cairn__printable(s, strlen(s), buf, size);
}

static const char *shown_n(const char *s, size_t len, char *buf, size_t size)
{
    return cairn__printable(s, len, buf, size);
}

/* ------------------------------------------------------------ index text */

/* The whole index: the mapping, or a heap copy in *heap (caller frees). */
static cairn_status index_text(const cairn_file *f, const char **text, char **heap,
                               cairn_error *err)
{
    *text = NULL;
    *heap = NULL;
    if (f->src.size > STX_MAX_INDEX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: JSON text of %llu bytes; a sharded "
                           "safetensors index may hold at most %llu bytes (64 MiB)", f->path,
                           (unsigned long long)f->src.size, (unsigned long long)STX_MAX_INDEX);
    size_t len = (size_t)f->src.size;
    *text = (const char *)cairn__file_ptr(f, 0, len);
    if (*text)
        return CAIRN_OK;
    *heap = malloc(len + CAIRN__STJ_PADDING); /* read in place by the parser */
    if (!*heap)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for a %zu-byte index", f->path,
                           len);
    cairn_status st = cairn__file_read(f, 0, *heap, len, err);
    memset(*heap + len, 0, CAIRN__STJ_PADDING);
    if (st != CAIRN_OK) {
        free(*heap);
        *heap = NULL;
        return st;
    }
    *text = *heap;
    return CAIRN_OK;
}

/* ------------------------------------------------------------- detection */

int cairn__stindex_sniff(const cairn_file *f)
{
    uint64_t span = f->src.size < STX_SNIFF_SPAN ? f->src.size : STX_SNIFF_SPAN;
    return cairn__json_object_starts(f, 0, span);
}

/* Bytes a parser may read from offset 0 of the index through its
 * mapping: to the end of the mapping's last page (pages are multiples of
 * 4 KiB). */
static size_t readable_bytes(const cairn_file *f)
{
    uint64_t end = f->src.size;
    if (f->src.mapped)
        end = (end + 4095) / 4096 * 4096;
    return (size_t)end;
}

static int stop_at_weight_map(void *ctx, const cairn__stj_node *v, size_t n)
{
    (void)n;
    *(int *)ctx = 1;
    return v->key_len == 10 && memcmp(v->key, "weight_map", 10) == 0;
}

/* Lenient on purpose (duplicates allowed): this only decides which reader
 * reports on the file; the open parses strictly and says what is wrong. */
cairn_status cairn__stindex_detect(cairn_file *f, cairn_error *err)
{
    const char *text, *why;
    char *heap;
    CAIRN_TRY(index_text(f, &text, &heap, err));
    size_t len = (size_t)f->src.size;
    cairn__stj_doc *doc = NULL;
    cairn__stj_kind kind;
    static const cairn__stj_limits keys_only = {1, 0};
    int seen = 0;
    cairn__stj_status s = cairn__stj_open(text, len, heap ? len + CAIRN__STJ_PADDING
                                                          : readable_bytes(f), &doc, &why);
    if (s == CAIRN__STJ_OK)
        s = cairn__stj_root(doc, &kind, &why);
    if (s == CAIRN__STJ_OK && kind == CAIRN__STJ_OBJECT)
        s = cairn__stj_members(doc, &keys_only, stop_at_weight_map, &seen, &why);
    int parsed = s == CAIRN__STJ_OK || s == CAIRN__STJ_STOPPED;
    int index = parsed ? s == CAIRN__STJ_STOPPED
                       : memmem(text, len, "\"weight_map\"", 12) != NULL;
    cairn__stj_free(doc);
    free(heap);
    if (index) {
        f->ops = &cairn__safetensors_index_reader;
        return CAIRN_OK;
    }
    if (s == CAIRN__STJ_NOMEM)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory parsing JSON", f->path);
    return cairn__fail(err, CAIRN_E_FORMAT, "%s: JSON text (%s), not a sharded safetensors index "
                       "(whose top-level object has a \"weight_map\")", f->path,
                       parsed ? "without a \"weight_map\" key" : "not even valid JSON");
}

/* ------------------------------------------------------------------ plan */

static void plan_free(stx_plan *p)
{
    free(p->entries);
    free(p->by_name);
    for (uint32_t i = 0; p->shards && i < p->shard_count; i++)
        free(p->shards[i]);
    free(p->shards);
    json_decref(p->meta);
    cairn__stj_free(p->doc);
    free(p->strings);
    free(p->heap);
    memset(p, 0, sizeof *p);
}

/* A shard is a bare file name in the index's directory: anything that could
 * reach elsewhere (a separator, "..", an absolute or hidden name) is refused
 * rather than interpreted. The reason, or NULL when the name is fine. */
static const char *bad_shard_name(const char *s, size_t len)
{
    if (len == 0)
        return "is empty";
    if (memchr(s, 0, len))
        return "holds a NUL byte";
    if (s[0] == '.')
        return "starts with '.'";
    if (memchr(s, '/', len))
        return "contains '/'";
    if (memchr(s, '\\', len))
        return "contains '\\'";
    return NULL;
}

/* "total_size": an integer >= 0; an integral real (some tools write 1.5e10)
 * is taken at its exact value. */
static cairn_status parse_total(const cairn_file *f, stx_plan *p, cairn_error *err)
{
    const json_t *v = json_object_get(p->meta, "total_size");
    if (!v)
        return CAIRN_OK;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        p->total_size = (uint64_t)json_integer_value(v);
        p->has_total = 1;
        return CAIRN_OK;
    }
    double d = json_is_real(v) ? json_real_value(v) : -1.0;
    if (d >= 0.0 && d < 9223372036854775808.0 && (double)(uint64_t)d == d) {
        p->total_size = (uint64_t)d;
        p->has_total = 1;
        return CAIRN_OK;
    }
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: "
                       "\"metadata\".\"total_size\" is %s; it must be a byte count (an integer "
                       ">= 0)", f->path, json_is_number(v) ? "not a whole number >= 0" : kind(v));
}

/* What a walk over the index needs: the file, the plan, the first failure. */
typedef struct stx_walk {
    const cairn_file *f;
    stx_plan *p;
    cairn_error *err;
    cairn_status st;
    /* the top-level keys (walk_top) */
    struct stx_key { const char *s; size_t len; } *keys;
    size_t nkeys, cap;
    cairn__stj_kind map_kind, meta_kind;
    int has_map, has_meta;
    uint64_t map_len;
} stx_walk;

static int key_is(const cairn__stj_node *v, const char *key)
{
    size_t n = strlen(key);
    return v->key_len == n && memcmp(v->key, key, n) == 0;
}

static const char *node_kind(cairn__stj_kind k)
{
    static const char *const names[] = {"null", "a boolean", "an integer", "an integer",
                                        "a real number", "a string", "an array", "an object"};
    return names[k];
}

static int key_order(const void *a, const void *b)
{
    const struct stx_key *x = a, *y = b;
    return cairn__name_cmp(x->s, x->len, y->s, y->len);
}

static cairn_status dup_key(const stx_walk *w, const char *where, const char *key, size_t len)
{
    char a[96];
    return cairn__fail(w->err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: invalid JSON: "
                       "duplicate object key '%s'%s", w->f->path, shown_n(key, len, a, sizeof a),
                       where);
}

static int walk_top(void *ctx, const cairn__stj_node *v, size_t n)
{
    stx_walk *w = ctx;
    (void)n;
    if (w->nkeys == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        struct stx_key *k = realloc(w->keys, cap * sizeof *k);
        if (!k) {
            w->st = cairn__fail(w->err, CAIRN_E_NOMEM, "%s: out of memory", w->f->path);
            return 1;
        }
        w->keys = k;
        w->cap = cap;
    }
    w->keys[w->nkeys++] = (struct stx_key){v->key, v->key_len};
    if (key_is(v, "weight_map") && !w->has_map) {
        w->has_map = 1;
        w->map_kind = v->kind;
        w->map_len = v->len;
    } else if (key_is(v, "metadata") && !w->has_meta) {
        w->has_meta = 1;
        w->meta_kind = v->kind;
    }
    return 0;
}

/* A flattened JSON value as jansson's (the metadata, kept as the reader
 * before it kept it), refusing what jansson refused: repeated keys and
 * integers past 64 bits. NULL with w->st set on failure. */
static json_t *to_json(stx_walk *w, const cairn__stj_node *v)
{
    json_t *j = NULL;
    switch (v->kind) {
    case CAIRN__STJ_NULL: return json_null();
    case CAIRN__STJ_BOOL: return json_boolean(v->i);
    case CAIRN__STJ_INT: j = json_integer((json_int_t)v->i); break;
    case CAIRN__STJ_UINT:
        w->st = cairn__fail(w->err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: invalid "
                            "JSON: an integer past 2^63 - 1 in \"metadata\"", w->f->path);
        return NULL;
    case CAIRN__STJ_REAL: j = json_real(v->d); break;
    case CAIRN__STJ_STRING: j = json_stringn_nocheck(v->str, v->len); break;
    case CAIRN__STJ_ARRAY:
    case CAIRN__STJ_OBJECT: {
        int obj = v->kind == CAIRN__STJ_OBJECT;
        j = obj ? json_object() : json_array();
        const cairn__stj_node *c = v + 1;
        for (uint32_t k = 0; j && k < v->emitted; k++, c = c + 1 + c->skip) {
            if (obj && json_object_getn(j, c->key, c->key_len)) {
                w->st = dup_key(w, " in \"metadata\"", c->key, c->key_len);
                json_decref(j);
                return NULL;
            }
            json_t *child = to_json(w, c);
            if (!child || (obj ? json_object_setn_new_nocheck(j, c->key, c->key_len, child)
                               : json_array_append_new(j, child))) {
                json_decref(j);
                if (w->st == CAIRN_OK)
                    w->st = cairn__fail(w->err, CAIRN_E_NOMEM, "%s: out of memory",
                                        w->f->path);
                return NULL;
            }
        }
        return j;
    }
    }
    if (!j)
        w->st = cairn__fail(w->err, CAIRN_E_NOMEM, "%s: out of memory", w->f->path);
    return j;
}

static int walk_meta(void *ctx, const cairn__stj_node *v, size_t n)
{
    stx_walk *w = ctx;
    (void)n;
    w->p->meta = to_json(w, v);
    return 1;
}

static int walk_entry(void *ctx, const cairn__stj_node *v, size_t n)
{
    stx_walk *w = ctx;
    stx_plan *p = w->p;
    char a[96], b[96];
    (void)n;
    if (v->kind != CAIRN__STJ_STRING) {
        w->st = cairn__fail(w->err, CAIRN_E_CORRUPT, "%s: weight_map: tensor '%s': the shard is "
                            "%s, not a file name", w->f->path,
                            shown_n(v->key, v->key_len, a, sizeof a), node_kind(v->kind));
        return 1;
    }
    if (memchr(v->key, 0, v->key_len)) {
        w->st = cairn__fail(w->err, CAIRN_E_CORRUPT, "%s: weight_map: tensor '%s': the name "
                            "holds a NUL byte (\\u0000)", w->f->path,
                            shown_n(v->key, v->key_len, a, sizeof a));
        return 1;
    }
    const char *why = bad_shard_name(v->str, v->len);
    if (why) {
        w->st = cairn__fail(w->err, CAIRN_E_CORRUPT, "%s: weight_map: tensor '%s': shard name "
                            "'%s' %s; a shard is a bare file name in the index's directory",
                            w->f->path, shown_n(v->key, v->key_len, a, sizeof a),
                            shown_n(v->str, v->len, b, sizeof b), why);
        return 1;
    }
    if (p->count == p->cap) {
        uint64_t cap = p->cap ? p->cap * 2 : 64;
        stx_entry *e = realloc(p->entries, (size_t)cap * sizeof *e);
        if (!e) {
            w->st = cairn__fail(w->err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors",
                                w->f->path, (unsigned long long)cap);
            return 1;
        }
        p->entries = e;
        p->cap = cap;
    }
    p->entries[p->count++] = (stx_entry){v->key, v->str, v->key_len, v->len, 0};
    return 0;
}

static cairn_status stj_fail(const cairn_file *f, cairn__stj_status s, const char *why,
                             cairn_error *err)
{
    if (s == CAIRN__STJ_NOMEM)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory parsing JSON", f->path);
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: invalid JSON: %s",
                       f->path, why);
}

/* The top level: an object, each key once, with a "weight_map" object of
 * at most STX_MAX_TENSORS entries and maybe a "metadata" object. */
static cairn_status check_top(const cairn_file *f, stx_walk *w, cairn_error *err)
{
    static const cairn__stj_limits keys_only = {1, 0};
    const char *why;
    cairn__stj_kind root;
    cairn__stj_status s = cairn__stj_root(w->p->doc, &root, &why);
    if (s != CAIRN__STJ_OK)
        return stj_fail(f, s, why, err);
    if (root != CAIRN__STJ_OBJECT)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: the top level "
                           "is %s, not an object", f->path, node_kind(root));
    s = cairn__stj_members(w->p->doc, &keys_only, walk_top, w, &why);
    if (s != CAIRN__STJ_OK)
        return w->st != CAIRN_OK ? w->st : stj_fail(f, s, why, err);
    if (w->nkeys > 1)
        qsort(w->keys, w->nkeys, sizeof *w->keys, key_order);
    for (size_t k = 1; k < w->nkeys; k++)
        if (!key_order(&w->keys[k - 1], &w->keys[k]))
            return dup_key(w, "", w->keys[k].s, w->keys[k].len);
    if (!w->has_map)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: no "
                           "\"weight_map\" key", f->path);
    if (w->map_kind != CAIRN__STJ_OBJECT)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: \"weight_map\" "
                           "is %s, not an object of tensor name -> shard file name", f->path,
                           node_kind(w->map_kind));
    if (w->map_len > STX_MAX_TENSORS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: sharded safetensors index: \"weight_map\" "
                           "lists %llu tensors; the limit is %llu", f->path,
                           (unsigned long long)w->map_len, (unsigned long long)STX_MAX_TENSORS);
    if (w->has_meta && w->meta_kind != CAIRN__STJ_OBJECT)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: \"metadata\" "
                           "is %s, not an object", f->path, node_kind(w->meta_kind));
    return CAIRN_OK;
}

/* A name and where it came from, for the sorts below (qsort has no
 * context): 16 bytes, a text of at most 64 MiB. */
typedef struct stx_sortkey {
    const char *s;
    uint32_t len;
    uint32_t entry;
} stx_sortkey;

static int sortkey_cmp(const void *a, const void *b)
{
    const stx_sortkey *x = a, *y = b;
    int c = cairn__name_cmp(x->s, x->len, y->s, y->len);
    return c ? c : (x->entry > y->entry) - (x->entry < y->entry);
}

/* Sorts the entries by `shards` ? shard name : tensor name into keys. */
static stx_sortkey *sorted_keys(const stx_plan *p, int shards)
{
    stx_sortkey *k = malloc((size_t)(p->count ? p->count : 1) * sizeof *k);
    for (uint64_t i = 0; k && i < p->count; i++) {
        const stx_entry *e = &p->entries[i];
        k[i] = shards ? (stx_sortkey){e->shard, e->shard_len, (uint32_t)i}
                      : (stx_sortkey){e->name, e->name_len, (uint32_t)i};
    }
    if (k && p->count > 1)
        qsort(k, (size_t)p->count, sizeof *k, sortkey_cmp);
    return k;
}

/* Refuses a name weight_map lists twice and keeps the name order. */
static cairn_status index_names(const cairn_file *f, stx_walk *w, cairn_error *err)
{
    stx_plan *p = w->p;
    stx_sortkey *k = sorted_keys(p, 0);
    if (!k)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors", f->path,
                           (unsigned long long)p->count);
    for (uint64_t i = 1; i < p->count; i++)
        if (cairn__name_cmp(k[i - 1].s, k[i - 1].len, k[i].s, k[i].len) == 0) {
            cairn_status st = dup_key(w, " in \"weight_map\"", k[i].s, k[i].len);
            free(k);
            return st;
        }
    /* The order, written over the keys as they are read (4 bytes a slot). */
    uint32_t *order = (uint32_t *)(void *)k;
    for (uint64_t i = 0; i < p->count; i++)
        order[i] = k[i].entry;
    uint32_t *shrunk = realloc(order, (size_t)(p->count ? p->count : 1) * sizeof *order);
    p->by_name = shrunk ? shrunk : order;
    return CAIRN_OK;
}

/* The distinct shard names, sorted and copied, and each entry's place
 * among them. */
static cairn_status collect_shards(const cairn_file *f, stx_plan *p, cairn_error *err)
{
    stx_sortkey *k = sorted_keys(p, 1);
    uint32_t n = 0;
    p->shards = k ? malloc(sizeof *p->shards) : NULL;
    cairn_status st = p->shards ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory",
                                                        f->path);
    for (uint64_t i = 0; st == CAIRN_OK && i < p->count; i++) {
        if (i == 0 || cairn__name_cmp(k[i - 1].s, k[i - 1].len, k[i].s, k[i].len) != 0) {
            char **grown = realloc(p->shards, (size_t)(n + 1) * sizeof *grown);
            char *copy = grown ? malloc((size_t)k[i].len + 1) : NULL;
            if (grown)
                p->shards = grown;
            if (!copy) {
                st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
                break;
            }
            memcpy(copy, k[i].s, k[i].len);
            copy[k[i].len] = '\0';
            p->shards[n] = copy;
            p->shard_count = ++n;
        }
        p->entries[k[i].entry].shard_at = n - 1;
    }
    free(k);
    return st;
}

/* Whether s[0..n) lies in text[0..len). */
static int inside(const char *s, size_t n, const char *text, size_t len)
{
    return s >= text && s <= text + len && n <= (size_t)(text + len - s);
}

/* Frees the parse before the shards are opened (its structure index costs
 * 4 bytes per JSON token): entries keep pointing into the text, and the
 * few strings that do not (written with escapes, decoded by the parser)
 * are copied first. */
static cairn_status keep_strings(const cairn_file *f, stx_plan *p, const char *text, size_t len,
                                 cairn_error *err)
{
    size_t total = 0;
    for (uint64_t i = 0; i < p->count; i++) {
        const stx_entry *e = &p->entries[i];
        total += inside(e->name, e->name_len, text, len) ? 0 : e->name_len;
        total += inside(e->shard, e->shard_len, text, len) ? 0 : e->shard_len;
    }
    if (total && !(p->strings = malloc(total)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    char *at = p->strings;
    for (uint64_t i = 0; total && i < p->count; i++) {
        stx_entry *e = &p->entries[i];
        if (!inside(e->name, e->name_len, text, len)) {
            memcpy(at, e->name, e->name_len);
            e->name = at;
            at += e->name_len;
        }
        if (!inside(e->shard, e->shard_len, text, len)) {
            memcpy(at, e->shard, e->shard_len);
            e->shard = at;
            at += e->shard_len;
        }
    }
    cairn__stj_free(p->doc);
    p->doc = NULL;
    return CAIRN_OK;
}

/* Parses and checks the index text; no shard is touched. The caller frees
 * the plan (also on failure). */
static cairn_status plan_parse(const cairn_file *f, stx_plan *p, cairn_error *err)
{
    static const cairn__stj_limits all = {SIZE_MAX, SIZE_MAX}, entries = {3, 1};
    const char *text, *why;
    memset(p, 0, sizeof *p);
    CAIRN_TRY(index_text(f, &text, &p->heap, err));
    size_t len = (size_t)f->src.size;
    cairn__stj_status s = cairn__stj_open(text, len, p->heap ? len + CAIRN__STJ_PADDING
                                                             : readable_bytes(f), &p->doc, &why);
    if (s != CAIRN__STJ_OK)
        return stj_fail(f, s, why, err);
    stx_walk w = {f, p, err, CAIRN_OK, NULL, 0, 0, 0, 0, 0, 0, 0};
    cairn_status st = check_top(f, &w, err);
    free(w.keys);
    if (st == CAIRN_OK && w.has_meta) {
        s = cairn__stj_member(p->doc, "metadata", &all, walk_meta, &w, &why);
        st = w.st != CAIRN_OK ? w.st
             : s == CAIRN__STJ_STOPPED || s == CAIRN__STJ_OK ? CAIRN_OK : stj_fail(f, s, why, err);
        if (st == CAIRN_OK)
            st = parse_total(f, p, err);
    }
    if (st == CAIRN_OK) {
        s = cairn__stj_members_of(p->doc, "weight_map", &entries, walk_entry, &w, &why);
        st = w.st != CAIRN_OK ? w.st : s == CAIRN__STJ_OK ? CAIRN_OK : stj_fail(f, s, why, err);
    }
    if (st == CAIRN_OK)
        st = index_names(f, &w, err);
    if (st == CAIRN_OK)
        st = collect_shards(f, p, err);
    if (st == CAIRN_OK)
        st = keep_strings(f, p, text, len, err);
    return st;
}

/* The entry naming tensor name[0..len), or NULL. */
static const stx_entry *plan_find(const stx_plan *p, const char *name, size_t len)
{
    uint64_t lo = 0, hi = p->count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const stx_entry *e = &p->entries[p->by_name[mid]];
        int c = cairn__name_cmp(e->name, e->name_len, name, len);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---------------------------------------------------------------- reader */

static void reader_free(void *state)
{
    stx_reader *r = state;
    if (!r)
        return;
    for (uint32_t s = 0; s < r->shard_count; s++) {
        cairn_file_close(r->shards ? r->shards[s] : NULL);
        free(r->shard_names ? r->shard_names[s] : NULL);
    }
    free(r->shards);
    free(r->shard_names);
    free(r->tensors);
    json_decref(r->meta);
    free(r);
}

static cairn_status reader_new(const cairn_file *f, const stx_plan *p, stx_reader **out,
                               cairn_error *err)
{
    stx_reader *r = calloc(1, sizeof *r);
    *out = r;
    if (!r)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    r->shard_count = p->shard_count;
    r->count = p->count;
    r->shards = calloc(p->shard_count ? p->shard_count : 1, sizeof *r->shards);
    r->shard_names = calloc(p->shard_count ? p->shard_count : 1, sizeof *r->shard_names);
    r->tensors = calloc(p->count ? p->count : 1, sizeof *r->tensors);
    int ok = r->shards && r->shard_names && r->tensors;
    for (uint32_t s = 0; ok && s < p->shard_count; s++)
        ok = (r->shard_names[s] = strdup(p->shards[s])) != NULL;
    return ok ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors "
                                       "in %u shards", f->path, (unsigned long long)p->count,
                                       p->shard_count);
}

/* The first tensor weight_map puts in shard `s`, shown, for messages. */
static const char *first_tensor_of(const stx_plan *p, uint32_t s, char *buf, size_t size)
{
    for (uint64_t i = 0; i < p->count; i++)
        if (p->entries[i].shard_at == s)
            return shown_n(p->entries[i].name, p->entries[i].name_len, buf, size);
    return "";
}

static cairn_status open_shards(const cairn_file *f, const stx_plan *p, stx_reader *r,
                                cairn__shard_open_fn open_shard, void *ctx, cairn_error *err)
{
    char a[96], b[96];
    if (p->shard_count > 0 && !open_shard)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a sharded safetensors index read from "
                           "memory cannot reach its shards ('%s' and %u more): they are files "
                           "next to the index; open the index by path", f->path,
                           shown(p->shards[0], a, sizeof a), p->shard_count - 1);
    for (uint32_t s = 0; s < p->shard_count; s++) {
        cairn_error inner = {0};
        cairn_status st = open_shard(ctx, f, p->shards[s], &r->shards[s], &inner);
        if (st != CAIRN_OK)
            return cairn__fail(err, st, "%s: shard '%s' (weight_map puts tensor '%s' there): %s",
                               f->path, shown(p->shards[s], a, sizeof a),
                               first_tensor_of(p, s, b, sizeof b), inner.message);
    }
    return CAIRN_OK;
}

/* Every weight_map tensor must be in the shard the map names. */
static cairn_status bind_tensors(const cairn_file *f, const stx_plan *p, stx_reader *r,
                                 cairn_error *err)
{
    char a[96], b[96];
    for (uint64_t i = 0; i < p->count; i++) { /* in name order: the table's */
        const stx_entry *e = &p->entries[p->by_name[i]];
        const cairn_file *shard = r->shards[e->shard_at];
        uint64_t local;
        cairn_status st = cairn__reader_find(shard, e->name, e->name_len, &local, NULL);
        if (st == CAIRN_E_NOT_FOUND)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: weight_map: tensor '%s' is not in its "
                               "shard '%s' (which holds %llu tensors)", f->path,
                               shown_n(e->name, e->name_len, a, sizeof a),
                               shown_n(e->shard, e->shard_len, b, sizeof b),
                               (unsigned long long)cairn_file_count(shard));
        if (st == CAIRN_OK && local > UINT32_MAX)
            st = CAIRN_E_LIMIT;
        if (st != CAIRN_OK) /* only running out of memory or room is left */
            return cairn__fail(err, st, "%s: shard '%s': tensor '%s': %s", f->path,
                               shown_n(e->shard, e->shard_len, b, sizeof b),
                               shown_n(e->name, e->name_len, a, sizeof a), cairn_strerror(st));
        r->tensors[i] = (stx_tensor){e->shard_at, (uint32_t)local};
    }
    return CAIRN_OK;
}

/* A shard tensor not assigned to that shard is either unlisted or a second
 * copy of a tensor the map puts elsewhere: both are refused, so each name
 * has exactly one owner. */
static cairn_status extra_tensor(const cairn_file *f, const stx_plan *p, const stx_reader *r,
                                 uint32_t s, cairn_error *err)
{
    char a[96], b[96], c[96];
    const cairn_file *shard = r->shards[s];
    for (uint64_t i = 0; i < cairn_file_count(shard); i++) {
        cairn_tensor_info info;
        CAIRN_TRY(cairn_tensor_info_at(shard, i, &info, err));
        const stx_entry *v = plan_find(p, info.name, info.name_len);
        if (!v)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: shard '%s' holds tensor '%s', which "
                               "weight_map does not list", f->path,
                               shown(r->shard_names[s], b, sizeof b), shown(info.name, a, sizeof a));
        if (v->shard_at != s)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s' is in shard '%s' and in "
                               "shard '%s' (weight_map names '%s'); a tensor has one shard",
                               f->path, shown(info.name, a, sizeof a),
                               shown_n(v->shard, v->shard_len, c, sizeof c),
                               shown(r->shard_names[s], b, sizeof b), c);
    }
    return CAIRN_OK;
}

static cairn_status check_extras(const cairn_file *f, const stx_plan *p, const stx_reader *r,
                                 cairn_error *err)
{
    uint64_t *held = calloc(r->shard_count ? r->shard_count : 1, sizeof *held);
    if (!held)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < p->count; i++)
        held[p->entries[i].shard_at]++;
    cairn_status st = CAIRN_OK;
    for (uint32_t s = 0; st == CAIRN_OK && s < r->shard_count; s++)
        if (cairn_file_count(r->shards[s]) != held[s])
            st = extra_tensor(f, p, r, s, err);
    free(held);
    return st;
}

static cairn_status check_total(const cairn_file *f, const stx_plan *p, const stx_reader *r,
                                cairn_error *err)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < r->count; i++) {
        cairn_tensor_info info;
        CAIRN_TRY(cairn_tensor_info_at(r->shards[r->tensors[i].shard], r->tensors[i].local,
                                       &info, err));
        if (cairn__add_overflow(sum, info.raw_size, &sum))
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: the tensors' sizes overflow 64 bits",
                               f->path);
    }
    if (p->has_total && sum != p->total_size)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index: "
                           "\"metadata\".\"total_size\" is %llu but the %llu tensors hold %llu "
                           "bytes", f->path, (unsigned long long)p->total_size,
                           (unsigned long long)r->count, (unsigned long long)sum);
    return CAIRN_OK;
}

static const char *sorted_name(const void *ctx, uint64_t pos, size_t *len)
{
    const stx_reader *r = ctx;
    const stx_tensor *t = &r->tensors[pos];
    cairn__tensor rec;
    cairn__reader_tensor_at(r->shards[t->shard], t->local, &rec, NULL);
    *len = rec.info.name_len;
    return rec.info.name; /* the shard's table's: stays while it is open */
}

cairn_status cairn__stindex_open(cairn_file *f, cairn__shard_open_fn open_shard, void *ctx,
                                 cairn_error *err)
{
    stx_plan p;
    stx_reader *r = NULL;
    f->state = NULL;
    cairn_status st = plan_parse(f, &p, err);
    if (st == CAIRN_OK)
        st = reader_new(f, &p, &r, err);
    if (st == CAIRN_OK)
        st = open_shards(f, &p, r, open_shard, ctx, err);
    if (st == CAIRN_OK)
        st = bind_tensors(f, &p, r, err);
    if (st == CAIRN_OK)
        st = check_extras(f, &p, r, err);
    if (st == CAIRN_OK)
        st = check_total(f, &p, r, err);
    if (st == CAIRN_OK && p.meta)
        r->meta = json_incref(p.meta);
    plan_free(&p);
    if (st != CAIRN_OK) {
        reader_free(r);
        return st;
    }
    /* tensor_at, file_info and the checks are the shards' */
    cairn__table_init(&r->table, NULL, 0, r->count, reader_free);
    cairn__table_sorted(&r->table, sorted_name, NULL, r);
    f->state = r;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------ ops */

/* Shards are files in the index's directory, opened as safetensors (never
 * detected: a shard that is itself an index would otherwise recurse). */
static cairn_status open_beside(void *ctx, const cairn_file *index, const char *name,
                                cairn_file **out, cairn_error *err)
{
    const char *slash = strrchr(index->path, '/');
    size_t dir = slash ? (size_t)(slash - index->path) + 1 : 0, n = strlen(name);
    char *path = malloc(dir + n + 1);
    if (!path)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", index->path);
    memcpy(path, index->path, dir);
    memcpy(path + dir, name, n + 1);
    cairn_open_opts o = {.struct_size = sizeof o,
                         .flags = index->flags & CAIRN_OPEN_NO_MMAP,
                         .format = CAIRN_FORMAT_SAFETENSORS,
                         .max_inflate = index->max_inflate,
                         .threads = index->threads};
    cairn_status st = cairn_file_open(path, &o, out, err);
    free(path);
    return st;
}

static cairn_status stx_open(cairn_file *f, cairn_error *err)
{
    /* A memory input has no directory to find shards in; a file has its
     * directory, an object its key prefix (s3://bucket/dir/). */
    int has_dir = f->src.fd >= 0 || f->src.backend != NULL;
    return cairn__stindex_open(f, has_dir ? open_beside : NULL, NULL, err);
}

static cairn_status stx_tensor_at(const cairn_file *f, uint64_t index, cairn__tensor *out,
                                  cairn_error *err)
{
    const stx_reader *r = f->state;
    const stx_tensor *t = &r->tensors[index];
    const cairn_file *shard = r->shards[t->shard];
    return cairn__reader_tensor_at(shard, t->local, out, err);
}

static const cairn_file *stx_owner(const cairn_file *f, uint64_t index, uint64_t *owner_index)
{
    const stx_reader *r = f->state;
    *owner_index = r->tensors[index].local;
    return r->shards[r->tensors[index].shard];
}

/* Sizes add up over the index and its shards; the alignment is the best
 * any shard offers. */
static cairn_status stx_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    const stx_reader *r = f->state;
    out->format = CAIRN_FORMAT_SAFETENSORS;
    out->tensor_count = r->count;
    out->file_size = f->src.size;
    out->alignment = 1;
    out->has_metadata = r->meta && json_object_size(r->meta) > 0;
    for (uint32_t s = 0; s < r->shard_count; s++) {
        cairn_file_info si;
        CAIRN_TRY(cairn_file_get_info(r->shards[s], &si, err));
        out->file_size += si.file_size;
        out->payload_bytes += si.payload_bytes;
        if (si.alignment > out->alignment)
            out->alignment = si.alignment;
        out->has_metadata |= si.has_metadata;
    }
    return CAIRN_OK;
}

static cairn_status stx_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    uint64_t local;
    const cairn_file *shard = stx_owner(f, index, &local);
    return cairn_tensor_verify(shard, local, err);
}

/* -------------------------------------------------------------- metadata */

static cairn_status meta_nomem(const cairn_file *f, cairn_error *err)
{
    return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", f->path);
}

static cairn_status from_json(const cairn_file *f, const json_t *j, int depth, cairn_value **out,
                              cairn_error *err);

static cairn_status from_json_object(const cairn_file *f, const json_t *j, int depth,
                                     cairn_value *map, cairn_error *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        cairn_value *child;
        if (!*key)
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: sharded safetensors index: "
                               "\"metadata\" has an empty key; cairn map keys are 1 byte or "
                               "more", f->path);
        CAIRN_TRY(from_json(f, v, depth + 1, &child, err));
        if (cairn__value_map_push(map, key, strlen(key), child) != CAIRN_OK) {
            cairn_value_free(child);
            return meta_nomem(f, err);
        }
    }
    return CAIRN_OK;
}

static cairn_status from_json_array(const cairn_file *f, const json_t *j, int depth,
                                    cairn_value *list, cairn_error *err)
{
    for (size_t i = 0; i < json_array_size(j); i++) {
        cairn_value *child;
        CAIRN_TRY(from_json(f, json_array_get(j, i), depth + 1, &child, err));
        if (cairn_value_append(list, child, NULL) != CAIRN_OK) {
            cairn_value_free(child);
            return meta_nomem(f, err);
        }
    }
    return CAIRN_OK;
}

/* The index's "metadata" as a plain tree: JSON types map one to one. */
static cairn_status from_json(const cairn_file *f, const json_t *j, int depth, cairn_value **out,
                              cairn_error *err)
{
    cairn_value *v = NULL;
    *out = NULL;
    if (depth > CAIRN_META_MAX_DEPTH)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: sharded safetensors index: \"metadata\" "
                           "nests deeper than %d levels", f->path, CAIRN_META_MAX_DEPTH);
    switch (json_typeof(j)) {
    case JSON_OBJECT: v = cairn_value_map(); break;
    case JSON_ARRAY: v = cairn_value_list(); break;
    case JSON_STRING: v = cairn_value_string_n(json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER: v = cairn_value_int((int64_t)json_integer_value(j)); break;
    case JSON_REAL: v = cairn_value_float(json_real_value(j)); break;
    case JSON_TRUE: v = cairn_value_bool(1); break;
    case JSON_FALSE: v = cairn_value_bool(0); break;
    case JSON_NULL: v = cairn_value_null(); break;
    }
    if (!v)
        return meta_nomem(f, err);
    cairn_status st = json_is_object(j)  ? from_json_object(f, j, depth, v, err)
                      : json_is_array(j) ? from_json_array(f, j, depth, v, err)
                                         : CAIRN_OK;
    if (st != CAIRN_OK) {
        cairn_value_free(v);
        return st;
    }
    *out = v;
    return CAIRN_OK;
}

/* The merged tree and where each of its top-level keys came from. */
typedef struct stx_merge {
    const cairn_file *f;
    cairn_value *tree;
    const char **from; /* per top-level key: a shard name, or NULL for the index */
    cairn__nameset keys;
} stx_merge;

static const char *merge_key_at(const void *ctx, uint32_t index, size_t *len)
{
    const char *k = cairn_value_key_at(ctx, index);
    *len = strlen(k);
    return k;
}

static int same_value(const cairn_value *a, const cairn_value *b)
{
    char *x = NULL, *y = NULL;
    int same = cairn_value_to_json(a, 0, &x, NULL) == CAIRN_OK &&
               cairn_value_to_json(b, 0, &y, NULL) == CAIRN_OK && strcmp(x, y) == 0;
    cairn_free(x);
    cairn_free(y);
    return same;
}

/* Adds `child` (borrowed; copied) under `key`, or checks it equals the value
 * an earlier source gave. */
static cairn_status merge_one(stx_merge *m, const char *key, const cairn_value *child,
                              const char *from, cairn_error *err)
{
    char a[96], b[96], c[96];
    size_t len = strlen(key);
    int64_t at = cairn__nameset_find(&m->keys, key, len, merge_key_at, m->tree);
    if (at >= 0) {
        if (same_value(cairn_value_at(m->tree, (size_t)at), child))
            return CAIRN_OK;
        const char *was = m->from[at];
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: metadata key '%s' differs between %s%s%s "
                           "and shard '%s'; shard metadata merges only where it agrees",
                           m->f->path, shown(key, a, sizeof a), was ? "shard '" : "the index",
                           was ? shown(was, b, sizeof b) : "", was ? "'" : "",
                           shown(from, c, sizeof c));
    }
    size_t n = cairn_value_count(m->tree);
    const char **grown = realloc(m->from, (n + 1) * sizeof *grown);
    if (!grown)
        return meta_nomem(m->f, err);
    m->from = grown;
    cairn_value *copy = cairn_value_clone(child);
    if (!copy || cairn__value_map_push(m->tree, key, len, copy) != CAIRN_OK) {
        cairn_value_free(copy);
        return meta_nomem(m->f, err);
    }
    m->from[n] = from;
    return cairn__nameset_insert(&m->keys, (uint32_t)n, merge_key_at, m->tree, err);
}

static cairn_status merge_tree(stx_merge *m, const cairn_value *src, const char *from,
                               cairn_error *err)
{
    for (size_t k = 0; k < cairn_value_count(src); k++)
        CAIRN_TRY(merge_one(m, cairn_value_key_at(src, k), cairn_value_at(src, k), from, err));
    return CAIRN_OK;
}

static cairn_status merge_all(stx_merge *m, const stx_reader *r, cairn_error *err)
{
    if (r->meta) {
        cairn_value *index;
        CAIRN_TRY(from_json(m->f, r->meta, 1, &index, err));
        cairn_value *wrap = cairn_value_map();
        cairn_status st = wrap && cairn__value_map_push(wrap, "index", 5, index) == CAIRN_OK
                              ? CAIRN_OK : meta_nomem(m->f, err);
        if (st != CAIRN_OK)
            cairn_value_free(index);
        if (st == CAIRN_OK)
            st = merge_tree(m, wrap, NULL, err);
        cairn_value_free(wrap);
        CAIRN_TRY(st);
    }
    for (uint32_t s = 0; s < r->shard_count; s++) {
        cairn_value *meta;
        CAIRN_TRY(cairn_file_read_metadata(r->shards[s], &meta, err));
        cairn_status st = merge_tree(m, meta, r->shard_names[s], err);
        cairn_value_free(meta);
        CAIRN_TRY(st);
    }
    return CAIRN_OK;
}

/* {"index": the index's "metadata"} followed by the union of the shards'
 * trees in shard-name order; a key two sources give different values is
 * refused rather than one of them silently dropped. */
static cairn_status stx_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    stx_merge m = {f, cairn_value_map(), NULL, {0}};
    cairn_status st = m.tree ? merge_all(&m, f->state, err) : meta_nomem(f, err);
    free(m.from);
    cairn__nameset_free(&m.keys);
    if (st != CAIRN_OK) {
        cairn_value_free(m.tree);
        return st;
    }
    *out = m.tree;
    return CAIRN_OK;
}

/* ---------------------------------------------------------------- verify */

/* The index read again must give the same tensors in the same shards. */
static int same_plan(const stx_reader *r, const stx_plan *p)
{
    if (p->count != r->count || p->shard_count != r->shard_count)
        return 0;
    for (uint32_t s = 0; s < r->shard_count; s++)
        if (strcmp(p->shards[s], r->shard_names[s]) != 0)
            return 0;
    for (uint64_t i = 0; i < p->count; i++) {
        uint64_t at;
        const stx_entry *e = &p->entries[i];
        if (!cairn__table_lookup(&r->table, e->name, e->name_len, &at) ||
            r->tensors[at].shard != e->shard_at)
            return 0;
    }
    if (!p->meta || !r->meta)
        return !p->meta && !r->meta;
    return json_equal((json_t *)p->meta, r->meta);
}

/* The index unchanged, every shard's own structure, the merged metadata;
 * tensors are checked afterwards, each by its shard (stx_verify_tensor). */
static cairn_status stx_verify_structure(const cairn_file *f, cairn_error *err)
{
    const stx_reader *r = f->state;
    stx_plan p;
    cairn_status st = plan_parse(f, &p, err);
    if (st == CAIRN_OK && !same_plan(r, &p))
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: sharded safetensors index changed since it "
                         "was opened", f->path);
    plan_free(&p);
    CAIRN_TRY(st);
    for (uint32_t s = 0; s < r->shard_count; s++) {
        const cairn_file *shard = r->shards[s];
        if (shard->ops->verify_structure)
            CAIRN_TRY(shard->ops->verify_structure(shard, err));
    }
    return cairn__metadata_check(f, err);
}

const cairn__reader_ops cairn__safetensors_index_reader = CAIRN__READER_OPS(
    stx, CAIRN_FORMAT_SAFETENSORS, .tensor_at = stx_tensor_at, .file_info = stx_file_info,
    .verify_structure = stx_verify_structure, .read_metadata = stx_read_metadata,
    .verify_tensor = stx_verify_tensor, .owner = stx_owner);
