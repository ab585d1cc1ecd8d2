/* value_json.c -- the JSON view of a metadata tree (docs/FORMAT.md §6.3), via jansson. */
#include "common/value_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_NAN_BITS 0x7FF8000000000000ull

/* A one-key object {"$tag": "text"}, the escape for what JSON cannot hold. */
static json_t *tagged(const char *tag, const char *text, size_t len)
{
    json_t *obj = json_object();
    if (obj && json_object_set_new(obj, tag, json_stringn(text, len)) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *float_json(double d)
{
    if (isnan(d)) {
        uint64_t bits;
        memcpy(&bits, &d, 8);
        if (bits == DEFAULT_NAN_BITS)
            return tagged("$float", "nan", 3);
        char text[32];
        int n = snprintf(text, sizeof text, "nan:0x%016" PRIx64, bits);
        return tagged("$float", text, (size_t)n);
    }
    if (isinf(d))
        return d > 0 ? tagged("$float", "inf", 3) : tagged("$float", "-inf", 4);
    if (d == 0 && signbit(d))
        return tagged("$float", "-0", 2);
    return json_real(d);
}

/* Standard base64 with padding (RFC 4648 §4). */
static json_t *bytes_json(const uint8_t *p, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t out_len = (len + 2) / 3 * 4;
    char *text = malloc(out_len + 1);
    if (!text)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t n = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            n |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            n |= p[i + 2];
        text[o++] = alphabet[(n >> 18) & 63];
        text[o++] = alphabet[(n >> 12) & 63];
        text[o++] = i + 1 < len ? alphabet[(n >> 6) & 63] : '=';
        text[o++] = i + 2 < len ? alphabet[n & 63] : '=';
    }
    json_t *obj = tagged("$bytes", text, o);
    free(text);
    return obj;
}

static cairn_status to_json(const cairn_value *v, int depth, json_t **out, cairn_error *err);

/* Builds lists and maps; depth is bounded because jansson both prints and
 * frees recursively. */
static cairn_status container_json(const cairn_value *v, int depth, json_t **out,
                                   cairn_error *err)
{
    int is_map = cairn_value_get_type(v) == CAIRN_VALUE_MAP;
    if (depth > CAIRN_META_MAX_DEPTH)
        return cairn__fail(err, CAIRN_E_LIMIT, "metadata: to_json: nesting deeper than %d levels",
                           CAIRN_META_MAX_DEPTH);
    json_t *node = is_map ? json_object() : json_array();
    if (!node)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
    size_t count = cairn_value_count(v);
    for (size_t i = 0; i < count; i++) {
        json_t *child;
        cairn_status st = to_json(cairn_value_at(v, i), depth + 1, &child, err);
        if (st != CAIRN_OK) {
            json_decref(node);
            return st;
        }
        /* Both setters take the child's reference even when they fail. */
        int rc = is_map ? json_object_set_new(node, cairn_value_key_at(v, i), child)
                        : json_array_append_new(node, child);
        if (rc != 0) {
            json_decref(node);
            return cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
        }
    }
    *out = node;
    return CAIRN_OK;
}

static cairn_status to_json(const cairn_value *v, int depth, json_t **out, cairn_error *err)
{
    const void *data = NULL;
    size_t len = 0;
    int b = 0;
    int64_t i = 0;
    double d = 0;
    json_t *node = NULL;
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_NULL:
        node = json_null();
        break;
    case CAIRN_VALUE_BOOL:
        cairn_value_get_bool(v, &b);
        node = json_boolean(b);
        break;
    case CAIRN_VALUE_INT:
        cairn_value_get_int(v, &i);
        node = json_integer((json_int_t)i);
        break;
    case CAIRN_VALUE_FLOAT:
        cairn_value_get_float(v, &d);
        node = float_json(d);
        break;
    case CAIRN_VALUE_STRING:
        cairn_value_get_data(v, &data, &len);
        node = json_stringn(data, len);
        break;
    case CAIRN_VALUE_BYTES:
        cairn_value_get_data(v, &data, &len);
        node = bytes_json(data, len);
        break;
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(v, &data, &len);
        node = tagged("$tensor", data, len);
        break;
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        return container_json(v, depth, out, err);
    }
    if (!node)
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
    *out = node;
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
    json_t *root;
    CAIRN_TRY(to_json(v, 1, &root, err));
    size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(17) |
                   (indent ? JSON_INDENT(indent) : JSON_COMPACT);
    /* Printed into our own malloc'd buffer (sized by a first pass), so
     * cairn_free releases it whatever allocator jansson was given. */
    size_t need = json_dumpb(root, NULL, 0, flags);
    char *text = need ? malloc(need + 1) : NULL;
    if (!text || json_dumpb(root, text, need, flags) != need) {
        free(text);
        json_decref(root);
        return cairn__fail(err, CAIRN_E_NOMEM, "metadata: to_json: out of memory");
    }
    text[need] = '\0';
    json_decref(root);
    *out_json = text;
    return CAIRN_OK;
}
