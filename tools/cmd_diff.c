/* cmd_diff.c -- `cairn diff A B`: tensors and metadata compared, exit 0 when identical. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff_meta.h"
#include "diff_values.h"

/* ----------------------------------------------------------------- diff */

static const char diff_help[] =
    "usage: cairn diff A B [--atol X] [--rtol X] [--tensors-only] [--json] [--inert]\n"
    "\n"
    "--inert reads pickle or joblib files as inert data (nothing in them is run).\n"
    "Compares two files of any format cairn opens: tensors by name (file order\n"
    "and alignment do not matter), then the metadata trees. Prints one line per\n"
    "difference, grouped in this order and sorted by name within each group:\n"
    "  only in A: NAME (DTYPE [SHAPE])\n"
    "  only in B: NAME (DTYPE [SHAPE])\n"
    "  dtype/shape: NAME: DTYPE [SHAPE] vs DTYPE [SHAPE]\n"
    "  values: NAME: K of N elements differ, max abs X, max rel Y[, M with NaN]\n"
    "  metadata: only in A: PATH: VALUE\n"
    "  metadata: only in B: PATH: VALUE\n"
    "  metadata: PATH: VALUE vs VALUE\n"
    "then \"identical\" or \"N differences\" (\"1 difference\"). Exit 0 when\n"
    "identical, 1 when not (or on bad input), 2 usage error, 3 I/O error.\n"
    "\n"
    "Without tolerances elements compare bit for bit: -0.0 differs from 0.0 and\n"
    "two NaNs are equal only when their bits are. Giving --atol or --rtol (even\n"
    "0) compares numerically, like numpy.isclose(a, b, rtol, atol, equal_nan=True):\n"
    "equal when |a-b| <= atol + rtol*|b|, so -0.0 == 0.0, NaN == NaN, and Inf\n"
    "equals only the same Inf. Integer differences are exact.\n"
    "Max abs is the largest |a-b| and max rel the largest |a-b|/|b| over every\n"
    "element pair without a NaN; where b == 0 and a != 0 the relative\n"
    "difference is inf. 'M with NaN' counts differing elements with a NaN on\n"
    "either side. Tensors whose dtype or shape changed are not compared by\n"
    "value. Metadata paths read config.lr, history[3].loss, [\"odd key\"];\n"
    "maps compare as key sets, floats bit for bit (tolerances do not apply).\n"
    "  --atol X         absolute tolerance (default 0)\n"
    "  --rtol X         relative tolerance (default 0)\n"
    "  --tensors-only   skip the metadata comparison\n"
    "  --json           print the report as one JSON object instead\n";

typedef enum tensor_change { ONLY_A, ONLY_B, DTYPE_SHAPE, VALUES } tensor_change;

typedef struct indexed_info {
    uint64_t index;
    cairn_tensor_info t;
} indexed_info;

/* One differing tensor. The infos point into the sorted lists and their
 * names are borrowed from the open files. */
typedef struct tensor_diff {
    tensor_change kind;
    const indexed_info *a, *b; /* NULL on the side that lacks the tensor */
    diff_stats stats;          /* VALUES only */
} tensor_diff;

typedef struct diff_opts {
    const char *path[2];
    diff_tolerance tol;
    int tensors_only, as_json;
    unsigned open_flags; /* --inert */
} diff_opts;

