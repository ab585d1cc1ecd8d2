/* json.c -- cairn's JSON document (docs/FORMAT.md, "JSON"): every tensor's
 * name, dtype, shape and values as nested lists, and the metadata tree, in
 * one document that people and other languages read and that converts back
 * to the same bits.
 *
 * The writer streams the text to the sink: tensors as they are added, the
 * metadata (cairn_value_to_json) at the end. The reader is a strict, bounded
 * RFC 8259 parser of its own for the document and the tensor values (each
 * number goes straight into the tensor's buffer, so memory is the tensors'
 * bytes, at most 16 per number of input), and jansson (through
 * cairn__value_from_json) for the metadata object. */
#include "common/buf.h"
#include "common/nameset.h"
#include "common/value_internal.h"
#include "format/registry.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define JSON_MAGIC "cairn-json"
#define JSON_VERSION 1
#define MAX_DEPTH 64      /* nesting of the document outside the metadata */
#define MAX_NUMBER 400    /* characters of one number token */

/* ------------------------------------------------------------ elements */

typedef struct float_kind {
    cairn_dtype dtype;
    unsigned bits;     /* element width */
    uint64_t qnan;     /* the default quiet NaN, sign clear */
    uint64_t exp_mask; /* exponent bits; all set = Inf or NaN */
    uint64_t man_mask;
} float_kind;

static const float_kind float_kinds[] = {
    {CAIRN_F64, 64, 0x7FF8000000000000ull, 0x7FF0000000000000ull, 0x000FFFFFFFFFFFFFull},
    {CAIRN_F32, 32, 0x7FC00000u, 0x7F800000u, 0x007FFFFFu},
    {CAIRN_F16, 16, 0x7E00u, 0x7C00u, 0x03FFu},
    {CAIRN_BF16, 16, 0x7FC0u, 0x7F80u, 0x007Fu},
    /* FP8 E4M3 (fn): no Inf; S.1111.111 is the only NaN */
    {CAIRN_F8_E4M3, 8, 0x7Fu, 0x78u, 0x07u},
    {CAIRN_F8_E5M2, 8, 0x7Eu, 0x7Cu, 0x03u},
};

static const float_kind *float_kind_of(cairn_dtype d)
{
    if (d == CAIRN_C64)
        d = CAIRN_F32;
    if (d == CAIRN_C128)
        d = CAIRN_F64;
    for (size_t i = 0; i < sizeof float_kinds / sizeof float_kinds[0]; i++)
        if (float_kinds[i].dtype == d)
            return &float_kinds[i];
    return NULL;
}

static uint64_t load_bits(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void store_bits(uint8_t *p, unsigned bytes, uint64_t v)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int is_nan_bits(const float_kind *k, uint64_t b)
{
    if (k->dtype == CAIRN_F8_E4M3)
        return (b & 0x7F) == 0x7F;
    return (b & k->exp_mask) == k->exp_mask && (b & k->man_mask) != 0;
}

static int is_inf_bits(const float_kind *k, uint64_t b)
{
    return k->dtype != CAIRN_F8_E4M3 && (b & k->exp_mask) == k->exp_mask &&
           (b & k->man_mask) == 0;
}

/* ------------------------------------------------------------- writing */

typedef struct jw_writer {
    cairn__buf out;    /* text waiting for the sink */
    size_t count;      /* tensors written (names are unique: writer.c checks) */
    cairn_value *meta; /* the latest tree set */
} jw_writer;

static cairn_status out_text(cairn_writer *w, const char *text, size_t len, cairn_error *err)
{
    jw_writer *s = w->state;
    cairn__buf_put(&s->out, text, len);
    if (s->out.oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    if (s->out.len < (1u << 16))
        return CAIRN_OK;
    cairn_status st = cairn__sink_write(&w->sink, s->out.p, s->out.len, err);
    s->out.len = 0;
    return st;
}

static cairn_status out_str(cairn_writer *w, const char *text, cairn_error *err)
{
    return out_text(w, text, strlen(text), err);
}

/* A JSON string literal of `len` bytes of UTF-8 (names are valid UTF-8). */
static cairn_status out_quoted(cairn_writer *w, const char *s, size_t len, cairn_error *err)
{
    CAIRN_TRY(out_text(w, "\"", 1, err));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            CAIRN_TRY(out_text(w, esc, 2, err));
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            CAIRN_TRY(out_text(w, esc, 6, err));
        } else {
            CAIRN_TRY(out_text(w, (const char *)&c, 1, err));
        }
    }
    return out_text(w, "\"", 1, err);
}

/* The shortest "%.Ng" that reads back as the same double, with ".0" added
 * when it would otherwise read as an integer (so -0.0 keeps its sign). */
static int format_double(double d, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".eE") && (size_t)n + 2 < size) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return n;
}

/* One element of a float dtype (bits b) as JSON: a number, or a string for
 * what JSON numbers cannot hold. `value` is its exact value as a double. */
