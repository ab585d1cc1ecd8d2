/* safetensors_meta.c -- safetensors "__metadata__" <-> the cairn metadata tree
 * (docs/FORMAT.md §11.4), including a parser for cairn's tagged JSON view. */
#include "common/value_internal.h"
#include "format/format.h"
#include "format/safetensors/safetensors_meta.h"
#include "common/value_internal.h"

#include "format/safetensors/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Defined in value.c: builds map entries in O(1) (keys here are unique
 * because jansson refuses duplicate keys). */
cairn_status cairn__value_map_push(cairn_value *map, const char *key, size_t key_len,
                                   cairn_value *child);


/* ------------------------------------------------------------ text builder */

void cairn__sttext_append_string(cairn__buf *t, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    cairn__buf_put(t, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x20) {
                run++;
                continue;
            }
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        cairn__buf_put(t, s + i - run, run);
        run = 0;
        cairn__buf_put(t, esc, n);
    }
    cairn__buf_put(t, s + len - run, run);
    cairn__buf_put(t, "\"", 1);
}

/* ----------------------------------------------------------------- writing */

static int is_escape_key(const char *key)
{
    return strcmp(key, "$float") == 0 || strcmp(key, "$bytes") == 0 ||
           strcmp(key, "$tensor") == 0;
}

/* Finds a map the JSON view would render as one of its own escapes. Depth
 * is bounded by the caller's cairn__meta_encode check. */
static const cairn_value *find_ambiguous(const cairn_value *v, const char **key)
{
    cairn_value_type type = cairn_value_get_type(v);
    if (type != CAIRN_VALUE_LIST && type != CAIRN_VALUE_MAP)
        return NULL;
    size_t n = cairn_value_count(v);
    if (v->pack) /* numbers or strings only */
        return NULL;
    if (type == CAIRN_VALUE_MAP && n == 1 && is_escape_key(cairn_value_key_at(v, 0)) &&
        cairn_value_get_type(cairn_value_at(v, 0)) == CAIRN_VALUE_STRING) {
        *key = cairn_value_key_at(v, 0);
        return v;
    }
    for (size_t i = 0; i < n; i++) {
        const cairn_value *found = find_ambiguous(cairn_value_at(v, i), key);
        if (found)
            return found;
    }
    return NULL;
}

/* Whether the tree needs "cairn.meta": anything but top-level strings, or a
 * key that would collide with the reserved one. */
static int needs_tree(const cairn_value *tree)
{
    for (size_t i = 0; i < cairn_value_count(tree); i++)
        if (cairn_value_get_type(cairn_value_at(tree, i)) != CAIRN_VALUE_STRING ||
            strcmp(cairn_value_key_at(tree, i), ST_TREE_KEY) == 0)
            return 1;
    return 0;
}

static void append_member(cairn__buf *out, int *first, const char *key, const char *val,
                          size_t len)
{
    if (!*first)
        cairn__buf_put(out, ",", 1);
    *first = 0;
    cairn__sttext_append_string(out, key, strlen(key));
    cairn__buf_put(out, ":", 1);
    cairn__sttext_append_string(out, val, len);
}

cairn_status cairn__stmeta_encode(const cairn_value *tree, const char *path, cairn__buf *out,
                                  int *written, cairn_error *err)
{
    *written = 0;
    if (cairn_value_count(tree) == 0)
        return CAIRN_OK;
    char *view = NULL;
    if (needs_tree(tree)) {
        const char *key = NULL;
        if (find_ambiguous(tree, &key))
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: metadata: a map whose only entry "
                               "is '%s' with a string value cannot be stored in safetensors "
                               "metadata: it reads back as cairn's JSON escape of that name",
                               path, key);
        CAIRN_TRY(cairn_value_to_json(tree, 0, &view, err));
    }
    int first = 1;
    cairn__buf_put(out, "{", 1);
    for (size_t i = 0; i < cairn_value_count(tree); i++) {
        const cairn_value *v = cairn_value_at(tree, i);
        const char *key = cairn_value_key_at(tree, i);
        const void *data;
        size_t len;
        if (cairn_value_get_type(v) != CAIRN_VALUE_STRING || strcmp(key, ST_TREE_KEY) == 0)
            continue;
        cairn_value_get_data(v, &data, &len);
        append_member(out, &first, key, data, len);
    }
    if (view)
        append_member(out, &first, ST_TREE_KEY, view, strlen(view));
    cairn__buf_put(out, "}", 1);
    cairn_free(view);
    if (out->oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
    *written = 1;
    return CAIRN_OK;
}

