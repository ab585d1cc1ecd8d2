/* npy.c -- NumPy .npy files (docs/FORMAT.md §10): a one-tensor reader and writer. */
#include "format/format.h"
#include "format/numpy/npy_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define NPY_MAGIC_LEN CAIRN__NPY_MAGIC_LEN
#define NPY_PREAMBLE_MAX CAIRN__NPY_PREAMBLE_MAX
#define NPY_V2_HEADER_MAX (1u << 20) /* our bound on a v2/v3 header */
#define NPY_ALIGN 64                 /* numpy's ARRAY_ALIGN */
#define NPY_GROWTH_DIGITS 21         /* numpy's GROWTH_AXIS_MAX_DIGITS */
#define NPY_ALIGN_CAP 4096          /* reported alignment stops at a page */
#define NPY_NAME "array"

static const char npy_magic[NPY_MAGIC_LEN] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ------------------------------------------------------------------ dtypes */

typedef struct npy_kind {
    char kind;
    unsigned size;
    cairn_dtype dtype;
} npy_kind;

static const npy_kind npy_kinds[] = {
    {'b', 1, CAIRN_BOOL}, {'i', 1, CAIRN_I8},  {'i', 2, CAIRN_I16}, {'i', 4, CAIRN_I32},
    {'i', 8, CAIRN_I64},  {'u', 1, CAIRN_U8},  {'u', 2, CAIRN_U16}, {'u', 4, CAIRN_U32},
    {'u', 8, CAIRN_U64},  {'f', 2, CAIRN_F16}, {'f', 4, CAIRN_F32}, {'f', 8, CAIRN_F64},
    {'c', 8, CAIRN_C64},  {'c', 16, CAIRN_C128},
};

#define NPY_KIND_COUNT (sizeof npy_kinds / sizeof npy_kinds[0])

/* Why a kind numpy knows is refused, or NULL for the numeric kinds. */
static const char *unsupported_kind(char kind)
{
    switch (kind) {
    case 'O': return "object arrays hold pickles and are never loaded";
    case 'S':
    case 'a': return "byte-string arrays are not supported";
    case 'U': return "unicode string arrays are not supported";
    case 'M': return "datetime64 arrays are not supported";
    case 'm': return "timedelta64 arrays are not supported";
    case 'V': return "void (raw record) arrays are not supported; bfloat16 and float8 saved by "
                     "ml_dtypes look like this and have lost their type";
    }
    return NULL;
}

/* Element count and byte size of a shape; 1 when the shape breaks the one
 * rule (cairn__shape_too_big: counting each zero dimension as 1, at most
 * 2^62 bytes), which writers apply too, so whatever is read converts. */
static int shape_size(uint32_t rank, const uint64_t *dims, uint64_t esize, uint64_t *count,
                      uint64_t *bytes)
{
    *count = *bytes = 0;
    if (cairn__shape_too_big(rank, dims, esize))
        return 1;
    *count = 1;
    for (uint32_t d = 0; d < rank; d++)
        *count *= dims[d];
    *bytes = *count * esize;
    return 0;
}

/* ------------------------------------------------------------------ header */

typedef cairn__npy_header npy_header;

/* A cursor over the header text. `base` is the file offset of text[0], so
 * every message can point at the offending byte. */
typedef struct parser {
    const char *text;
    size_t len, pos;
    uint64_t base;
    const char *path; /* cairn__npy_origin.where */
    int allow_long; /* Python 2 'L' suffixes (v1/v2 only, as numpy) */
    cairn_error *err;
} parser;

/* perr(ps, at, status, fmt, ...): fails at byte `at` of the header text. */
#define perr(ps, at, st, ...) \
    cairn__fail_at((ps)->err, (st), (ps)->path, "npy header", (ps)->base + (at), NULL, __VA_ARGS__)

static int at_end(const parser *ps) { return ps->pos >= ps->len; }
static char peek(const parser *ps) { return at_end(ps) ? '\0' : ps->text[ps->pos]; }