/* Byte order of names, the order of the native index. */
static int name_cmp(const cairn_tensor_info *a, const cairn_tensor_info *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    return c ? c : (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static int indexed_cmp(const void *x, const void *y)
{
    return name_cmp(&((const indexed_info *)x)->t, &((const indexed_info *)y)->t);
}

/* Every tensor's info, sorted by name: not every format stores tensors in
 * name order, and the files may hold them in different orders. */
static int sorted_infos(cairn_file *f, indexed_info **out, uint64_t *n)
{
    cairn_error err = {0};
    *n = cairn_file_count(f);
    *out = malloc((size_t)(*n ? *n : 1) * sizeof **out);
    if (!*out)
        return fprintf(stderr, "%s: %s: out of memory\n", cli_prog, cairn_file_path(f)), EXIT_IO;
    for (uint64_t i = 0; i < *n; i++) {
        (*out)[i].index = i;
        cairn_status st = cairn_tensor_info_at(f, i, &(*out)[i].t, &err);
        if (st != CAIRN_OK)
            return cli_report(st, &err);
    }
    qsort(*out, (size_t)*n, sizeof **out, indexed_cmp);
    return EXIT_OK;
}

/* Compares one tensor present in both files; adds an entry if it differs. */
static int diff_pair(cairn_file *const f[2], const indexed_info *a, const indexed_info *b,
                     const diff_tolerance *tol, tensor_diff *out, size_t *nout)
{
    if (!diff_same_dtype_shape(&a->t, &b->t)) {
        out[(*nout)++] = (tensor_diff){DTYPE_SHAPE, a, b, {0}};
        return EXIT_OK;
    }
    cairn_error err = {0};
    diff_stats s;
    cairn_status st = diff_values(f[0], a->index, &a->t, f[1], b->index, &b->t, tol, &s, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    if (s.differing)
        out[(*nout)++] = (tensor_diff){VALUES, a, b, s};
    return EXIT_OK;
}

/* Walks both sorted lists together; `out` has room for na + nb entries. */
static int diff_tensors(cairn_file *const f[2], const indexed_info *ia, uint64_t na,
                        const indexed_info *ib, uint64_t nb, const diff_tolerance *tol,
                        tensor_diff *out, size_t *nout)
{
    uint64_t i = 0, j = 0;
    int rc = EXIT_OK;
    *nout = 0;
    while (rc == EXIT_OK && (i < na || j < nb)) {
        int c = i == na ? 1 : j == nb ? -1 : name_cmp(&ia[i].t, &ib[j].t);
        if (c < 0)
            out[(*nout)++] = (tensor_diff){ONLY_A, &ia[i++], NULL, {0}};
        else if (c > 0)
            out[(*nout)++] = (tensor_diff){ONLY_B, NULL, &ib[j++], {0}};
        else
            rc = diff_pair(f, &ia[i++], &ib[j++], tol, out, nout);
    }
    return rc;
}

/* Tensor names as they are, but control bytes as \xNN: one line per entry. */
static void put_name(const cairn_tensor_info *t)
{
    for (size_t i = 0; i < t->name_len; i++) {
        unsigned char c = (unsigned char)t->name[i];
        if (c < 0x20 || c == 0x7F)
            printf("\\x%02X", c);
        else
            putchar(c);
    }
}

static void put_dtype_shape(const cairn_tensor_info *t)
{
    char shape[256];
    cli_shape_text(t, shape, sizeof shape);
    printf("%s %s", cairn_dtype_name(t->dtype), shape);
}

static void real_text(double v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "nan");
    else if (isinf(v))
        snprintf(buf, size, "inf");
    else
        snprintf(buf, size, "%.6g", v);
}

static void print_values_line(const tensor_diff *d)
{
    const diff_stats *s = &d->stats;
    char abs_text[32], rel_text[32];
    if (s->is_integer)
        snprintf(abs_text, sizeof abs_text, "%" PRIu64, s->max_abs_int);
    else
        real_text(s->max_abs, abs_text, sizeof abs_text);
    real_text(s->max_rel, rel_text, sizeof rel_text);
    printf("values: ");
    put_name(&d->a->t);
    printf(": %" PRIu64 " of %" PRIu64 " elements differ, max abs %s, max rel %s", s->differing,
           s->count, abs_text, rel_text);
    if (s->nan_mismatch)
        printf(", %" PRIu64 " with NaN", s->nan_mismatch);
    putchar('\n');
}

static void print_tensor_diff(const tensor_diff *d)
{
    switch (d->kind) {
    case ONLY_A:
    case ONLY_B: {
        const cairn_tensor_info *t = d->kind == ONLY_A ? &d->a->t : &d->b->t;
        printf("only in %c: ", d->kind == ONLY_A ? 'A' : 'B');
        put_name(t);
        printf(" (");
        put_dtype_shape(t);
        printf(")\n");
        break;
    }
    case DTYPE_SHAPE:
        printf("dtype/shape: ");
        put_name(&d->a->t);
        printf(": ");
        put_dtype_shape(&d->a->t);
        printf(" vs ");
        put_dtype_shape(&d->b->t);
        putchar('\n');
        break;
    case VALUES: print_values_line(d); break;
    }
}

static int print_meta_line(void *ctx, diff_meta_kind kind, const char *path, const cairn_value *a,
                           const cairn_value *b)
{
    char va[512], vb[512];
    if (kind == DIFF_META_ONLY_A || kind == DIFF_META_ONLY_B) {
        diff_meta_render(kind == DIFF_META_ONLY_A ? a : b, va, sizeof va);
        printf("metadata: only in %c: %s: %s\n", kind == DIFF_META_ONLY_A ? 'A' : 'B', path, va);
    } else {
        diff_meta_render(a, va, sizeof va);
        diff_meta_render(b, vb, sizeof vb);
        printf("metadata: %s: %s vs %s\n", path, va, vb);
    }
    return 0;
}

/* ------------------------------------------------------- diff --json */

static json_t *tensor_json(const cairn_tensor_info *t)
{
    return json_pack("{s:s%, s:s, s:o}", "name", t->name, t->name_len, "dtype",
                     cairn_dtype_name(t->dtype), "shape", cli_shape_json(t));
}

/* A JSON number, or a string for what JSON numbers cannot carry ("inf",
 * "nan", integers above 2^63-1 written exactly). */
static json_t *number_json(double v)
{
    char text[32];
    if (isfinite(v))
        return json_real(v);
    real_text(v, text, sizeof text);
    return json_string(text);
}

static json_t *max_abs_json(const diff_stats *s)
{
    char text[32];
    if (!s->is_integer)
        return number_json(s->max_abs);
    if (s->max_abs_int <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)s->max_abs_int);
    snprintf(text, sizeof text, "%" PRIu64, s->max_abs_int);
    return json_string(text);
}

static json_t *tensor_diff_json(const tensor_diff *d)
{
    const diff_stats *s = &d->stats;
    switch (d->kind) {
    case ONLY_A: return tensor_json(&d->a->t);
    case ONLY_B: return tensor_json(&d->b->t);
    case DTYPE_SHAPE:
        return json_pack("{s:s%, s:{s:s, s:o}, s:{s:s, s:o}}", "name", d->a->t.name,
                         d->a->t.name_len, "a", "dtype", cairn_dtype_name(d->a->t.dtype), "shape",
                         cli_shape_json(&d->a->t), "b", "dtype", cairn_dtype_name(d->b->t.dtype),
                         "shape", cli_shape_json(&d->b->t));
    case VALUES:
        return json_pack("{s:s%, s:s, s:o, s:I, s:I, s:I, s:o, s:o}", "name", d->a->t.name,
                         d->a->t.name_len, "dtype", cairn_dtype_name(d->a->t.dtype), "shape",
                         cli_shape_json(&d->a->t), "count", (json_int_t)s->count, "differing",
                         (json_int_t)s->differing, "nan_mismatches", (json_int_t)s->nan_mismatch,
                         "max_abs", max_abs_json(s), "max_rel", number_json(s->max_rel));
    }
    return NULL;
}

/* A metadata node as the JSON `cairn meta` prints (tagged floats, bytes,
 * tensor references). */
static json_t *value_json(const cairn_value *v)
{
    char *text = NULL;
    if (cairn_value_to_json(v, 0, &text, NULL) != CAIRN_OK)
        return NULL;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    cairn_free(text);
    return j;
}

static int meta_json_entry(void *ctx, diff_meta_kind kind, const char *path, const cairn_value *a,
                           const cairn_value *b)
{
    static const char *const change[] = {"only_in_a", "only_in_b", "changed"};
    json_t *e = json_pack("{s:s, s:s}", "path", path, "change", change[kind]);
    if (!e)
        return -1;
    if ((a && json_object_set_new(e, "a", value_json(a)) != 0) ||
        (b && json_object_set_new(e, "b", value_json(b)) != 0)) {
        json_decref(e);
        return -1;
    }
    return json_array_append_new(ctx, e) != 0 ? -1 : 0; /* frees e on failure */
}

static json_t *diff_report_json(const diff_opts *o, const tensor_diff *d, size_t n,
                                json_t *meta, uint64_t total)
{
    static const char *const group[] = {"only_in_a", "only_in_b", "dtype_shape", "values"};
    json_t *r = json_pack("{s:s, s:s, s:b, s:I, s:s, s:f, s:f}", "a", o->path[0], "b", o->path[1],
                          "identical", total == 0, "differences", (json_int_t)total, "mode",
                          o->tol.numeric ? "numeric" : "bitwise", "atol", o->tol.atol, "rtol",
                          o->tol.rtol);
    for (int g = 0; r && g < 4; g++) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++)
            if ((int)d[i].kind == g && json_array_append_new(list, tensor_diff_json(&d[i])) != 0)
                list = (json_decref(list), NULL);
        if (!list || json_object_set_new(r, group[g], list) != 0)
            r = (json_decref(r), NULL);
    }
    if (r && json_object_set(r, "metadata", meta) != 0)
        r = (json_decref(r), NULL);
    return r;
}

