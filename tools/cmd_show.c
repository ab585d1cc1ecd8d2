/* cmd_show.c -- `cairn show`: a tensor's statistics and first values. */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char show_help[] =
    "usage: cairn show FILE NAME [--count N] [--inert]\n"
    "\n"
    "Prints tensor NAME's dtype, shape, min/max/mean (over finite values),\n"
    "NaN and Inf counts, and its first N values (default 10). Complex tensors\n"
    "show statistics of their real and imaginary parts together.\n";

static int is_float(cairn_dtype d)
{
    return d == CAIRN_F64 || d == CAIRN_F32 || d == CAIRN_F16 || d == CAIRN_BF16 ||
           d == CAIRN_F8_E4M3 || d == CAIRN_F8_E5M2 || d == CAIRN_C64 || d == CAIRN_C128;
}

static int is_unsigned(cairn_dtype d)
{
    return d == CAIRN_U8 || d == CAIRN_U16 || d == CAIRN_U32 || d == CAIRN_U64 || d == CAIRN_BOOL;
}

typedef struct stats {
    uint64_t n_finite, n_nan, n_inf;
    double min, max, sum;
} stats;

static void add_value(stats *s, double v)
{
    if (isnan(v)) {
        s->n_nan++;
    } else if (isinf(v)) {
        s->n_inf++;
    } else {
        if (!s->n_finite || v < s->min)
            s->min = v;
        if (!s->n_finite || v > s->max)
            s->max = v;
        s->sum += v;
        s->n_finite++;
    }
}

static int run(int argc, char **argv)
{
    long shown = 10;
    const char *pos[2] = {0};
    int npos = 0;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            char *end;
            shown = strtol(argv[++i], &end, 10);
            if (*end || shown < 0)
                return cli_usage_error("--count wants a non-negative number, got '%s'", argv[i]);
        } else {
            int rc = cli_other_arg("show", argc, argv, &i, &flags, pos, &npos, 2);
            if (rc != EXIT_OK)
                return rc;
        }
    }
    if (npos != 2)
        return cli_usage_error("%s", "show: needs FILE and NAME");
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    int rc = cli_load_tensor(pos[0], pos[1], flags, &f, &t, &data, &owned);
    if (rc != EXIT_OK) {
        cairn_file_close(f);
        return rc;
    }
    char shape[256], safe_name[CLI_SAFE_MAX];
    cli_shape_text(&t, shape, sizeof shape);
    printf("name:   %s\ndtype:  %s\nshape:  %s\ncount:  %" PRIu64 "\n",
           cli_safe(t.name, t.name_len, safe_name, sizeof safe_name), cairn_dtype_name(t.dtype),
           shape, t.count);
    /* Convert in slices to F64 (floats), I64 or U64 (integers): memory stays
     * bounded however large the tensor is. */
    int fl = is_float(t.dtype), uns = is_unsigned(t.dtype);
    int cplx = t.dtype == CAIRN_C64 || t.dtype == CAIRN_C128;
    cairn_dtype wide = fl ? (cplx ? CAIRN_C128 : CAIRN_F64) : uns ? CAIRN_U64 : CAIRN_I64;
    size_t in_size = cairn_dtype_size(t.dtype), comps = cplx ? 2 : 1;
    enum { SLICE = 65536 };
    double *vals = malloc(SLICE * 2 * sizeof(double));
    stats s = {0};
    cairn_error err = {0};
    printf("first:  [");
    for (uint64_t i = 0; vals && i < t.count;) {
        size_t n = t.count - i < SLICE ? (size_t)(t.count - i) : SLICE;
        cairn_status st = cairn_convert(t.dtype, (const char *)data + i * in_size, wide, vals, n,
                                        &err);
        if (st != CAIRN_OK) {
            rc = cli_report(st, &err);
            break;
        }
        for (size_t k = 0; k < n * comps; k++) {
            double v;
            if (fl) {
                v = vals[k];
            } else if (uns) {
                uint64_t u;
                memcpy(&u, &vals[k], 8);
                v = (double)u;
            } else {
                int64_t x;
                memcpy(&x, &vals[k], 8);
                v = (double)x;
            }
            add_value(&s, v);
            uint64_t elem = i + k / comps;
            if ((long)elem < shown) {
                if (cplx && k % 2 == 0)
                    printf("%s(%.8g", elem ? ", " : "", v);
                else if (cplx)
                    printf("%+.8gj)", v);
                else if (fl)
                    printf("%s%.8g", elem ? ", " : "", v);
                else if (uns)
                    { uint64_t u; memcpy(&u, &vals[k], 8); printf("%s%" PRIu64, elem ? ", " : "", u); }
                else
                    { int64_t x; memcpy(&x, &vals[k], 8); printf("%s%" PRId64, elem ? ", " : "", x); }
            }
        }
        i += n;
    }
    printf("%s]\n", (long)t.count > shown ? ", ..." : "");
    free(vals);
    if (s.n_finite)
        printf("min:    %.8g\nmax:    %.8g\nmean:   %.8g\n", s.min, s.max, s.sum / (double)s.n_finite);
    else
        printf("min:    -\nmax:    -\nmean:   -\n");
    printf("nan:    %" PRIu64 "\ninf:    %" PRIu64 "\n", s.n_nan, s.n_inf);
    free(owned);
    cairn_file_close(f);
    return rc;
}

const cli_command cli_cmd_show = {
    "show",
    "  show FILE NAME         dtype, shape, min/max/mean, NaN/Inf counts, first values\n",
    show_help,
    run,
};
