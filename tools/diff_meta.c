/* diff_meta.c -- structural comparison of two metadata trees, for `cairn diff`. */
#include "diff_meta.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Trees read from a file nest at most 64 deep (docs/FORMAT.md §7); the
 * bound only matters for trees built in memory, which can nest deeper than
 * the stack allows. */
#define MAX_DEPTH 1000
#define DEFAULT_NAN_BITS 0x7FF8000000000000ull
#define STRING_CUT 60

/* ------------------------------------------------------- text buffers */

/* A growable path: segments are pushed on the way down and cut on the way
 * back up, so one buffer serves the whole walk. */
typedef struct path_buf {
    char *s;
    size_t len, cap;
    int failed; /* out of memory */
} path_buf;

static void path_put(path_buf *p, const char *text, size_t n)
{
    if (p->failed)
        return;
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 64;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *s = realloc(p->s, cap);
        if (!s) {
            p->failed = 1;
            return;
        }
        p->s = s;
        p->cap = cap;
    }
    memcpy(p->s + p->len, text, n);
    p->len += n;
    p->s[p->len] = '\0';
}

static void path_putc(path_buf *p, char c) { path_put(p, &c, 1); }

/* Appends `c` JSON-escaped (without quotes); `put` is path_putc's shape so
 * both the path and the bounded render buffer can use it. */
static void json_escape_byte(void (*put)(void *, char), void *dst, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '"' || c == '\\') {
        put(dst, '\\');
        put(dst, (char)c);
    } else if (c < 0x20 || c == 0x7F) {
        const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
        if (esc) {
            put(dst, esc[0]);
            put(dst, esc[1]);
        } else {
            const char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            for (int i = 0; i < 6; i++)
                put(dst, u[i]);
        }
    } else {
        put(dst, (char)c);
    }
}

static void path_put_any(void *p, char c) { path_putc(p, c); }

static int key_is_plain(const char *key)
{
    if (!*key)
        return 0;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-' || *k >= 0x80))
            return 0;
    return 1;
}

static void path_push_key(path_buf *p, const char *key)
{
    if (key_is_plain(key)) {
        if (p->len)
            path_putc(p, '.');
        path_put(p, key, strlen(key));
        return;
    }
    path_put(p, "[\"", 2);
    for (const unsigned char *k = (const unsigned char *)key; *k; k++)
        json_escape_byte(path_put_any, p, *k);
    path_put(p, "\"]", 2);
}

static void path_push_index(path_buf *p, size_t i)
{
    char text[32];
    int n = snprintf(text, sizeof text, "[%zu]", i);
    path_put(p, text, (size_t)n);
}

/* ---------------------------------------------------------- comparing */

typedef struct walker {
    path_buf path;
    diff_meta_fn fn;
    void *ctx;
    uint64_t ndiff;
} walker;

static int report(walker *w, diff_meta_kind kind, const cairn_value *a, const cairn_value *b)
{
    if (w->path.failed)
        return -1;
    w->ndiff++;
    return w->fn(w->ctx, kind, w->path.len ? w->path.s : "(root)", a, b);
}

static uint64_t float_bits(const cairn_value *v)
{
    double d = 0;
    uint64_t bits;
    cairn_value_get_float(v, &d);
    memcpy(&bits, &d, 8);
    return bits;
}

/* Scalars of the same type: equal when their values are (floats by bits). */
static int scalar_equal(const cairn_value *a, const cairn_value *b)
{
    int ba = 0, bb = 0;
    int64_t ia = 0, ib = 0;
    const void *pa = NULL, *pb = NULL;
    size_t la = 0, lb = 0;
    switch (cairn_value_get_type(a)) {
    case CAIRN_VALUE_BOOL:
        cairn_value_get_bool(a, &ba);
        cairn_value_get_bool(b, &bb);
        return ba == bb;
    case CAIRN_VALUE_INT:
        cairn_value_get_int(a, &ia);
        cairn_value_get_int(b, &ib);
        return ia == ib;
    case CAIRN_VALUE_FLOAT:
        return float_bits(a) == float_bits(b);
    case CAIRN_VALUE_STRING:
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(a, &pa, &la);
        cairn_value_get_data(b, &pb, &lb);
        return la == lb && (la == 0 || memcmp(pa, pb, la) == 0);
    default:
        return 1; /* NULL */
    }
}