static int format_float(const float_kind *k, uint64_t b, double value, char *buf, size_t size)
{
    uint64_t sign = 1ull << (k->bits - 1);
    if (is_nan_bits(k, b)) {
        if ((b & ~sign) == k->qnan)
            return snprintf(buf, size, "\"%sNaN\"", b & sign ? "-" : "");
        return snprintf(buf, size, "\"NaN:0x%0*" PRIx64 "\"", (int)(k->bits / 4), b);
    }
    if (is_inf_bits(k, b))
        return snprintf(buf, size, "\"%sInfinity\"", b & sign ? "-" : "");
    return format_double(value, buf, size);
}

static cairn_status jw_begin(cairn_writer *w, cairn_error *err)
{
    jw_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    w->state = s;
    return out_str(w, "{\"format\": \"" JSON_MAGIC "\", \"version\": 1, \"tensors\": [", err);
}

/* The values of elements [first, first + n) in C order, each formatted by
 * its dtype; `conv` holds them widened (F64 pairs for complex, I64/U64). */
static cairn_status write_elements(cairn_writer *w, cairn_dtype dtype, const uint8_t *data,
                                   uint64_t first, size_t n, const void *conv, uint32_t rank,
                                   const uint64_t *dims, cairn_error *err)
{
    const float_kind *k = float_kind_of(dtype);
    int cplx = dtype == CAIRN_C64 || dtype == CAIRN_C128;
    size_t esize = cairn_dtype_size(dtype), part = cplx ? esize / 2 : esize;
    for (size_t i = 0; i < n; i++) {
        uint64_t e = first + i;
        /* Opening brackets for every dimension this element starts. */
        uint64_t stride = 1;
        int opens = 0;
        for (int d = (int)rank - 1; d >= 0; d--) {
            if (dims[d] == 0 || e % (stride * dims[d]) != 0)
                break;
            stride *= dims[d];
            opens++;
        }
        char buf[96];
        size_t o = 0;
        if (e > 0)
            buf[o++] = ',', buf[o++] = opens ? '\n' : ' ';
        for (int d = 0; d < opens; d++)
            buf[o++] = '[';
        CAIRN_TRY(out_text(w, buf, o, err));
        o = 0;
        if (k) {
            for (int c = 0; c < (cplx ? 2 : 1); c++) {
                uint64_t b = load_bits(data + i * esize + (size_t)c * part, (unsigned)part);
                double v = ((const double *)conv)[i * (cplx ? 2 : 1) + (size_t)c];
                if (cplx)
                    o += (size_t)snprintf(buf + o, sizeof buf - o, c ? ", " : "[");
                o += (size_t)format_float(k, b, v, buf + o, sizeof buf - o);
            }
            if (cplx)
                buf[o++] = ']';
        } else if (dtype == CAIRN_BOOL) {
            o = (size_t)snprintf(buf, sizeof buf, "%s", data[i] ? "true" : "false");
        } else if (dtype == CAIRN_U64) {
            o = (size_t)snprintf(buf, sizeof buf, "%" PRIu64, ((const uint64_t *)conv)[i]);
        } else {
            o = (size_t)snprintf(buf, sizeof buf, "%" PRId64, ((const int64_t *)conv)[i]);
        }
        /* Closing brackets for every dimension this element ends. */
        stride = 1;
        for (int d = (int)rank - 1; d >= 0; d--) {
            if ((e + 1) % (stride * dims[d]) != 0)
                break;
            stride *= dims[d];
            buf[o++] = ']';
        }
        CAIRN_TRY(out_text(w, buf, o, err));
    }
    return CAIRN_OK;
}

/* An empty tensor's nesting as NumPy's tolist() gives it: lists down to the
 * first zero dimension, [[], []] for shape (2, 0, 3). */
static cairn_status empty_lists(cairn_writer *w, uint32_t rank, const uint64_t *dims, uint32_t d,
                                cairn_error *err)
{
    CAIRN_TRY(out_str(w, "[", err));
    for (uint64_t i = 0; dims[d] != 0 && i < dims[d]; i++) {
        if (i)
            CAIRN_TRY(out_str(w, ", ", err));
        CAIRN_TRY(empty_lists(w, rank, dims, d + 1, err));
    }
    return out_str(w, "]", err);
}

static cairn_status write_empty(cairn_writer *w, const char *name, uint32_t rank,
                                const uint64_t *dims, cairn_error *err)
{
    uint64_t lists = 1;
    for (uint32_t d = 0; d < rank && dims[d] != 0; d++)
        if (cairn__mul_overflow(lists, dims[d], &lists) || lists > (1u << 24))
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': an empty tensor "
                               "whose shape would need more than 2^24 empty lists", w->path,
                               name);
    return empty_lists(w, rank, dims, 0, err);
}

static cairn_dtype wide_of(cairn_dtype d)
{
    if (float_kind_of(d))
        return d == CAIRN_C64 || d == CAIRN_C128 ? CAIRN_C128 : CAIRN_F64;
    if (d == CAIRN_U8 || d == CAIRN_U16 || d == CAIRN_U32 || d == CAIRN_U64)
        return CAIRN_U64;
    return d == CAIRN_BOOL ? CAIRN_BOOL : CAIRN_I64;
}

