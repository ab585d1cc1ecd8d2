/* value_json.c -- the JSON view of a metadata tree (docs/FORMAT.md §6.3), via jansson. */
#include "common/value_internal.h"
#include "common/buf.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_NAN_BITS 0x7FF8000000000000ull

/* The JSON text is laid out here, exactly as jansson's json_dumpb lays out
 * a tree (separators, indentation), while every scalar is printed by
 * jansson itself (string escapes, float digits): so the text is what
 * jansson would print, without a jansson node per value. A tree of millions
 * of values (a packed GGUF array) costs its text, not 60 bytes a value. */
typedef struct printer {
    cairn__buf out;
    int indent;     /* spaces per level, 0 = compact */
    size_t flags;   /* jansson's flags for the scalars */
} printer;

static void put(printer *p, const char *s, size_t n) { cairn__buf_put(&p->out, s, n); }

static void puts_(printer *p, const char *s) { put(p, s, strlen(s)); }

/* jansson's dump_indent: a newline and depth x indent spaces, or (compact)
 * nothing. */
static void newline(printer *p, int depth)
{
    static const char spaces[32] = "                                ";
    if (!p->indent)
        return;
    put(p, "\n", 1);
    for (long n = (long)depth * p->indent; n > 0; n -= 32)
        put(p, spaces, n < 32 ? (size_t)n : 32);
}

/* One scalar json_t, printed by jansson and freed. */
static cairn_status put_json(printer *p, json_t *j)
{
    if (!j)
        return CAIRN_E_NOMEM;
    char small[256];
    size_t n = json_dumpb(j, small, sizeof small, p->flags);
    if (n <= sizeof small) {
        put(p, small, n);
    } else {
        char *big = malloc(n);
        if (big && json_dumpb(j, big, n, p->flags) == n)
            put(p, big, n);
        else
            p->out.oom = 1;
        free(big);
    }
    json_decref(j);
    return p->out.oom ? CAIRN_E_NOMEM : CAIRN_OK;
}

/* Text without '"', '\\' or control bytes is printed as jansson would,
 * between quotes as it is (trees hold valid UTF-8 only); the rest goes
 * through jansson for its escapes. */
static cairn_status put_string(printer *p, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
            return put_json(p, json_stringn(s, len));
    put(p, "\"", 1);
    put(p, s, len);
    put(p, "\"", 1);
    return p->out.oom ? CAIRN_E_NOMEM : CAIRN_OK;
}

/* A one-key object {"$tag": "text"}, the escape for what JSON cannot hold. */
static cairn_status tagged(printer *p, int depth, const char *tag, const char *text, size_t len)
{
    put(p, "{", 1);
    newline(p, depth + 1);
    CAIRN_TRY(put_string(p, tag, strlen(tag)));
    puts_(p, p->indent ? ": " : ":");
    CAIRN_TRY(put_string(p, text, len));
    newline(p, depth);
    put(p, "}", 1);
    return p->out.oom ? CAIRN_E_NOMEM : CAIRN_OK;
}

static cairn_status float_json(printer *p, int depth, double d)
{
    if (isnan(d)) {
        uint64_t bits;
        memcpy(&bits, &d, 8);
        if (bits == DEFAULT_NAN_BITS)
            return tagged(p, depth, "$float", "nan", 3);
        char text[32];
        int n = snprintf(text, sizeof text, "nan:0x%016" PRIx64, bits);
        return tagged(p, depth, "$float", text, (size_t)n);
    }
    if (isinf(d))
        return d > 0 ? tagged(p, depth, "$float", "inf", 3) : tagged(p, depth, "$float", "-inf", 4);
    if (d == 0 && signbit(d))
        return tagged(p, depth, "$float", "-0", 2);
    return put_json(p, json_real(d));
}

/* Standard base64 with padding (RFC 4648 §4). */
static cairn_status bytes_json(printer *p, int depth, const uint8_t *b, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return CAIRN_E_NOMEM;
    size_t out_len = (len + 2) / 3 * 4;
    char *text = malloc(out_len + 1);
    if (!text)
        return CAIRN_E_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t n = (uint32_t)b[i] << 16;
        if (i + 1 < len)
            n |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < len)
            n |= b[i + 2];
        text[o++] = alphabet[(n >> 18) & 63];
        text[o++] = alphabet[(n >> 12) & 63];
        text[o++] = i + 1 < len ? alphabet[(n >> 6) & 63] : '=';
        text[o++] = i + 2 < len ? alphabet[n & 63] : '=';
    }
    cairn_status st = tagged(p, depth, "$bytes", text, o);
    free(text);
    return st;
}

static cairn_status to_json(printer *p, const cairn_value *v, int depth, cairn_error *err);

/* Lists and maps; depth is bounded as the tree's is. Items of a packed list
 * are read in place (cairn__value_item). */