/* Python's token separators (inside brackets newlines are separators too). */
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ident(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* strchr would also match the terminating NUL. */
static int one_of(char c, const char *set) { return c != '\0' && strchr(set, c) != NULL; }

static void skip_space(parser *ps)
{
    while (!at_end(ps) && is_space(ps->text[ps->pos]))
        ps->pos++;
}

/* What the cursor points at, for "expected X, found Y" messages. */
static const char *found(const parser *ps, char *buf, size_t size)
{
    if (at_end(ps))
        return "the end of the header";
    size_t n = ps->len - ps->pos < 12 ? ps->len - ps->pos : 12;
    char shown[64];
    snprintf(buf, size, "'%s'", cairn__printable(ps->text + ps->pos, n, shown, sizeof shown));
    return buf;
}

static cairn_status expect_char(parser *ps, char c, const char *what)
{
    char buf[80];
    skip_space(ps);
    if (peek(ps) != c)
        return perr(ps, ps->pos, CAIRN_E_CORRUPT, "expected %s, found %s", what,
                    found(ps, buf, sizeof buf));
    ps->pos++;
    return CAIRN_OK;
}

/* A quoted string without escapes: numpy never writes any, and the keys and
 * type strings we accept contain none. Returns a span of the header text. */
static cairn_status parse_string(parser *ps, const char **s, size_t *n, const char *what)
{
    char buf[80];
    skip_space(ps);
    char q = peek(ps);
    if (q != '\'' && q != '"')
        return perr(ps, ps->pos, CAIRN_E_CORRUPT, "expected %s (a quoted string), found %s", what,
                    found(ps, buf, sizeof buf));
    size_t start = ps->pos++;
    while (!at_end(ps) && ps->text[ps->pos] != q) {
        char c = ps->text[ps->pos];
        if (c == '\\')
            return perr(ps, ps->pos, CAIRN_E_CORRUPT, "escape sequences are not allowed in %s",
                        what);
        if (c == '\n' || c == '\r')
            break;
        ps->pos++;
    }
    if (peek(ps) != q)
        return perr(ps, start, CAIRN_E_CORRUPT, "unterminated string for %s", what);
    *s = ps->text + start + 1;
    *n = ps->pos - start - 1;
    ps->pos++;
    return CAIRN_OK;
}

/* The type string: optional byte order, then kind and item size. */
static cairn_status parse_descr_text(parser *ps, size_t at, const char *s, size_t n,
                                     npy_header *h)
{
    char shown[48];
    cairn__printable(s, n, shown, sizeof shown);
    int has_order = n > 0 && one_of(s[0], "<>|=");
    char order = has_order ? s[0] : '=';
    size_t i = has_order ? 1 : 0;
    if (i >= n)
        return perr(ps, at, CAIRN_E_CORRUPT, "descr '%s' has no type code", shown);
    char kind = s[i++];
    const char *why = unsupported_kind(kind);
    if (why)
        return perr(ps, at, CAIRN_E_UNSUPPORTED, "descr '%s': %s", shown, why);
    if (!one_of(kind, "biufc"))
        return perr(ps, at, CAIRN_E_CORRUPT, "descr '%s' is not a type string of the form "
                    "'<f4' (byte order, kind, item size)", shown);
    unsigned size = 0;
    size_t digits = 0;
    for (; i < n && is_digit(s[i]) && digits < 4; i++, digits++)
        size = size * 10 + (unsigned)(s[i] - '0');
    if (digits == 0 || i != n)
        return perr(ps, at, CAIRN_E_CORRUPT, "descr '%s' is not a type string of the form "
                    "'<f4' (byte order, kind, item size)", shown);
    for (size_t k = 0; k < NPY_KIND_COUNT; k++) {
        if (npy_kinds[k].kind == kind && npy_kinds[k].size == size) {
            h->dtype = npy_kinds[k].dtype;
            h->big_endian = order == '>' && size > 1;
            memcpy(h->descr, s, n); /* at most 1 + 1 + 4 bytes here */
            return CAIRN_OK;
        }
    }
    return perr(ps, at, CAIRN_E_UNSUPPORTED, "descr '%s': %u-byte '%c' elements have no cairn "
                "dtype (long double and odd sizes are not supported)", shown, size, kind);
}

static cairn_status parse_descr(parser *ps, npy_header *h)
{
    skip_space(ps);
    size_t at = ps->pos;
    if (peek(ps) == '[')
        return perr(ps, at, CAIRN_E_UNSUPPORTED, "descr is a list of fields: structured arrays "
                    "are not supported");
    if (peek(ps) == '(')
        return perr(ps, at, CAIRN_E_UNSUPPORTED, "descr is a tuple: subarray dtypes are not "
                    "supported");
    const char *s;
    size_t n;
    CAIRN_TRY(parse_string(ps, &s, &n, "descr"));
    return parse_descr_text(ps, at, s, n, h);
}

static cairn_status parse_bool(parser *ps, int *out)
{
    char buf[80];
    skip_space(ps);
    size_t start = ps->pos;
    while (!at_end(ps) && is_ident(ps->text[ps->pos]))
        ps->pos++;
    size_t n = ps->pos - start;
    if (n == 4 && memcmp(ps->text + start, "True", 4) == 0)
        *out = 1;
    else if (n == 5 && memcmp(ps->text + start, "False", 5) == 0)
        *out = 0;
    else {
        ps->pos = start;
        return perr(ps, start, CAIRN_E_CORRUPT, "fortran_order: expected True or False, found %s",
                    found(ps, buf, sizeof buf));
    }
    return CAIRN_OK;
}

/* A non-negative decimal Python int, with an optional Python 2 'L'. */
static cairn_status parse_dim(parser *ps, uint64_t *out)
{
    char buf[80];
    size_t start = ps->pos;
    if (peek(ps) == '-')
        return perr(ps, start, CAIRN_E_CORRUPT, "shape: negative dimension");
    if (peek(ps) == '(' || peek(ps) == '[')
        return perr(ps, start, CAIRN_E_CORRUPT, "shape: nested sequences are not dimensions");
    if (!is_digit(peek(ps)))
        return perr(ps, start, CAIRN_E_CORRUPT, "shape: expected a dimension, found %s",
                    found(ps, buf, sizeof buf));
    uint64_t v = 0;
    int nonzero_lead = ps->text[start] != '0';
    while (is_digit(peek(ps))) {
        unsigned d = (unsigned)(ps->text[ps->pos] - '0');
        if (!nonzero_lead && d != 0)
            return perr(ps, start, CAIRN_E_CORRUPT, "shape: leading zeros are not a Python int");
        if (cairn__mul_overflow(v, 10, &v) || cairn__add_overflow(v, d, &v))
            return perr(ps, start, CAIRN_E_CORRUPT, "shape: dimension does not fit in 64 bits");
        ps->pos++;
    }
    if (ps->allow_long && peek(ps) == 'L')
        ps->pos++;
    if (is_ident(peek(ps)) || peek(ps) == '.')
        return perr(ps, start, CAIRN_E_CORRUPT, "shape: dimension is not a decimal integer");
    *out = v;
    return CAIRN_OK;
}

/* A tuple of dimensions: "()", "(5,)", "(3, 4)", "(3, 4,)". "(5)" is an int
 * in Python, not a tuple, and numpy refuses it too. */
static cairn_status parse_shape(parser *ps, npy_header *h)
{
    char buf[80];
    skip_space(ps);
    size_t open_at = ps->pos;
    if (peek(ps) != '(')
        return perr(ps, ps->pos, CAIRN_E_CORRUPT, "shape: expected a tuple, found %s",
                    found(ps, buf, sizeof buf));
    ps->pos++;
    int commas = 0;
    for (;;) {
        skip_space(ps);
        if (peek(ps) == ')')
            break;
        if (h->rank == CAIRN_MAX_RANK)
            return perr(ps, ps->pos, CAIRN_E_LIMIT, "shape has more than %d dimensions (the "
                        "rank limit)", CAIRN_MAX_RANK);
        CAIRN_TRY(parse_dim(ps, &h->dims[h->rank++]));
        skip_space(ps);
        if (peek(ps) == ',') {
            ps->pos++;
            commas++;
            continue;
        }
        if (peek(ps) != ')')
            return perr(ps, ps->pos, CAIRN_E_CORRUPT, "shape: expected ',' or ')', found %s",
                        found(ps, buf, sizeof buf));
    }
    if (h->rank == 1 && commas == 0)
        return perr(ps, open_at, CAIRN_E_CORRUPT, "shape: '(n)' is an int, not a tuple; "
                    "expected '(n,)'");
    ps->pos++;
    return CAIRN_OK;
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

static cairn_status parse_entry(parser *ps, unsigned *seen, npy_header *h)
{
    static const struct { const char *name; unsigned bit; } keys[] = {
        {"descr", KEY_DESCR}, {"fortran_order", KEY_FORTRAN}, {"shape", KEY_SHAPE}};
    const char *k;
    size_t n;
    skip_space(ps);
    size_t at = ps->pos;
    CAIRN_TRY(parse_string(ps, &k, &n, "a key"));
    unsigned bit = 0;
    for (size_t i = 0; i < 3; i++)
        if (strlen(keys[i].name) == n && memcmp(keys[i].name, k, n) == 0)
            bit = keys[i].bit;
    char shown[48];
    if (!bit)
        return perr(ps, at, CAIRN_E_CORRUPT, "unexpected key '%s' (expected exactly 'descr', "
                    "'fortran_order' and 'shape')", cairn__printable(k, n, shown, sizeof shown));
    if (*seen & bit)
        return perr(ps, at, CAIRN_E_CORRUPT, "key '%s' appears twice",
                    cairn__printable(k, n, shown, sizeof shown));
    *seen |= bit;
    CAIRN_TRY(expect_char(ps, ':', "':' after a key"));
    if (bit == KEY_DESCR)
        return parse_descr(ps, h);
    if (bit == KEY_FORTRAN)
        return parse_bool(ps, &h->fortran_order);
    return parse_shape(ps, h);
}

static cairn_status parse_dict(parser *ps, npy_header *h)
{
    char buf[80];
    unsigned seen = 0;
    CAIRN_TRY(expect_char(ps, '{', "'{' opening the header dict"));
    for (;;) {
        skip_space(ps);
        if (peek(ps) == '}')
            break;
        CAIRN_TRY(parse_entry(ps, &seen, h));
        skip_space(ps);
        if (peek(ps) == ',') {
            ps->pos++;
            continue;
        }
        if (peek(ps) != '}')
            return perr(ps, ps->pos, CAIRN_E_CORRUPT, "expected ',' or '}' after a value, found %s",
                        found(ps, buf, sizeof buf));
    }
    size_t close_at = ps->pos++;
    if (seen != (KEY_DESCR | KEY_FORTRAN | KEY_SHAPE))
        return perr(ps, close_at, CAIRN_E_CORRUPT, "missing key '%s'",
                    !(seen & KEY_DESCR) ? "descr" : !(seen & KEY_FORTRAN) ? "fortran_order"
                                                                           : "shape");
    skip_space(ps);
    if (!at_end(ps))
        return perr(ps, ps->pos, CAIRN_E_CORRUPT, "expected only padding after the header dict, "
                    "found %s", found(ps, buf, sizeof buf));
    return CAIRN_OK;
}

/* ------------------------------------------------- shared codec (npy_internal.h) */

int cairn__npy_is_magic(const uint8_t *b) { return memcmp(b, npy_magic, NPY_MAGIC_LEN) == 0; }

cairn_status cairn__npy_preamble(const uint8_t *b, uint64_t size, const cairn__npy_origin *o,
                                 cairn__npy_header *h, cairn_error *err)
{
    const char *path = o->where;
    unsigned long long base = o->base;
    memset(h, 0, sizeof *h);
    if (size < 10)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: npy file is %llu bytes, shorter "
                           "than the 10-byte preamble", path, base, (unsigned long long)size);
    if (!cairn__npy_is_magic(b))
        return cairn__fail(err, CAIRN_E_FORMAT, "%s: offset %llu: not an npy file (bad magic)",
                           path, base);
    h->major = b[6];
    h->minor = b[7];
    if (h->major < 1 || h->major > 3 || h->minor != 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: offset %llu: npy format version %u.%u "
                           "is not supported (1.0, 2.0 and 3.0 are)", path, base + 6, h->major,
                           h->minor);
    if (h->major == 1) {
        h->header_len = cairn__le16(b + 8);
        h->header_at = 10;
    } else {
        if (size < 12)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: npy %u.0 file is %llu bytes, "
                               "shorter than the 12-byte preamble", path, base, h->major,
                               (unsigned long long)size);
        h->header_len = cairn__le32(b + 8);
        h->header_at = 12;
        if (h->header_len > NPY_V2_HEADER_MAX)
            return cairn__fail(err, CAIRN_E_LIMIT, "%s: offset %llu: npy header length %llu "
                               "exceeds the limit of %u bytes", path, base + 8,
                               (unsigned long long)h->header_len, NPY_V2_HEADER_MAX);
    }
    if (h->header_len > size - h->header_at)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: npy header length %llu runs "
                           "past the end of the file (%llu bytes)", path, base + 8,
                           (unsigned long long)h->header_len, (unsigned long long)size);
    return CAIRN_OK;
}

