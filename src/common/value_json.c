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

static cairn_status put_string(printer *p, const char *s, size_t len)
{
    return put_json(p, json_stringn(s, len));
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