/* ----------------------------------------------------------------- reading */

const char *cairn__stmeta_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

cairn_status cairn__stmeta_check(const json_t *meta, const char *path, uint64_t header_at,
                                 cairn_error *err)
{
    char shown[96];
    if (!meta)
        return CAIRN_OK;
    if (!json_is_object(meta))
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: safetensors header at offset %llu: "
                           "\"" ST_METADATA_KEY "\" is %s, not an object of strings", path,
                           (unsigned long long)header_at, cairn__stmeta_json_kind(meta));
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v))
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: safetensors header at offset %llu: "
                               "\"" ST_METADATA_KEY "\" key '%s' holds %s; safetensors metadata "
                               "values are strings only", path, (unsigned long long)header_at,
                               cairn__printable(key, strlen(key), shown, sizeof shown),
                               cairn__stmeta_json_kind(v));
    }
    return CAIRN_OK;
}

/* Pushes `child` under `key`, taking ownership of it either way. */
static int push(cairn_value *map, const char *key, cairn_value *child)
{
    if (!child || !*key || cairn__value_map_push(map, key, strlen(key), child) != CAIRN_OK) {
        cairn_value_free(child);
        return 0;
    }
    return 1;
}

/* The plain reading: every entry as a string, in header order. */
static cairn_status plain_map(const json_t *meta, const char *path, cairn_value **out,
                              cairn_error *err)
{
    cairn_value *map = cairn_value_map();
    if (!map)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!*key) {
            cairn_value_free(map);
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: safetensors header at offset 8: "
                               "\"" ST_METADATA_KEY "\" has an empty key; cairn map keys are "
                               "1 byte or more", path);
        }
        if (!push(map, key, cairn_value_string_n(json_string_value(v), json_string_length(v)))) {
            cairn_value_free(map);
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
        }
    }
    *out = map;
    return CAIRN_OK;
}

/* The plain entries must be exactly the tree's top-level strings (other
 * than under the reserved key): otherwise someone edited the plain entries
 * after cairn wrote them, and they win over a stale "cairn.meta". */
static int matches_plain(const cairn_value *tree, const json_t *meta)
{
    size_t strings = 0;
    for (size_t i = 0; i < cairn_value_count(tree); i++) {
        const cairn_value *v = cairn_value_at(tree, i);
        const char *key = cairn_value_key_at(tree, i);
        if (cairn_value_get_type(v) != CAIRN_VALUE_STRING || strcmp(key, ST_TREE_KEY) == 0)
            continue;
        const json_t *plain = json_object_get(meta, key);
        const void *data;
        size_t len;
        cairn_value_get_data(v, &data, &len);
        if (!plain || json_string_length(plain) != len ||
            memcmp(json_string_value(plain), data, len) != 0)
            return 0;
        strings++;
    }
    return strings + 1 == json_object_size(meta);
}

/* The tree-restoring reading. Input that is not a cairn JSON view just
 * means "fall back to the plain map" (NULL); running out of memory is told
 * apart through *oom. */
static cairn_value *restore_tree(const json_t *meta, cairn__tensor_exists_fn exists, void *ctx,
                                 int *oom)
{
    const json_t *text = json_object_get(meta, ST_TREE_KEY);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json_string_value(text), json_string_length(text),
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root && json_error_code(&jerr) == json_error_out_of_memory)
        *oom = 1;
    cairn_value *tree = NULL;
    if (root && json_is_object(root))
        tree = cairn__value_from_json_view(root, exists, ctx, oom);
    json_decref(root);
    /* An object that is one escape ({"$bytes": ...}) restores to a leaf, and
     * metadata is a map: such text was not written by cairn. */
    if (tree && (cairn_value_get_type(tree) != CAIRN_VALUE_MAP || !matches_plain(tree, meta))) {
        cairn_value_free(tree);
        tree = NULL;
    }
    return tree;
}

cairn_status cairn__stmeta_decode(const json_t *meta, const char *path,
                                  cairn__tensor_exists_fn exists, void *ctx, cairn_value **out,
                                  cairn_error *err)
{
    *out = NULL;
    if (!meta) {
        *out = cairn_value_map();
        return *out ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    }
    int oom = 0;
    cairn_value *tree = restore_tree(meta, exists, ctx, &oom);
    if (oom) {
        cairn_value_free(tree);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
    }
    if (tree) {
        *out = tree;
        return CAIRN_OK;
    }
    return plain_map(meta, path, out, err);
}