cairn_status cairn__npy_parse_header(const char *text, const cairn__npy_origin *o,
                                     cairn__npy_header *h, cairn_error *err)
{
    parser ps = {text, (size_t)h->header_len, 0, o->base + h->header_at, o->where,
                 h->major <= 2, err};
    if (h->major == 3 && !cairn__utf8_valid(text, (size_t)h->header_len))
        return perr(&ps, 0, CAIRN_E_CORRUPT, "npy 3.0 header is not valid UTF-8");
    return parse_dict(&ps, h);
}

cairn_status cairn__npy_payload(const cairn__npy_header *h, uint64_t size,
                                const cairn__npy_origin *o, uint64_t *count, uint64_t *bytes,
                                cairn_error *err)
{
    uint64_t data_at = h->header_at + h->header_len;
    uint64_t payload = size - data_at;
    if (shape_size(h->rank, h->dims, cairn_dtype_size(h->dtype), count, bytes))
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: npy header at offset %llu: shape times "
                           "item size (%s), counting each zero dimension as 1, is more than "
                           "2^62 bytes; the payload is %llu bytes", o->where,
                           (unsigned long long)(o->base + h->header_at), h->descr,
                           (unsigned long long)payload);
    if (payload < *bytes)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset %llu: npy payload is %llu bytes, the "
                           "header says %llu", o->where, (unsigned long long)(o->base + data_at),
                           (unsigned long long)payload, (unsigned long long)*bytes);
    return CAIRN_OK;
}

