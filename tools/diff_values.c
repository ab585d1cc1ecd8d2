/* diff_values.c -- element-wise comparison of two same-dtype, same-shape tensors, for `cairn diff`. */
#include "diff_values.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLICE = 65536 }; /* elements converted at a time: 1 MiB per side at C128 */

/* How elements are widened for arithmetic: every float fits F64 exactly,
 * every complex C128, and integers go to I64/U64 so differences stay exact. */
typedef enum elem_class { CLASS_FLOAT, CLASS_COMPLEX, CLASS_SIGNED, CLASS_UNSIGNED } elem_class;

static elem_class class_of(cairn_dtype d)
{
    switch (d) {
    case CAIRN_C64:
    case CAIRN_C128: return CLASS_COMPLEX;
    case CAIRN_I8:
    case CAIRN_I16:
    case CAIRN_I32:
    case CAIRN_I64: return CLASS_SIGNED;
    case CAIRN_U8:
    case CAIRN_U16:
    case CAIRN_U32:
    case CAIRN_U64:
    case CAIRN_BOOL: return CLASS_UNSIGNED;
    default: return CLASS_FLOAT;
    }
}

static cairn_dtype wide_dtype(elem_class c)
{
    static const cairn_dtype wide[] = {CAIRN_F64, CAIRN_C128, CAIRN_I64, CAIRN_U64};
    return wide[c];
}

__attribute__((format(printf, 3, 4))) static cairn_status fail(cairn_error *err, cairn_status st,
                                                               const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = st;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ------------------------------------------------------ stored bytes */

/* Tensors above this many bytes that have no zero-copy view and that
 * cairn_tensor_read_range reads a range at a time (cairn_tensor_ranged)
 * are read a window at a time instead of whole. */
#define RANGED_MIN ((uint64_t)16 << 20)
#define WINDOW_BYTES ((size_t)4 << 20) /* a multiple of SLICE elements of any dtype */

typedef struct tensor_bytes {
    const unsigned char *data; /* the whole tensor, or NULL when read a window at a time */
    void *owned;               /* the whole tensor or the window; NULL for a zero-copy view */
    const cairn_file *f;       /* windows come from tensor `index` of f */
    uint64_t index;
    cairn_status check; /* the checksum's verdict (CAIRN_OK, or why it failed) */
    cairn_error why;
} tensor_bytes;

/* A large tensor read a window at a time: its checksum is checked first,
 * in a pass of its own (a failure is kept for the end, as for whole reads),
 * and the windows are read unchecked. */
static cairn_status open_windows(const cairn_file *f, uint64_t i, const cairn_tensor_info *t,
                                 tensor_bytes *out, cairn_error *err)
{
    out->check = cairn_tensor_verify(f, i, &out->why);
    if (out->check != CAIRN_OK && out->check != CAIRN_E_CHECKSUM) {
        if (err)
            *err = out->why;
        return out->check;
    }
    out->f = f;
    out->index = i;
    if (!(out->owned = malloc(WINDOW_BYTES)))
        return fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': out of memory", cairn_file_path(f),
                    t->name);
    return CAIRN_OK;
}

static cairn_status load_bytes(const cairn_file *f, uint64_t i, const cairn_tensor_info *t,
                               tensor_bytes *out, cairn_error *err)
{
    static const unsigned char none[1];
    const void *view = NULL;
    out->data = none;
    out->owned = NULL;
    out->check = CAIRN_OK;
    if (t->raw_size == 0)
        return CAIRN_OK;
    /* Checked as cat and convert check them, in the same pass; bytes whose
     * checksum fails are still compared (a damaged tensor shows where it
     * differs), and diff_values reports the failure when nothing differs. */
    if (t->zero_copy) {
        out->check = cairn_tensor_verify(f, i, &out->why);
        if (cairn_tensor_data(f, i, &view, err) == CAIRN_OK) {
            out->data = view;
            return CAIRN_OK;
        }
    }
    if (t->raw_size > RANGED_MIN && cairn_tensor_ranged(f, i)) {
        out->data = NULL;
        return open_windows(f, i, t, out, err);
    }
    if ((uint64_t)(size_t)t->raw_size != t->raw_size || !(out->owned = malloc((size_t)t->raw_size)))
        return fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': out of memory (%llu bytes)",
                    cairn_file_path(f), t->name, (unsigned long long)t->raw_size);
    out->data = out->owned;
    cairn_status st = cairn_tensor_read(f, i, t->dtype, out->owned, (size_t)t->raw_size,
                                        CAIRN_READ_VERIFY, &out->why);
    if (st == CAIRN_E_CHECKSUM) { /* the bytes as stored, unchecked */
        out->check = st;
        return cairn_tensor_read(f, i, t->dtype, out->owned, (size_t)t->raw_size, 0, err);
    }
    if (st != CAIRN_OK && err)
        *err = out->why;
    return st;
}

/* Elements [off, off + n) of a tensor (n at most a window): a pointer
 * into the whole tensor, or the window read. */