/* -------------------------------------------------------- diff main */

static int parse_tolerance(const char *opt, const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || v < 0)
        return cli_usage_error("diff: %s wants a finite number >= 0, got '%s'", opt, text);
    *out = v;
    return EXIT_OK;
}

static int parse_diff_args(int argc, char **argv, diff_opts *o)
{
    int npos = 0, rc = EXIT_OK;
    for (int i = 1; i < argc && rc == EXIT_OK; i++) {
        if (!strcmp(argv[i], "--json")) {
            o->as_json = 1;
        } else if (!strcmp(argv[i], "--tensors-only")) {
            o->tensors_only = 1;
        } else if (!strcmp(argv[i], "--atol") || !strcmp(argv[i], "--rtol")) {
            if (i + 1 == argc)
                return cli_usage_error("diff: %s wants a number", argv[i]);
            o->tol.numeric = 1;
            rc = parse_tolerance(argv[i], argv[i + 1],
                                 !strcmp(argv[i], "--atol") ? &o->tol.atol : &o->tol.rtol);
            i++;
        } else {
            rc = cli_other_arg("diff", argc, argv, &i, &o->open_flags, o->path, &npos, 2);
        }
    }
    if (rc == EXIT_OK && npos != 2)
        return cli_usage_error("%s", "diff: needs A and B");
    return rc;
}