static int walk(walker *w, const cairn_value *a, const cairn_value *b, int depth);

typedef struct key_ref {
    const char *key;
    size_t index;
} key_ref;

static int key_ref_cmp(const void *x, const void *y)
{
    return strcmp(((const key_ref *)x)->key, ((const key_ref *)y)->key);
}

/* The keys of a map in byte order, so output does not depend on the order
 * the keys were inserted in. */
static key_ref *sorted_keys(const cairn_value *map)
{
    size_t n = cairn_value_count(map);
    key_ref *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys)
        return NULL;
    for (size_t i = 0; i < n; i++)
        keys[i] = (key_ref){cairn_value_key_at(map, i), i};
    qsort(keys, n, sizeof *keys, key_ref_cmp);
    return keys;
}

/* Visits one child path: a or b may be NULL (only in the other). */
static int visit(walker *w, int is_key, const char *key, size_t index, const cairn_value *a,
                 const cairn_value *b, int depth)
{
    size_t saved = w->path.len;
    if (is_key)
        path_push_key(&w->path, key);
    else
        path_push_index(&w->path, index);
    int rc = !b ? report(w, DIFF_META_ONLY_A, a, NULL)
             : !a ? report(w, DIFF_META_ONLY_B, NULL, b)
                  : walk(w, a, b, depth + 1);
    w->path.len = saved;
    if (w->path.s)
        w->path.s[saved] = '\0';
    return rc;
}

static int walk_map(walker *w, const cairn_value *a, const cairn_value *b, int depth)
{
    size_t na = cairn_value_count(a), nb = cairn_value_count(b), i = 0, j = 0;
    key_ref *ka = sorted_keys(a), *kb = sorted_keys(b);
    int rc = ka && kb ? 0 : -1;
    while (rc == 0 && (i < na || j < nb)) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(ka[i].key, kb[j].key);
        if (c < 0) {
            rc = visit(w, 1, ka[i].key, 0, cairn_value_at(a, ka[i].index), NULL, depth);
            i++;
        } else if (c > 0) {
            rc = visit(w, 1, kb[j].key, 0, NULL, cairn_value_at(b, kb[j].index), depth);
            j++;
        } else {
            rc = visit(w, 1, ka[i].key, 0, cairn_value_at(a, ka[i].index),
                       cairn_value_at(b, kb[j].index), depth);
            i++;
            j++;
        }
    }
    free(ka);
    free(kb);
    return rc;
}

static int walk_list(walker *w, const cairn_value *a, const cairn_value *b, int depth)
{
    size_t na = cairn_value_count(a), nb = cairn_value_count(b);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < (na > nb ? na : nb); i++) {
        /* Scalars are copied one at a time, so a list of millions of numbers
         * read from a file is compared in constant memory. */
        cairn_value *x = i < na ? cairn_value_scalar_at(a, i) : NULL;
        cairn_value *y = i < nb ? cairn_value_scalar_at(b, i) : NULL;
        rc = visit(w, 0, NULL, i, x ? x : i < na ? cairn_value_at(a, i) : NULL,
                   y ? y : i < nb ? cairn_value_at(b, i) : NULL, depth);
        cairn_value_free(x);
        cairn_value_free(y);
    }
    return rc;
}

static int walk(walker *w, const cairn_value *a, const cairn_value *b, int depth)
{
    if (depth > MAX_DEPTH || w->path.failed)
        return -1;
    cairn_value_type t = cairn_value_get_type(a);
    if (t != cairn_value_get_type(b))
        return report(w, DIFF_META_CHANGED, a, b);
    if (t == CAIRN_VALUE_MAP)
        return walk_map(w, a, b, depth);
    if (t == CAIRN_VALUE_LIST)
        return walk_list(w, a, b, depth);
    return scalar_equal(a, b) ? 0 : report(w, DIFF_META_CHANGED, a, b);
}