/* Fortran and C order lay out the same bytes when at most one dim exceeds 1. */
int cairn__npy_fortran_matters(const cairn__npy_header *h)
{
    int big = 0;
    for (uint32_t d = 0; d < h->rank; d++)
        big += h->dims[d] > 1;
    return h->fortran_order && big > 1;
}

/* ------------------------------------------------------------------ reader */

typedef struct npy_state {
    cairn__tensor_table table; /* of the one tensor */
    cairn__tensor tensor;
    uint32_t major, minor;
} npy_state;
CAIRN__TABLE_FIRST(npy_state);

static cairn_status read_preamble(const cairn_file *f, npy_header *h, cairn_error *err)
{
    uint8_t b[NPY_PREAMBLE_MAX] = {0};
    uint64_t size = f->src.size;
    cairn__npy_origin o = {f->path, 0};
    if (size >= 10)
        CAIRN_TRY(cairn__file_read(f, 0, b, size < sizeof b ? (size_t)size : sizeof b, err));
    return cairn__npy_preamble(b, size, &o, h, err);
}

/* Reads the header text (from the mapping when there is one) and parses it. */
static cairn_status read_header(const cairn_file *f, npy_header *h, cairn_error *err)
{
    cairn__npy_origin o = {f->path, 0};
    const char *text = (const char *)cairn__file_ptr(f, h->header_at, h->header_len);
    if (text)
        return cairn__npy_parse_header(text, &o, h, err);
    char *buf = malloc(h->header_len ? (size_t)h->header_len : 1);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the npy header", f->path);
    cairn_status st = cairn__file_read(f, h->header_at, buf, (size_t)h->header_len, err);
    if (st == CAIRN_OK)
        st = cairn__npy_parse_header(buf, &o, h, err);
    free(buf);
    return st;
}