static cairn_status jw_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    jw_writer *s = w->state;
    const char *dname = cairn_dtype_name(dtype);
    if (!dname)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': invalid dtype", w->path, name);
    if (rank > CAIRN_MAX_RANK || (rank > 0 && !dims))
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': bad rank %u or NULL dims",
                           w->path, name, rank);
    uint64_t count = 1;
    for (uint32_t d = 0; d < rank; d++)
        if (cairn__mul_overflow(count, dims[d], &count))
            return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': shape overflows", w->path,
                               name);
    if (count > 0 && !data)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL data", w->path, name);
    s->count++;
    char head[160];
    CAIRN_TRY(out_str(w, s->count > 1 ? ",\n{\"name\": " : "\n{\"name\": ", err));
    CAIRN_TRY(out_quoted(w, name, strlen(name), err));
    snprintf(head, sizeof head, ", \"dtype\": \"%s\", \"shape\": [", dname);
    CAIRN_TRY(out_str(w, head, err));
    for (uint32_t d = 0; d < rank; d++) {
        snprintf(head, sizeof head, "%s%" PRIu64, d ? ", " : "", dims[d]);
        CAIRN_TRY(out_str(w, head, err));
    }
    CAIRN_TRY(out_str(w, "], \"data\":\n", err));
    if (count == 0) {
        CAIRN_TRY(write_empty(w, name, rank, dims, err));
        return out_str(w, "}", err);
    }
    /* Widened in slices so memory stays bounded for any tensor. */
    enum { SLICE = 4096 };
    cairn_dtype wide = wide_of(dtype);
    size_t esize = cairn_dtype_size(dtype);
    void *conv = malloc(SLICE * 16);
    if (!conv)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; st == CAIRN_OK && i < count; i += SLICE) {
        size_t n = count - i < SLICE ? (size_t)(count - i) : SLICE;
        const uint8_t *src = (const uint8_t *)data + i * esize;
        if (wide != CAIRN_BOOL)
            st = cairn_convert(dtype, src, wide, conv, n, err);
        if (st == CAIRN_OK)
            st = write_elements(w, dtype, src, i, n, conv, rank, dims, err);
    }
    free(conv);
    return st == CAIRN_OK ? out_str(w, "}", err) : st;
}

static cairn_status jw_add_alias(cairn_writer *w, const char *name, const char *existing,
                                 cairn_error *err)
{
    return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: alias '%s' of '%s': a JSON document has "
                       "no aliases; add the tensor again under the new name", w->path, name,
                       existing);
}

static cairn_status jw_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    jw_writer *s = w->state;
    char *text = NULL;
    /* Checked now (nesting, memory), so the caller hears of it at once. */
    cairn_status st = cairn_value_to_json(tree, 0, &text, err);
    cairn_free(text);
    if (st != CAIRN_OK) {
        cairn_value_free(tree);
        return st;
    }
    cairn_value_free(s->meta);
    s->meta = tree;
    return CAIRN_OK;
}

static cairn_status jw_finish(cairn_writer *w, cairn_error *err)
{
    jw_writer *s = w->state;
    char *text = NULL;
    CAIRN_TRY(out_str(w, s->count ? "\n],\n\"metadata\": " : "],\n\"metadata\": ", err));
    if (s->meta) {
        CAIRN_TRY(cairn_value_to_json(s->meta, 1, &text, err));
        cairn_status st = out_str(w, text, err);
        cairn_free(text);
        CAIRN_TRY(st);
    } else {
        CAIRN_TRY(out_str(w, "{}", err));
    }
    CAIRN_TRY(out_str(w, "}\n", err));
    cairn_status st = cairn__sink_write(&w->sink, s->out.p, s->out.len, err);
    s->out.len = 0;
    return st;
}

static void jw_destroy(cairn_writer *w)
{
    jw_writer *s = w->state;
    free(s->out.p);
    cairn_value_free(s->meta);
    free(s);
}

const cairn__writer_ops cairn__json_writer = CAIRN__WRITER_OPS(
    jw, CAIRN_FORMAT_JSON, .add_alias = jw_add_alias, .set_metadata = jw_set_metadata);

/* ------------------------------------------------------------- reading */

typedef struct jr_state {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn__packed tensors;     /* tails: the decoded bytes (uint8_t *, NULL when empty) */
    size_t count;
    uint64_t payload;
    cairn__nameset set;
    cairn_value *meta;
} jr_state;
CAIRN__TABLE_FIRST(jr_state);

/* The parser: a cursor over the whole document. */
typedef struct jp {
    const uint8_t *p;
    size_t len, at;
    const char *path;
    cairn_error *err;
} jp;

/* JFAIL(x, status, fmt, ...): fails at x's position. */
#define JFAIL(x, st, ...) \
    cairn__fail_at((x)->err, (st), (x)->path, "json", (x)->at, NULL, __VA_ARGS__)