static cairn_status container_json(printer *p, const cairn_value *v, int depth,
                                   cairn_error *err)
{
    int is_map = cairn_value_get_type(v) == CAIRN_VALUE_MAP;
    if (depth + 1 > CAIRN_META_MAX_DEPTH)
        return cairn__fail(err, CAIRN_E_LIMIT, "metadata: to_json: nesting deeper than %d levels",
                           CAIRN_META_MAX_DEPTH);
    size_t count = cairn_value_count(v);
    if (count == 0) {
        puts_(p, is_map ? "{}" : "[]");
        return CAIRN_OK;
    }
    put(p, is_map ? "{" : "[", 1);
    newline(p, depth + 1);
    for (size_t i = 0; i < count; i++) {
        cairn_value scratch;
        if (i > 0) {
            put(p, ",", 1);
            if (p->indent)
                newline(p, depth + 1);
        }
        if (is_map) {
            const char *key = cairn_value_key_at(v, i);
            if (put_string(p, key, strlen(key)) != CAIRN_OK)
                return cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
            puts_(p, p->indent ? ": " : ":");
        }
        CAIRN_TRY(to_json(p, cairn__value_item(v, i, &scratch), depth + 1, err));
    }
    newline(p, depth);
    put(p, is_map ? "}" : "]", 1);
    return CAIRN_OK;
}

static cairn_status to_json(printer *p, const cairn_value *v, int depth, cairn_error *err)
{
    const void *data = NULL;
    size_t len = 0;
    int b = 0;
    int64_t i = 0;
    double d = 0;
    char num[32];
    cairn_status st = CAIRN_OK;
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_NULL:
        puts_(p, "null");
        break;
    case CAIRN_VALUE_BOOL:
        cairn_value_get_bool(v, &b);
        puts_(p, b ? "true" : "false");
        break;
    case CAIRN_VALUE_INT: /* jansson's JSON_INTEGER_FORMAT */
        cairn_value_get_int(v, &i);
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, (json_int_t)i);
        puts_(p, num);
        break;
    case CAIRN_VALUE_FLOAT:
        cairn_value_get_float(v, &d);
        st = float_json(p, depth, d);
        break;
    case CAIRN_VALUE_STRING:
        cairn_value_get_data(v, &data, &len);
        st = put_string(p, data, len);
        break;
    case CAIRN_VALUE_BYTES:
        cairn_value_get_data(v, &data, &len);
        st = bytes_json(p, depth, data, len);
        break;
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(v, &data, &len);
        st = tagged(p, depth, "$tensor", data, len);
        break;
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        return container_json(p, v, depth, err);
    }
    if (st != CAIRN_OK || p->out.oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
    return CAIRN_OK;
}

cairn_status cairn_value_to_json(const cairn_value *v, int indent, char **out_json,
                                 cairn_error *err)
{
    if (out_json)
        *out_json = NULL;
    if (!v || !out_json)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: to_json: NULL argument");
    if (indent < 0 || indent > JSON_MAX_INDENT)
        return cairn__fail(err, CAIRN_E_ARG, "metadata: to_json: indent %d is not in 0..%d",
                           indent, JSON_MAX_INDENT);
    printer p = {{NULL, 0, 0, 0}, indent, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17) |
                                          (indent ? JSON_INDENT(indent) : JSON_COMPACT)};
    cairn_status st = to_json(&p, v, 0, err);
    put(&p, "", 1); /* the NUL */
    if (st == CAIRN_OK && p.out.oom)
        st = cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
    if (st != CAIRN_OK) {
        free(p.out.p);
        return st;
    }
    *out_json = p.out.p;
    return CAIRN_OK;
}

/* ------------------------------------------------------ JSON -> tree */

/* Reading a JSON view back. Input that is not one gives NULL rather than an
 * error (safetensors then falls back to its plain map); running out of
 * memory is told apart through `oom`. */
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

static int is_escape_key(const char *key)
{
    return strcmp(key, "$float") == 0 || strcmp(key, "$bytes") == 0 ||
           strcmp(key, "$tensor") == 0;
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

cairn_value *cairn__value_from_json_view(const struct json_t *j, cairn__tensor_exists_fn exists,
                                         void *ctx, int *oom)
{
    restore_ctx rc = {exists, ctx, 0};
    cairn_value *tree = restore(&rc, j, 1);
    *oom = rc.oom;
    return tree;
}

cairn_status cairn__value_from_json(const char *text, size_t len, cairn_value **out,
                                    cairn_error *err)
{
    json_error_t je;
    *out = NULL;
    /* Strict: no duplicate keys, nothing after the value; \u0000 only in
     * string values (cairn strings carry a length). */
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        return cairn__fail(err, json_error_code(&je) == json_error_out_of_memory ? CAIRN_E_NOMEM
                           : CAIRN_E_CORRUPT, "metadata: invalid JSON at byte %d: %s",
                           je.position, je.text);
    int oom = 0;
    cairn_value *tree = json_is_object(root) ? cairn__value_from_json_view(root, NULL, NULL, &oom)
                                             : NULL;
    json_decref(root);
    if (!tree)
        return oom ? cairn__fail(err, CAIRN_E_NOMEM, "metadata: out of memory")
                   : cairn__fail(err, CAIRN_E_CORRUPT, "metadata: not a cairn JSON view (an "
                                 "object; no empty key; {\"$float\"|\"$bytes\"|\"$tensor\": "
                                 "...} holding what cairn writes there; nesting at most %d deep)",
                                 CAIRN_META_MAX_DEPTH);
    *out = tree;
    return CAIRN_OK;
}