static cairn_status window_at(const tensor_bytes *b, const cairn_tensor_info *t, uint64_t off,
                              size_t n, const unsigned char **out, cairn_error *err)
{
    size_t esz = cairn_dtype_size(t->dtype);
    if (b->data) {
        *out = b->data + off * esz;
        return CAIRN_OK;
    }
    *out = b->owned;
    return cairn_tensor_read_range(b->f, b->index, off, n, t->dtype, b->owned, n * esz, 0, err);
}

/* ---------------------------------------------------- one slice */

typedef struct slice {
    const unsigned char *ra, *rb; /* stored bytes */
    const void *wa, *wb;          /* the same elements widened */
    size_t n, esz;
} slice;

static int bytes_differ(const slice *s, size_t k)
{
    return memcmp(s->ra + k * s->esz, s->rb + k * s->esz, s->esz) != 0;
}

static void note_diff(diff_stats *st, int has_nan)
{
    st->differing++;
    if (has_nan)
        st->nan_mismatch++;
}

/* Folds one non-NaN pair's |a-b| into max abs / max rel. */
static void note_real(diff_stats *st, double d, double abs_b, int a_nonzero)
{
    double rel = abs_b != 0 ? (isinf(d) ? INFINITY : d / abs_b) : a_nonzero ? INFINITY : 0;
    if (d > st->max_abs)
        st->max_abs = d;
    if (rel > st->max_rel)
        st->max_rel = rel;
}

/* numpy.isclose with equal_nan: Inf matches only itself. */
static int real_close(double x, double y, const diff_tolerance *tol)
{
    if (isnan(x) || isnan(y))
        return isnan(x) && isnan(y);
    if (x == y)
        return 1;
    if (isinf(x) || isinf(y))
        return 0;
    return fabs(x - y) <= tol->atol + tol->rtol * fabs(y);
}

static void compare_float(const slice *s, const diff_tolerance *tol, diff_stats *st)
{
    for (size_t k = 0; k < s->n; k++) {
        double x, y;
        memcpy(&x, (const char *)s->wa + k * 8, 8);
        memcpy(&y, (const char *)s->wb + k * 8, 8);
        int has_nan = isnan(x) || isnan(y);
        if (tol->numeric ? !real_close(x, y, tol) : bytes_differ(s, k))
            note_diff(st, has_nan);
        if (!has_nan)
            note_real(st, x == y ? 0 : fabs(x - y), fabs(y), x != 0);
    }
}

static int complex_close(const double x[2], const double y[2], const diff_tolerance *tol)
{
    int nan_x = isnan(x[0]) || isnan(x[1]), nan_y = isnan(y[0]) || isnan(y[1]);
    if (nan_x || nan_y)
        return nan_x && nan_y;
    if (x[0] == y[0] && x[1] == y[1])
        return 1;
    if (!isfinite(x[0]) || !isfinite(x[1]) || !isfinite(y[0]) || !isfinite(y[1]))
        return 0;
    return hypot(x[0] - y[0], x[1] - y[1]) <= tol->atol + tol->rtol * hypot(y[0], y[1]);
}

static void compare_complex(const slice *s, const diff_tolerance *tol, diff_stats *st)
{
    for (size_t k = 0; k < s->n; k++) {
        double x[2], y[2];
        memcpy(x, (const char *)s->wa + k * 16, 16);
        memcpy(y, (const char *)s->wb + k * 16, 16);
        int has_nan = isnan(x[0]) || isnan(x[1]) || isnan(y[0]) || isnan(y[1]);
        if (tol->numeric ? !complex_close(x, y, tol) : bytes_differ(s, k))
            note_diff(st, has_nan);
        if (!has_nan) {
            /* Equal parts contribute 0, also when they are infinite. */
            double dr = x[0] == y[0] ? 0 : x[0] - y[0], di = x[1] == y[1] ? 0 : x[1] - y[1];
            note_real(st, hypot(dr, di), hypot(y[0], y[1]), x[0] != 0 || x[1] != 0);
        }
    }
}

/* |a-b| <= atol + rtol*|b| with |a-b| exact: for an integer d, d <= bound
 * exactly when d <= floor(bound). */
static int int_close(uint64_t d, uint64_t abs_b, const diff_tolerance *tol)
{
    double bound = tol->atol + tol->rtol * (double)abs_b;
    if (bound >= 18446744073709551616.0) /* 2^64: above every difference */
        return 1;
    return d <= (uint64_t)bound;
}

static void note_int(diff_stats *st, uint64_t d, uint64_t abs_b)
{
    if (d > st->max_abs_int)
        st->max_abs_int = d;
    /* b == 0: d is |a|, so a != 0 exactly when d != 0. */
    double rel = abs_b ? (double)d / (double)abs_b : d ? INFINITY : 0;
    if (rel > st->max_rel)
        st->max_rel = rel;
}