static void skip_ws(jp *x)
{
    while (x->at < x->len && (x->p[x->at] == ' ' || x->p[x->at] == '\t' ||
                              x->p[x->at] == '\n' || x->p[x->at] == '\r'))
        x->at++;
}

static int peek(jp *x)
{
    skip_ws(x);
    return x->at < x->len ? x->p[x->at] : -1;
}

static cairn_status expect(jp *x, char c)
{
    if (peek(x) != (unsigned char)c)
        return x->at < x->len ? JFAIL(x, CAIRN_E_CORRUPT, "expected '%c'", c)
                              : JFAIL(x, CAIRN_E_CORRUPT, "the document ends early (expected "
                                      "'%c')", c);
    x->at++;
    return CAIRN_OK;
}

static int hex4(const uint8_t *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* A string token, decoded into a malloc'd NUL-terminated buffer when `out`
 * is set (else only checked). Strict: escapes as RFC 8259 lists them,
 * surrogates paired, no raw control bytes, valid UTF-8; \u0000 only with
 * allow_nul (metadata strings carry a length, names do not). */
static cairn_status parse_string(jp *x, char **out, size_t *out_len, int allow_nul)
{
    CAIRN_TRY(expect(x, '"'));
    size_t start = x->at, n = 0;
    char *buf = NULL;
    for (int pass = out ? 0 : 1; pass < 2; pass++) {
        x->at = start;
        n = 0;
        for (;;) {
            if (x->at >= x->len)
                return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "unterminated string");
            uint8_t c = x->p[x->at];
            if (c == '"')
                break;
            if (c < 0x20)
                return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "raw control byte 0x%02x in a "
                                        "string", c);
            uint8_t enc[4];
            size_t k = 0;
            if (c != '\\') {
                enc[k++] = c;
                x->at++;
            } else {
                if (x->at + 1 >= x->len)
                    return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "unterminated escape");
                uint8_t e = x->p[x->at + 1];
                const char *simple = strchr("\"\\/bfnrt", e);
                if (e && simple) {
                    static const char map[] = "\"\\/\b\f\n\r\t";
                    enc[k++] = (uint8_t)map[simple - "\"\\/bfnrt"];
                    x->at += 2;
                } else if (e == 'u') {
                    uint32_t cp, lo;
                    if (x->at + 6 > x->len || !hex4(x->p + x->at + 2, &cp))
                        return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "bad \\u escape");
                    x->at += 6;
                    if (cp >= 0xDC00 && cp <= 0xDFFF)
                        return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "lone low surrogate");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (x->at + 6 > x->len || x->p[x->at] != '\\' || x->p[x->at + 1] != 'u' ||
                            !hex4(x->p + x->at + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                            return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "unpaired surrogate");
                        x->at += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    if (cp == 0 && !allow_nul)
                        return free(buf), JFAIL(x, CAIRN_E_UNSUPPORTED, "\\u0000 in a name");
                    if (cp < 0x80) {
                        enc[k++] = (uint8_t)cp;
                    } else if (cp < 0x800) {
                        enc[k++] = (uint8_t)(0xC0 | cp >> 6);
                        enc[k++] = (uint8_t)(0x80 | (cp & 0x3F));
                    } else if (cp < 0x10000) {
                        enc[k++] = (uint8_t)(0xE0 | cp >> 12);
                        enc[k++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                        enc[k++] = (uint8_t)(0x80 | (cp & 0x3F));
                    } else {
                        enc[k++] = (uint8_t)(0xF0 | cp >> 18);
                        enc[k++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
                        enc[k++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                        enc[k++] = (uint8_t)(0x80 | (cp & 0x3F));
                    }
                } else {
                    return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "unknown escape");
                }
            }
            if (pass == 1 && buf)
                memcpy(buf + n, enc, k);
            n += k;
        }
        if (pass == 0 && !(buf = malloc(n + 1)))
            return JFAIL(x, CAIRN_E_NOMEM, "out of memory");
    }
    x->at++; /* the closing quote */
    if (buf) {
        buf[n] = '\0';
        if (!cairn__utf8_valid(buf, n))
            return free(buf), JFAIL(x, CAIRN_E_CORRUPT, "a string is not valid UTF-8");
        *out = buf;
        if (out_len)
            *out_len = n;
    } else {
        /* Raw bytes were copied as they are: check them in place. */
        if (!cairn__utf8_valid((const char *)x->p + start, x->at - 1 - start))
            return JFAIL(x, CAIRN_E_CORRUPT, "a string is not valid UTF-8");
    }
    return CAIRN_OK;
}

/* A number token (RFC 8259 grammar) into buf; *is_int when it has no
 * fraction or exponent. */