int diff_meta(const cairn_value *a, const cairn_value *b, diff_meta_fn fn, void *ctx,
              uint64_t *ndiff)
{
    walker w = {{NULL, 0, 0, 0}, fn, ctx, 0};
    int rc = walk(&w, a, b, 0);
    free(w.path.s);
    if (ndiff)
        *ndiff = w.ndiff;
    return rc;
}

/* ---------------------------------------------------------- rendering */

/* A fixed buffer that silently stops filling when full. */
typedef struct text_buf {
    char *s;
    size_t size, len;
} text_buf;

static void text_putc(void *p, char c)
{
    text_buf *t = p;
    if (t->len + 1 < t->size) {
        t->s[t->len++] = c;
        t->s[t->len] = '\0';
    }
}

static void text_puts(text_buf *t, const char *s)
{
    while (*s)
        text_putc(t, *s++);
}

/* The shortest text that reads back as the same double, always marked as
 * a float ("1.0", not "1"). */
static void render_float(text_buf *t, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    char text[48];
    if (isnan(d)) {
        if (bits == DEFAULT_NAN_BITS)
            snprintf(text, sizeof text, "nan");
        else
            snprintf(text, sizeof text, "nan:0x%016" PRIx64, bits);
    } else if (isinf(d)) {
        snprintf(text, sizeof text, "%s", d > 0 ? "inf" : "-inf");
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(text, sizeof text, "%.*g", prec, d);
            if (strtod(text, NULL) == d)
                break;
        }
        if (!strpbrk(text, ".e"))
            strcat(text, ".0");
    }
    text_puts(t, text);
}

static void render_string(text_buf *t, const unsigned char *s, size_t len)
{
    size_t cut = len;
    if (len > STRING_CUT) {
        cut = STRING_CUT;
        while (cut > 0 && (s[cut] & 0xC0) == 0x80)
            cut--; /* do not split a UTF-8 sequence */
    }
    text_putc(t, '"');
    for (size_t i = 0; i < cut; i++)
        json_escape_byte(text_putc, t, s[i]);
    text_putc(t, '"');
    if (cut < len)
        text_puts(t, "...");
}

void diff_meta_render(const cairn_value *v, char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    text_buf t = {buf, size, 0};
    buf[0] = '\0';
    char text[64];
    int b = 0;
    int64_t i = 0;
    double d = 0;
    const void *p = NULL;
    size_t len = 0;
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_NULL: text_puts(&t, "null"); break;
    case CAIRN_VALUE_BOOL:
        cairn_value_get_bool(v, &b);
        text_puts(&t, b ? "true" : "false");
        break;
    case CAIRN_VALUE_INT:
        cairn_value_get_int(v, &i);
        snprintf(text, sizeof text, "%" PRId64, i);
        text_puts(&t, text);
        break;
    case CAIRN_VALUE_FLOAT:
        cairn_value_get_float(v, &d);
        render_float(&t, d);
        break;
    case CAIRN_VALUE_STRING:
        cairn_value_get_data(v, &p, &len);
        render_string(&t, p, len);
        break;
    case CAIRN_VALUE_BYTES:
        cairn_value_get_data(v, &p, &len);
        snprintf(text, sizeof text, "<%zu bytes>", len);
        text_puts(&t, text);
        break;
    case CAIRN_VALUE_TENSOR:
        cairn_value_get_data(v, &p, &len);
        text_puts(&t, "<tensor ");
        for (size_t k = 0; k < len; k++)
            json_escape_byte(text_putc, &t, ((const unsigned char *)p)[k]);
        text_putc(&t, '>');
        break;
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        snprintf(text, sizeof text, "<%s of %zu>",
                 cairn_value_get_type(v) == CAIRN_VALUE_LIST ? "list" : "map",
                 cairn_value_count(v));
        text_puts(&t, text);
        break;
    }
}