/* Reads both metadata trees (NULL when --tensors-only). */
static int read_trees(cairn_file *const f[2], int skip, cairn_value *tree[2])
{
    cairn_error err = {0};
    for (int s = 0; s < 2 && !skip; s++) {
        cairn_status st = cairn_file_read_metadata(f[s], &tree[s], &err);
        if (st != CAIRN_OK)
            return cli_report(st, &err);
    }
    return EXIT_OK;
}

/* Prints the report; *total receives the number of differences. */
static int print_diff(const diff_opts *o, const tensor_diff *d, size_t n, cairn_value *const tree[2],
                      uint64_t *total)
{
    uint64_t nmeta = 0;
    json_t *meta = o->as_json ? json_array() : NULL;
    int mrc = 0;
    if (!o->as_json)
        for (int g = ONLY_A; g <= VALUES; g++)
            for (size_t i = 0; i < n; i++)
                if ((int)d[i].kind == g)
                    print_tensor_diff(&d[i]);
    if (tree[0] && (!o->as_json || meta))
        mrc = diff_meta(tree[0], tree[1], o->as_json ? meta_json_entry : print_meta_line, meta,
                        &nmeta);
    *total = n + nmeta;
    if (mrc != 0 || (o->as_json && !meta)) {
        json_decref(meta);
        return fprintf(stderr, "%s: diff: out of memory\n", cli_prog), EXIT_IO;
    }
    if (!o->as_json) {
        if (*total)
            printf("%" PRIu64 " difference%s\n", *total, *total == 1 ? "" : "s");
        else
            printf("identical\n");
        return EXIT_OK;
    }
    json_t *r = diff_report_json(o, d, n, meta, *total);
    json_decref(meta);
    return r ? cli_print_json(r) : (fprintf(stderr, "%s: diff: out of memory\n", cli_prog), EXIT_IO);
}

static int run(int argc, char **argv)
{
    diff_opts o = {{NULL, NULL}, {0, 0, 0}, 0, 0, 0};
    int rc = parse_diff_args(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc;
    cairn_file *f[2] = {NULL, NULL};
    indexed_info *infos[2] = {NULL, NULL};
    uint64_t count[2] = {0, 0};
    cairn_value *tree[2] = {NULL, NULL};
    tensor_diff *d = NULL;
    size_t n = 0;
    uint64_t total = 0;
    for (int s = 0; s < 2 && rc == EXIT_OK; s++)
        rc = cli_open_input(o.path[s], o.open_flags, &f[s]);
    for (int s = 0; s < 2 && rc == EXIT_OK; s++)
        rc = sorted_infos(f[s], &infos[s], &count[s]);
    if (rc == EXIT_OK)
        rc = read_trees(f, o.tensors_only, tree);
    if (rc == EXIT_OK && !(d = malloc((size_t)(count[0] + count[1] + 1) * sizeof *d)))
        rc = (fprintf(stderr, "%s: diff: out of memory\n", cli_prog), EXIT_IO);
    if (rc == EXIT_OK)
        rc = diff_tensors(f, infos[0], count[0], infos[1], count[1], &o.tol, d, &n);
    if (rc == EXIT_OK)
        rc = print_diff(&o, d, n, tree, &total);
    free(d);
    for (int s = 0; s < 2; s++) {
        cairn_value_free(tree[s]);
        free(infos[s]);
        cairn_file_close(f[s]);
    }
    return rc != EXIT_OK ? rc : total ? EXIT_BAD_INPUT : EXIT_OK;
}


const cli_command cli_cmd_diff = {
    "diff",
    "  diff A B [--json]      compare tensors (names, dtypes, shapes, values) and metadata;\n"
    "                         exit 0 when identical, 1 when different\n",
    diff_help,
    run,
};