static uint64_t offset_alignment(uint64_t off)
{
    uint64_t a = off & (~off + 1);
    return a == 0 || a > NPY_ALIGN_CAP ? NPY_ALIGN_CAP : a;
}

/* Turns a parsed header into the tensor table entry, checking the payload. */
static cairn_status build_tensor(const cairn_file *f, const npy_header *h, cairn__tensor *t,
                                 cairn_error *err)
{
    cairn_tensor_info *in = &t->info;
    cairn__npy_origin o = {f->path, 0};
    memset(t, 0, sizeof *t);
    uint64_t data_at = h->header_at + h->header_len;
    uint64_t count, bytes;
    CAIRN_TRY(cairn__npy_payload(h, f->src.size, &o, &count, &bytes, err));
    in->name = NPY_NAME;
    in->name_len = sizeof NPY_NAME - 1;
    in->dtype = h->dtype;
    in->rank = h->rank;
    memcpy(in->dims, h->dims, sizeof in->dims);
    in->count = count;
    in->raw_size = bytes;
    in->stored_size = bytes; /* bytes past this are ignored, as numpy does */
    in->offset = data_at;
    in->alignment = offset_alignment(data_at);
    in->codec = CAIRN_CODEC_NONE;
    t->big_endian = h->big_endian;
    t->fortran_order = cairn__npy_fortran_matters(h);
    in->zero_copy = !t->big_endian && !t->fortran_order &&
                    cairn__file_ptr(f, data_at, bytes) != NULL;
    return CAIRN_OK;
}

