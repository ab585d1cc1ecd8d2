/* safetensors_meta.c -- safetensors "__metadata__" <-> the cairn metadata tree
 * (docs/FORMAT.md §11.4), including a parser for cairn's tagged JSON view. */
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

#define DEFAULT_NAN_BITS 0x7FF8000000000000ull

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

/* The tree-restoring reading. Input that is not a cairn JSON view just
 * means "fall back to the plain map", so these return NULL rather than
 * errors; running out of memory is told apart through `oom`. */
typedef struct restore_ctx {
    cairn__tensor_exists_fn exists;
    void *ctx;
    int oom;
} restore_ctx;

/* Records an allocation failure of a constructor whose input was valid. */
static cairn_value *made(restore_ctx *rc, cairn_value *v)
{
    if (!v)
        rc->oom = 1;
    return v;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static cairn_value *restore_float(restore_ctx *rc, const char *s, size_t len)
{
    uint64_t bits = 0;
    double d;
    if (len == 3 && memcmp(s, "nan", 3) == 0)
        bits = DEFAULT_NAN_BITS;
    else if (len == 3 && memcmp(s, "inf", 3) == 0)
        return made(rc, cairn_value_float(INFINITY));
    else if (len == 4 && memcmp(s, "-inf", 4) == 0)
        return made(rc, cairn_value_float(-INFINITY));
    else if (len == 2 && memcmp(s, "-0", 2) == 0)
        return made(rc, cairn_value_float(-0.0));
    else if (len == 22 && memcmp(s, "nan:0x", 6) == 0) {
        for (size_t i = 6; i < len; i++) {
            int h = hex_digit(s[i]);
            if (h < 0)
                return NULL;
            bits = bits << 4 | (uint64_t)h;
        }
    } else
        return NULL;
    memcpy(&d, &bits, sizeof d);
    return isnan(d) ? made(rc, cairn_value_float(d)) : NULL;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes standard base64 exactly as cairn writes it (whole quads, '=' only
 * at the end, unused bits zero) into out[0..*out_len); 0 if it is not. */
static int b64_decode(const char *s, size_t len, size_t pad, uint8_t *out, size_t out_len)
{
    size_t o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < len - pad; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return 0;
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    /* A final partial quad: 2 chars give 1 byte (4 spare bits), 3 give 2 (2). */
    if (pad == 2 && !(acc & 0xF))
        out[o++] = (uint8_t)(acc >> 4);
    else if (pad == 1 && !(acc & 0x3)) {
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    return o == out_len;
}

static cairn_value *restore_bytes(restore_ctx *rc, const char *s, size_t len)
{
    if (len % 4)
        return NULL;
    size_t pad = len && s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    size_t out_len = len / 4 * 3 - pad;
    uint8_t *out = malloc(out_len ? out_len : 1);
    if (!out) {
        rc->oom = 1;
        return NULL;
    }
    cairn_value *v = NULL;
    if (b64_decode(s, len, pad, out, out_len))
        v = made(rc, cairn_value_bytes(out, out_len));
    free(out);
    return v;
}

static cairn_value *restore_tensor(restore_ctx *rc, const char *s, size_t len)
{
    if (cairn__name_check(s, len, "metadata", NULL) != CAIRN_OK ||
        (rc->exists && !rc->exists(rc->ctx, s, len)))
        return NULL;
    return made(rc, cairn_value_tensor_ref(s));
}

/* A one-key object {"$float"|"$bytes"|"$tensor": string} is an escape. */
static int escape_of(const json_t *obj, const char **tag, const json_t **text)
{
    if (json_object_size(obj) != 1)
        return 0;
    void *it = json_object_iter((json_t *)obj);
    *tag = json_object_iter_key(it);
    *text = json_object_iter_value(it);
    return is_escape_key(*tag) && json_is_string(*text);
}

static cairn_value *restore(restore_ctx *rc, const json_t *j, int depth);

static cairn_value *restore_object(restore_ctx *rc, const json_t *j, int depth)
{
    const char *tag;
    const json_t *text;
    if (escape_of(j, &tag, &text)) {
        const char *s = json_string_value(text);
        size_t len = json_string_length(text);
        return tag[1] == 'f' ? restore_float(rc, s, len)
             : tag[1] == 'b' ? restore_bytes(rc, s, len) : restore_tensor(rc, s, len);
    }
    cairn_value *map = made(rc, cairn_value_map());
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        cairn_value *child = map && *key ? restore(rc, v, depth + 1) : NULL;
        if (!child) {
            cairn_value_free(map);
            return NULL;
        }
        if (cairn__value_map_push(map, key, strlen(key), child) != CAIRN_OK) {
            rc->oom = 1;
            cairn_value_free(child);
            cairn_value_free(map);
            return NULL;
        }
    }
    return map;
}

static cairn_value *restore_array(restore_ctx *rc, const json_t *j, int depth)
{
    cairn_value *list = made(rc, cairn_value_list());
    for (size_t i = 0; list && i < json_array_size(j); i++) {
        cairn_value *child = restore(rc, json_array_get(j, i), depth + 1);
        if (!child || cairn_value_append(list, child, NULL) != CAIRN_OK) {
            rc->oom |= child != NULL;
            cairn_value_free(child);
            cairn_value_free(list);
            return NULL;
        }
    }
    return list;
}

static cairn_value *restore(restore_ctx *rc, const json_t *j, int depth)
{
    if (!j || depth > CAIRN_META_MAX_DEPTH)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_NULL: return made(rc, cairn_value_null());
    case JSON_TRUE: return made(rc, cairn_value_bool(1));
    case JSON_FALSE: return made(rc, cairn_value_bool(0));
    case JSON_INTEGER: return made(rc, cairn_value_int((int64_t)json_integer_value(j)));
    case JSON_REAL: return made(rc, cairn_value_float(json_real_value(j)));
    case JSON_STRING:
        return made(rc, cairn_value_string_n(json_string_value(j), json_string_length(j)));
    case JSON_ARRAY: return restore_array(rc, j, depth);
    case JSON_OBJECT: return restore_object(rc, j, depth);
    }
    return NULL;
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

static cairn_value *restore_tree(const json_t *meta, restore_ctx *rc)
{
    const json_t *text = json_object_get(meta, ST_TREE_KEY);
    if (!text)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json_string_value(text), json_string_length(text),
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root && json_error_code(&jerr) == json_error_out_of_memory)
        rc->oom = 1;
    cairn_value *tree = NULL;
    if (root && json_is_object(root))
        tree = restore(rc, root, 1);
    json_decref(root);
    if (tree && !matches_plain(tree, meta)) {
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
    restore_ctx rc = {exists, ctx, 0};
    cairn_value *tree = restore_tree(meta, &rc);
    if (rc.oom) {
        cairn_value_free(tree);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the metadata", path);
    }
    if (tree) {
        *out = tree;
        return CAIRN_OK;
    }
    return plain_map(meta, path, out, err);
}