static void compare_int(const slice *s, int is_signed, const diff_tolerance *tol, diff_stats *st)
{
    for (size_t k = 0; k < s->n; k++) {
        uint64_t d, abs_b;
        if (is_signed) {
            int64_t x, y;
            memcpy(&x, (const char *)s->wa + k * 8, 8);
            memcpy(&y, (const char *)s->wb + k * 8, 8);
            /* Unsigned arithmetic: I64 max - I64 min still fits. */
            d = x >= y ? (uint64_t)x - (uint64_t)y : (uint64_t)y - (uint64_t)x;
            abs_b = y < 0 ? 0 - (uint64_t)y : (uint64_t)y;
        } else {
            uint64_t x, y;
            memcpy(&x, (const char *)s->wa + k * 8, 8);
            memcpy(&y, (const char *)s->wb + k * 8, 8);
            d = x >= y ? x - y : y - x;
            abs_b = y;
        }
        if (tol->numeric ? !int_close(d, abs_b, tol) : bytes_differ(s, k))
            note_diff(st, 0);
        note_int(st, d, abs_b);
    }
}

/* ------------------------------------------------------------ public */

int diff_same_dtype_shape(const cairn_tensor_info *a, const cairn_tensor_info *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank)
        return 0;
    for (uint32_t d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

/* One window's elements, a slice at a time. */
static cairn_status compare_window(const unsigned char *ra, const unsigned char *rb, size_t count,
                                   const cairn_tensor_info *t, const diff_tolerance *tol,
                                   diff_stats *st, void **wa, void **wb, cairn_error *err)
{
    elem_class cls = class_of(t->dtype);
    cairn_dtype wide = wide_dtype(cls);
    size_t esz = cairn_dtype_size(t->dtype), wsz = cairn_dtype_size(wide);
    cairn_status rc = CAIRN_OK;
    for (size_t off = 0; rc == CAIRN_OK && off < count; off += SLICE) {
        slice s = {ra + off * esz, rb + off * esz, NULL, NULL, 0, esz};
        s.n = count - off < SLICE ? count - off : SLICE;
        if (memcmp(s.ra, s.rb, s.n * esz) == 0)
            continue; /* bitwise equal elements add nothing, in either mode */
        if (!*wa && (!(*wa = malloc(SLICE * wsz)) || !(*wb = malloc(SLICE * wsz))))
            return fail(err, CAIRN_E_NOMEM, "tensor '%s': out of memory", t->name);
        s.wa = *wa;
        s.wb = *wb;
        rc = cairn_convert(t->dtype, s.ra, wide, *wa, s.n, err);
        if (rc == CAIRN_OK)
            rc = cairn_convert(t->dtype, s.rb, wide, *wb, s.n, err);
        if (rc != CAIRN_OK)
            break;
        if (cls == CLASS_FLOAT)
            compare_float(&s, tol, st);
        else if (cls == CLASS_COMPLEX)
            compare_complex(&s, tol, st);
        else
            compare_int(&s, cls == CLASS_SIGNED, tol, st);
    }
    return rc;
}

static cairn_status compare_all(const tensor_bytes *a, const tensor_bytes *b,
                                const cairn_tensor_info *t, const diff_tolerance *tol,
                                diff_stats *st, cairn_error *err)
{
    uint64_t per = WINDOW_BYTES / cairn_dtype_size(t->dtype);
    void *wa = NULL, *wb = NULL; /* made for the first slice that differs */
    cairn_status rc = CAIRN_OK;
    for (uint64_t off = 0; rc == CAIRN_OK && off < t->count; off += per) {
        size_t n = t->count - off < per ? (size_t)(t->count - off) : (size_t)per;
        const unsigned char *ra, *rb;
        rc = window_at(a, t, off, n, &ra, err);
        if (rc == CAIRN_OK)
            rc = window_at(b, t, off, n, &rb, err);
        if (rc == CAIRN_OK)
            rc = compare_window(ra, rb, n, t, tol, st, &wa, &wb, err);
    }
    free(wa);
    free(wb);
    return rc;
}

cairn_status diff_values(const cairn_file *fa, uint64_t ia, const cairn_tensor_info *ta,
                         const cairn_file *fb, uint64_t ib, const cairn_tensor_info *tb,
                         const diff_tolerance *tol, diff_stats *out, cairn_error *err)
{
    memset(out, 0, sizeof *out);
    if (!diff_same_dtype_shape(ta, tb))
        return fail(err, CAIRN_E_ARG, "tensor '%s': dtype or shape differ", ta->name);
    out->count = ta->count;
    out->is_integer = class_of(ta->dtype) >= CLASS_SIGNED;
    tensor_bytes a = {0}, b = {0};
    cairn_status rc = load_bytes(fa, ia, ta, &a, err);
    if (rc == CAIRN_OK)
        rc = load_bytes(fb, ib, tb, &b, err);
    if (rc == CAIRN_OK)
        rc = compare_all(&a, &b, ta, tol, out, err);
    /* equal values from bytes whose checksum fails are not "identical" */
    if (rc == CAIRN_OK && !out->differing && (a.check != CAIRN_OK || b.check != CAIRN_OK)) {
        rc = a.check != CAIRN_OK ? a.check : b.check;
        if (err)
            *err = a.check != CAIRN_OK ? a.why : b.why;
    }
    if (out->is_integer)
        out->max_abs = (double)out->max_abs_int;
    free(a.owned);
    free(b.owned);
    if (rc != CAIRN_OK) {
        diff_stats zero = {0};
        *out = zero;
    }
    return rc;
}