static cairn_status parse_file(const cairn_file *f, npy_state *s, cairn_error *err)
{
    npy_header h;
    CAIRN_TRY(read_preamble(f, &h, err));
    CAIRN_TRY(read_header(f, &h, err));
    CAIRN_TRY(build_tensor(f, &h, &s->tensor, err));
    s->major = h.major;
    s->minor = h.minor;
    return CAIRN_OK;
}

static cairn_status npy_open(cairn_file *f, cairn_error *err)
{
    npy_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = parse_file(f, s, err);
    if (st != CAIRN_OK) {
        free(s);
        return st;
    }
    cairn__table_init(&s->table, &s->tensor, sizeof s->tensor, 1, free);
    s->table.hint = "an npy file holds one tensor, named '" NPY_NAME "'";
    cairn__table_info(&s->table, CAIRN_FORMAT_NPY, s->major, s->tensor.info.stored_size, 0,
                      s->tensor.info.alignment, 0);
    s->table.info.version_minor = s->minor;
    f->state = s;
    return CAIRN_OK;
}

static cairn_status npy_verify_structure(const cairn_file *f, cairn_error *err)
{
    const npy_state *s = f->state;
    npy_state again;
    memset(&again, 0, sizeof again);
    CAIRN_TRY(parse_file(f, &again, err));
    const cairn_tensor_info *a = &s->tensor.info, *b = &again.tensor.info;
    if (a->dtype != b->dtype || a->rank != b->rank || memcmp(a->dims, b->dims, sizeof a->dims) ||
        a->offset != b->offset || a->stored_size != b->stored_size ||
        s->tensor.big_endian != again.tensor.big_endian ||
        s->tensor.fortran_order != again.tensor.fortran_order)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: npy header at offset %llu changed since "
                           "the file was opened", f->path, (unsigned long long)a->offset);
    return CAIRN_OK;
}

/* npy has no metadata (read_metadata NULL: an empty map). */
const cairn__reader_ops cairn__npy_reader =
    CAIRN__READER_OPS(npy, CAIRN_FORMAT_NPY, .verify_structure = npy_verify_structure);

/* ------------------------------------------------------------------ writer */

typedef struct npy_writer {
    int added;
} npy_writer;

static const npy_kind *kind_of(cairn_dtype dtype)
{
    for (size_t k = 0; k < NPY_KIND_COUNT; k++)
        if (npy_kinds[k].dtype == dtype)
            return &npy_kinds[k];
    return NULL;
}

/* Header as numpy 1.24's _write_array_header renders it: sorted keys, repr()
 * of each value, GROWTH_AXIS_MAX_DIGITS spare spaces, then padding so the
 * data starts at a multiple of 64. Returns the dict text length. */