static cairn_status number_token(jp *x, char *buf, int *is_int)
{
    skip_ws(x);
    size_t s = x->at, i = s;
    const uint8_t *p = x->p;
    *is_int = 1;
    if (i < x->len && p[i] == '-')
        i++;
    if (i < x->len && p[i] == '0') {
        i++;
    } else if (i < x->len && p[i] >= '1' && p[i] <= '9') {
        while (i < x->len && p[i] >= '0' && p[i] <= '9')
            i++;
    } else {
        return JFAIL(x, CAIRN_E_CORRUPT, "expected a number");
    }
    if (i < x->len && p[i] == '.') {
        *is_int = 0;
        if (++i >= x->len || p[i] < '0' || p[i] > '9')
            return JFAIL(x, CAIRN_E_CORRUPT, "a digit must follow '.'");
        while (i < x->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < x->len && (p[i] == 'e' || p[i] == 'E')) {
        *is_int = 0;
        if (++i < x->len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= x->len || p[i] < '0' || p[i] > '9')
            return JFAIL(x, CAIRN_E_CORRUPT, "a digit must follow the exponent");
        while (i < x->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i - s > MAX_NUMBER)
        return JFAIL(x, CAIRN_E_LIMIT, "a number of more than %d characters", MAX_NUMBER);
    memcpy(buf, p + s, i - s);
    buf[i - s] = '\0';
    x->at = i;
    return CAIRN_OK;
}

static cairn_status parse_uint(jp *x, uint64_t *out)
{
    char buf[MAX_NUMBER + 1];
    int is_int;
    CAIRN_TRY(number_token(x, buf, &is_int));
    errno = 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (!is_int || buf[0] == '-' || errno == ERANGE || *end)
        return JFAIL(x, CAIRN_E_CORRUPT, "expected an integer from 0 to 2^64-1, got %s", buf);
    *out = v;
    return CAIRN_OK;
}

/* One element of tensor `t` into dst. */
static cairn_status parse_element(jp *x, cairn_dtype dtype, uint8_t *dst)
{
    const float_kind *k = float_kind_of(dtype);
    size_t esize = cairn_dtype_size(dtype);
    if (dtype == CAIRN_BOOL) {
        skip_ws(x);
        if (x->len - x->at >= 4 && !memcmp(x->p + x->at, "true", 4))
            return *dst = 1, x->at += 4, CAIRN_OK;
        if (x->len - x->at >= 5 && !memcmp(x->p + x->at, "false", 5))
            return *dst = 0, x->at += 5, CAIRN_OK;
        return JFAIL(x, CAIRN_E_CORRUPT, "a BOOL element must be true or false");
    }
    if (!k) { /* integers: exact, in range */
        char buf[MAX_NUMBER + 1];
        int is_int;
        CAIRN_TRY(number_token(x, buf, &is_int));
        int uns = dtype == CAIRN_U8 || dtype == CAIRN_U16 || dtype == CAIRN_U32 ||
                  dtype == CAIRN_U64;
        char *end;
        errno = 0;
        uint64_t bits;
        int ok = is_int;
        if (uns) {
            unsigned long long v = strtoull(buf, &end, 10);
            ok = ok && buf[0] != '-' && errno != ERANGE && !*end &&
                 (esize == 8 || v < (1ull << (8 * esize)));
            bits = v;
        } else {
            long long v = strtoll(buf, &end, 10);
            long long lim = esize == 8 ? INT64_MAX : (long long)((1ull << (8 * esize - 1)) - 1);
            ok = ok && errno != ERANGE && !*end && v <= lim && v >= -lim - 1;
            bits = (uint64_t)v;
        }
        if (!ok)
            return JFAIL(x, CAIRN_E_CORRUPT, "%s is not a %s value", buf,
                         cairn_dtype_name(dtype));
        store_bits(dst, (unsigned)esize, bits);
        return CAIRN_OK;
    }
    size_t part = (dtype == CAIRN_C64 || dtype == CAIRN_C128) ? esize / 2 : esize;
    if (part != esize) { /* complex: [re, im] */
        CAIRN_TRY(expect(x, '['));
        CAIRN_TRY(parse_element(x, part == 4 ? CAIRN_F32 : CAIRN_F64, dst));
        CAIRN_TRY(expect(x, ','));
        CAIRN_TRY(parse_element(x, part == 4 ? CAIRN_F32 : CAIRN_F64, dst + part));
        return expect(x, ']');
    }
    uint64_t sign = 1ull << (k->bits - 1), bits;
    if (peek(x) == '"') {
        char *s = NULL;
        CAIRN_TRY(parse_string(x, &s, NULL, 0));
        int neg = s[0] == '-', ok = 1;
        const char *body = s + neg;
        if (!strcmp(body, "NaN")) {
            bits = k->qnan | (neg ? sign : 0);
        } else if (!strcmp(body, "Infinity") && k->dtype != CAIRN_F8_E4M3) {
            bits = k->exp_mask | (neg ? sign : 0);
        } else if (!neg && !strncmp(body, "NaN:0x", 6) && strlen(body) == 6 + k->bits / 4) {
            char *end;
            bits = strtoull(body + 6, &end, 16);
            ok = !*end && is_nan_bits(k, bits);
        } else {
            ok = 0;
        }
        free(s);
        if (!ok)
            return JFAIL(x, CAIRN_E_CORRUPT, "a %s element string must be \"NaN\", \"-NaN\", "
                         "\"NaN:0x<%u hex digits of a NaN>\"%s", cairn_dtype_name(dtype),
                         k->bits / 4, k->dtype == CAIRN_F8_E4M3 ? "" :
                         ", \"Infinity\" or \"-Infinity\"");
        store_bits(dst, (unsigned)esize, bits);
        return CAIRN_OK;
    }
    char buf[MAX_NUMBER + 1];
    int is_int;
    CAIRN_TRY(number_token(x, buf, &is_int));
    double d = strtod(buf, NULL); /* correctly rounded; out of range gives +-Inf */
    cairn_error cerr = {0};
    if (k->dtype == CAIRN_F64)
        memcpy(dst, &d, 8);
    else if (cairn_convert(CAIRN_F64, &d, k->dtype, dst, 1, &cerr) != CAIRN_OK)
        return JFAIL(x, CAIRN_E_CORRUPT, "%s", cerr.message);
    return CAIRN_OK;
}

/* Nested lists for dims[d..rank) holding elements from dst on. */
static cairn_status parse_data(jp *x, cairn_dtype dtype, uint32_t rank, const uint64_t *dims,
                               uint32_t d, uint8_t **dst)
{
    if (d == rank) {
        CAIRN_TRY(parse_element(x, dtype, *dst));
        *dst += cairn_dtype_size(dtype);
        return CAIRN_OK;
    }
    CAIRN_TRY(expect(x, '['));
    if (dims[d] == 0)
        return expect(x, ']');
    for (uint64_t i = 0; i < dims[d]; i++) {
        if (i)
            CAIRN_TRY(expect(x, ','));
        CAIRN_TRY(parse_data(x, dtype, rank, dims, d + 1, dst));
    }
    if (peek(x) == ',')
        return JFAIL(x, CAIRN_E_CORRUPT, "more than the %" PRIu64 " elements the shape gives "
                     "dimension %u", dims[d], d);
    return expect(x, ']');
}

static const char *jr_name(const void *ctx, uint32_t index, size_t *len)
{
    const jr_state *s = ctx;
    return cairn__packed_name(&s->tensors, index, len);
}

static uint8_t *jr_bytes(const jr_state *s, uint64_t index)
{
    uint8_t *bytes;
    cairn__packed_tail(&s->tensors, index, &bytes);
    return bytes;
}

/* A key string and the ':' after it. */
static cairn_status parse_key(jp *x, char **key)
{
    CAIRN_TRY(parse_string(x, key, NULL, 0));
    cairn_status st = expect(x, ':');
    if (st != CAIRN_OK) {
        free(*key);
        *key = NULL;
    }
    return st;
}

/* {"name": S, "dtype": S, "shape": [N...], "data": ...}, in this order. */
static cairn_status parse_tensor(jp *x, jr_state *s)
{
    static const char *const keys[] = {"name", "dtype", "shape", "data"};
    if (s->count >= UINT32_MAX)
        return JFAIL(x, CAIRN_E_LIMIT, "too many tensors");
    cairn__tensor t;
    uint8_t *bytes_at = NULL;
    memset(&t, 0, sizeof t);
    cairn_tensor_info *in = &t.info;
    char *name = NULL, *dname = NULL;
    cairn_status st = expect(x, '{');
    for (int k = 0; st == CAIRN_OK && k < 4; k++) {
        char *key = NULL;
        if (k && (st = expect(x, ',')) != CAIRN_OK)
            break;
        if ((st = parse_key(x, &key)) != CAIRN_OK)
            break;
        int match = !strcmp(key, keys[k]);
        free(key);
        if (!match) {
            st = JFAIL(x, CAIRN_E_CORRUPT, "a tensor's keys must be name, dtype, shape and "
                       "data, in this order (expected \"%s\")", keys[k]);
            break;
        }
        if (k == 0) {
            st = parse_string(x, &name, &in->name_len, 0);
        } else if (k == 1) {
            if ((st = parse_string(x, &dname, NULL, 0)) == CAIRN_OK) {
                in->dtype = cairn_dtype_from_name(dname);
                if (in->dtype == CAIRN_DTYPE_INVALID || strcmp(cairn_dtype_name(in->dtype), dname))
                    st = JFAIL(x, CAIRN_E_UNSUPPORTED, "tensor '%s': unknown dtype", name);
            }
        } else if (k == 2) {
            st = expect(x, '[');
            for (uint32_t d = 0; st == CAIRN_OK && peek(x) != ']'; d++) {
                if (d == CAIRN_MAX_RANK)
                    st = JFAIL(x, CAIRN_E_LIMIT, "tensor '%s': more than %d dimensions", name,
                               CAIRN_MAX_RANK);
                else if (d && (st = expect(x, ',')) != CAIRN_OK)
                    break;
                else if ((st = parse_uint(x, &in->dims[d])) == CAIRN_OK)
                    in->rank = d + 1;
            }
            if (st == CAIRN_OK)
                st = expect(x, ']');
        } else {
            uint64_t count = 1, bytes;
            for (uint32_t d = 0; d < in->rank; d++)
                if (cairn__mul_overflow(count, in->dims[d], &count))
                    count = UINT64_MAX;
            /* Every element takes at least 2 bytes of input ("0,"): a
             * shape asking for more cannot be what follows. */
            if (count > (x->len - x->at) / 2 + 1 ||
                cairn__mul_overflow(count, cairn_dtype_size(in->dtype), &bytes) ||
                bytes > SIZE_MAX - 1) {
                st = JFAIL(x, CAIRN_E_CORRUPT, "tensor '%s': the shape holds more elements "
                           "than the rest of the document can", name);
                break;
            }
            in->count = count;
            in->raw_size = in->stored_size = bytes;
            bytes_at = bytes ? malloc((size_t)bytes) : NULL;
            uint8_t *dst = bytes_at;
            st = bytes_at || !bytes ? parse_data(x, in->dtype, in->rank, in->dims, 0, &dst)
                                    : JFAIL(x, CAIRN_E_NOMEM, "out of memory");
        }
    }
    if (st == CAIRN_OK)
        st = expect(x, '}');
    free(dname);
    if (st == CAIRN_OK) {
        in->name = name;
        in->offset = 0;
        t.via_load = 1;
        if (cairn__nameset_find(&s->set, name, in->name_len, jr_name, s) >= 0)
            st = JFAIL(x, CAIRN_E_CORRUPT, "tensor '%s' appears twice", name);
        else
            st = cairn__packed_add(&s->tensors, &t, &bytes_at, x->path, x->err);
        if (st == CAIRN_OK) {
            bytes_at = NULL; /* the table's */
            st = cairn__nameset_insert(&s->set, (uint32_t)s->count++, jr_name, s, x->err);
            s->payload += in->raw_size;
        }
    }
    free(name);
    free(bytes_at);
    return st;
}

/* Skips one JSON value, checking it strictly (the metadata, which jansson
 * then reads): bounded depth, no recursion. */
static cairn_status skip_value(jp *x)
{
    char stack[MAX_DEPTH];
    int depth = 0;
    for (;;) {
        int c = peek(x);
        if (c == '{' || c == '[') {
            if (depth == MAX_DEPTH)
                return JFAIL(x, CAIRN_E_LIMIT, "metadata nested more than %d deep", MAX_DEPTH);
            stack[depth++] = (char)c;
            x->at++;
            if (peek(x) == (c == '{' ? '}' : ']')) {
                x->at++;
                depth--;
                goto next;
            }
            if (c == '{') {
                CAIRN_TRY(parse_string(x, NULL, NULL, 1));
                CAIRN_TRY(expect(x, ':'));
            }
            continue;
        } else if (c == '"') {
            CAIRN_TRY(parse_string(x, NULL, NULL, 1));
        } else if (c == 't' || c == 'f' || c == 'n') {
            const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
            size_t n = strlen(lit);
            if (x->len - x->at < n || memcmp(x->p + x->at, lit, n))
                return JFAIL(x, CAIRN_E_CORRUPT, "unknown literal");
            x->at += n;
        } else {
            char buf[MAX_NUMBER + 1];
            int is_int;
            CAIRN_TRY(number_token(x, buf, &is_int));
        }
    next:
        while (depth > 0) {
            c = peek(x);
            if (c == ',') {
                x->at++;
                if (stack[depth - 1] == '{') {
                    CAIRN_TRY(parse_string(x, NULL, NULL, 1));
                    CAIRN_TRY(expect(x, ':'));
                }
                break;
            }
            if (c != (stack[depth - 1] == '{' ? '}' : ']'))
                return JFAIL(x, CAIRN_E_CORRUPT, "expected ',' or the end of a %s",
                             stack[depth - 1] == '{' ? "object" : "list");
            x->at++;
            depth--;
        }
        if (depth == 0)
            return CAIRN_OK;
    }
}

static void jr_free(void *state)
{
    jr_state *s = state;
    if (!s)
        return;
    for (uint64_t i = 0; i < s->tensors.count; i++)
        free(jr_bytes(s, i));
    cairn__packed_free(&s->tensors);
    cairn__nameset_free(&s->set);
    cairn_value_free(s->meta);
    free(s);
}

/* {"format": "cairn-json", "version": 1, "tensors": [...], "metadata": {...}}:
 * format first, the others once each in any order, metadata optional. */
static cairn_status parse_document(jp *x, jr_state *s)
{
    int seen[4] = {1, 0, 0, 0};
    char *key = NULL, *magic = NULL;
    CAIRN_TRY(expect(x, '{'));
    CAIRN_TRY(parse_key(x, &key));
    int ok = !strcmp(key, "format");
    free(key);
    if (!ok)
        return JFAIL(x, CAIRN_E_FORMAT, "not a cairn JSON document (its first key is not "
                     "\"format\")");
    CAIRN_TRY(parse_string(x, &magic, NULL, 0));
    ok = !strcmp(magic, JSON_MAGIC);
    free(magic);
    if (!ok)
        return JFAIL(x, CAIRN_E_FORMAT, "\"format\" is not \"" JSON_MAGIC "\"");
    while (peek(x) == ',') {
        x->at++;
        CAIRN_TRY(parse_key(x, &key));
        int k = !strcmp(key, "version") ? 1 : !strcmp(key, "tensors") ? 2
              : !strcmp(key, "metadata") ? 3 : -1;
        free(key);
        if (k < 0 || seen[k])
            return JFAIL(x, CAIRN_E_CORRUPT, k < 0 ? "unknown key (a document has format, "
                         "version, tensors and metadata)" : "a key appears twice");
        seen[k] = 1;
        if (k == 1) {
            uint64_t v;
            CAIRN_TRY(parse_uint(x, &v));
            if (v != JSON_VERSION)
                return JFAIL(x, CAIRN_E_UNSUPPORTED, "version %" PRIu64 " (this reader knows 1)",
                             v);
        } else if (k == 2) {
            CAIRN_TRY(expect(x, '['));
            for (size_t i = 0; peek(x) != ']'; i++) {
                if (i)
                    CAIRN_TRY(expect(x, ','));
                CAIRN_TRY(parse_tensor(x, s));
            }
            x->at++;
        } else {
            size_t start = (skip_ws(x), x->at);
            if (peek(x) != '{')
                return JFAIL(x, CAIRN_E_CORRUPT, "\"metadata\" must be an object");
            CAIRN_TRY(skip_value(x));
            cairn_status st = cairn__value_from_json((const char *)x->p + start, x->at - start,
                                                     &s->meta, x->err);
            if (st != CAIRN_OK) { /* name the file and where the metadata starts */
                char msg[sizeof x->err->message];
                snprintf(msg, sizeof msg, "%s", x->err ? x->err->message : "");
                x->at = start;
                return JFAIL(x, st, "%s", msg);
            }
        }
    }
    CAIRN_TRY(expect(x, '}'));
    if (!seen[1] || !seen[2])
        return JFAIL(x, CAIRN_E_CORRUPT, "a document needs \"version\" and \"tensors\"");
    if (peek(x) != -1)
        return JFAIL(x, CAIRN_E_CORRUPT, "bytes after the document");
    return CAIRN_OK;
}

static cairn_status jr_open(cairn_file *f, cairn_error *err)
{
    uint8_t *copy = NULL;
    const uint8_t *p = cairn__file_ptr(f, 0, f->src.size);
    if (f->src.size > SIZE_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: too large", f->path);
    if (!p) {
        copy = malloc((size_t)f->src.size + 1);
        if (!copy)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        cairn_status st = cairn__file_read(f, 0, copy, (size_t)f->src.size, err);
        if (st != CAIRN_OK) {
            free(copy);
            return st;
        }
        p = copy;
    }
    jr_state *s = calloc(1, sizeof *s);
    if (s)
        cairn__packed_init(&s->tensors, sizeof(uint8_t *));
    jp x = {p, (size_t)f->src.size, 0, f->path, err};
    cairn_status st = s ? parse_document(&x, s) : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of "
                                                               "memory", f->path);
    free(copy);
    if (st != CAIRN_OK) {
        jr_free(s);
        return st;
    }
    cairn__table_init_packed(&s->table, &s->tensors, NULL, jr_free);
    cairn__table_index(&s->table, &s->set, jr_name, s);
    cairn__table_info(&s->table, CAIRN_FORMAT_JSON, JSON_VERSION, s->payload, 0, 1,
                      s->meta && cairn_value_count(s->meta) > 0);
    f->state = s;
    return CAIRN_OK;
}

static cairn_status jr_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const jr_state *s = f->state;
    return cairn__metadata_copy(f, s->meta, out, err);
}

static cairn_status jr_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const jr_state *s = f->state;
    (void)err;
    cairn__tensor t;
    cairn__packed_get(&s->tensors, index, &t);
    if (t.info.raw_size)
        memcpy(dst, jr_bytes(s, index), (size_t)t.info.raw_size);
    return CAIRN_OK;
}

const cairn__reader_ops cairn__json_reader =
    CAIRN__READER_OPS(jr, CAIRN_FORMAT_JSON, .read_metadata = jr_read_metadata, .load = jr_load);

/* Detection: '{' then "format" and "cairn-json" (with any white space) in
 * the first bytes, as this writer and any pretty-printer lay them out. */
int cairn__json_sniff(const cairn_file *f)
{
    uint8_t head[256];
    size_t n = f->src.size < sizeof head ? (size_t)f->src.size : sizeof head;
    if (n == 0 || cairn__file_read(f, 0, head, n, NULL) != CAIRN_OK)
        return 0;
    jp x = {head, n, 0, f->path, NULL};
    char *key = NULL, *magic = NULL;
    int ok = expect(&x, '{') == CAIRN_OK && parse_key(&x, &key) == CAIRN_OK &&
             !strcmp(key, "format") && parse_string(&x, &magic, NULL, 0) == CAIRN_OK &&
             !strcmp(magic, JSON_MAGIC);
    free(key);
    free(magic);
    return ok;
}