static size_t header_dict(char *buf, size_t size, const npy_kind *k, uint32_t rank,
                          const uint64_t *dims)
{
    size_t n = (size_t)snprintf(buf, size, "{'descr': '%c%c%u', 'fortran_order': False, 'shape': (",
                                k->size == 1 ? '|' : '<', k->kind, k->size);
    for (uint32_t d = 0; d < rank; d++)
        n += (size_t)snprintf(buf + n, size - n, d == 0 ? "%llu" : ", %llu",
                              (unsigned long long)dims[d]);
    n += (size_t)snprintf(buf + n, size - n, "%s), }", rank == 1 ? "," : "");
    if (rank > 0) {
        int digits = snprintf(NULL, 0, "%llu", (unsigned long long)dims[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++)
            buf[n++] = ' ';
    }
    return n;
}

/* Version, length field and padding as numpy's _wrap_header: the smallest
 * version whose length field holds the padded header. */
static size_t wrap_header(uint8_t *buf, const npy_kind *k, uint32_t rank, const uint64_t *dims)
{
    char text[512 + NPY_ALIGN];
    size_t dict = header_dict(text, sizeof text, k, rank, dims);
    size_t hlen = dict + 1; /* the final '\n' */
    int v2 = 0;
    size_t prefix = 10, pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
    if (hlen + pad > 0xFFFF) {
        v2 = 1;
        prefix = 12;
        pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
    }
    memset(text + dict, ' ', pad);
    text[dict + pad] = '\n';
    memcpy(buf, npy_magic, NPY_MAGIC_LEN);
    buf[6] = v2 ? 2 : 1;
    buf[7] = 0;
    if (v2)
        cairn__put32(buf + 8, (uint32_t)(hlen + pad));
    else
        cairn__put16(buf + 8, (uint16_t)(hlen + pad));
    memcpy(buf + prefix, text, hlen + pad);
    return prefix + hlen + pad;
}

int cairn__npy_has_descr(cairn_dtype dtype) { return kind_of(dtype) != NULL; }

size_t cairn__npy_header_write(uint8_t *buf, cairn_dtype dtype, uint32_t rank,
                               const uint64_t *dims)
{
    return wrap_header(buf, kind_of(dtype), rank, dims);
}

static cairn_status npy_begin(cairn_writer *w, cairn_error *err)
{
    npy_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    w->state = s;
    return CAIRN_OK;
}

static cairn_status npy_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                            const uint64_t *dims, const void *data, cairn_error *err)
{
    npy_writer *s = w->state;
    const npy_kind *k = kind_of(dtype);
    const char *dname = cairn_dtype_name(dtype);
    if (s->added)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': npy holds exactly one "
                           "tensor", w->path, name);
    if (!k)
        return cairn__fail(err, dname ? CAIRN_E_UNSUPPORTED : CAIRN_E_ARG, "%s: tensor '%s': "
                           "NumPy has no descr for %s", w->path, name, dname ? dname : "?");
    if (rank > CAIRN_MAX_RANK || (rank > 0 && !dims))
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': bad rank %u or NULL dims",
                           w->path, name, rank);
    uint64_t count, bytes;
    int overflow = shape_size(rank, dims, k->size, &count, &bytes);
    if (overflow || bytes > SIZE_MAX)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': shape times item size overflows",
                           w->path, name);
    if (bytes > 0 && !data)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL data", w->path, name);
    s->added = 1;
    uint8_t header[CAIRN__NPY_HEADER_BUF];
    size_t hlen = wrap_header(header, k, rank, dims);
    CAIRN_TRY(cairn__sink_write(&w->sink, header, hlen, err));
    return bytes ? cairn__sink_write(&w->sink, data, (size_t)bytes, err) : CAIRN_OK;
}

static cairn_status npy_finish(cairn_writer *w, cairn_error *err)
{
    const npy_writer *s = w->state;
    if (!s || !s->added)
        return cairn__fail(err, CAIRN_E_STATE, "%s: npy holds exactly one tensor and none was "
                           "added", w->path);
    return CAIRN_OK;
}

static void npy_destroy(cairn_writer *w) { free(w->state); }

const cairn__writer_ops cairn__npy_writer =
    CAIRN__WRITER_OPS(npy, CAIRN_FORMAT_NPY, .no_alias = "npy holds exactly one tensor",
                      .no_metadata = "npy files cannot store metadata");
