/* test_diff.c -- `cairn diff`: the metadata tree walk, element comparison edge cases, and the CLI on files with metadata. */
#include "testutil.h"

/* The helpers are CLI sources, not library code: compile them in here. */
#include "../tools/diff_meta.c"
#include "../tools/diff_values.c"

#include <jansson.h>
#include <sys/wait.h>

/* ------------------------------------------------------ metadata walk */

static double double_of(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

/* Every callback as one line "KIND PATH: A | B", appended to a buffer. */
typedef struct collected {
    char text[8192];
    size_t len;
} collected;

static int collect(void *ctx, diff_meta_kind kind, const char *path, const cairn_value *a,
                   const cairn_value *b)
{
    static const char *const kinds[] = {"only-a", "only-b", "changed"};
    collected *c = ctx;
    char va[256] = "-", vb[256] = "-";
    if (a)
        diff_meta_render(a, va, sizeof va);
    if (b)
        diff_meta_render(b, vb, sizeof vb);
    c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "%s %s: %s | %s\n",
                               kinds[kind], path, va, vb);
    return 0;
}

static void set(cairn_value *map, const char *key, cairn_value *v)
{
    CHECK_OK(cairn_value_set(map, key, v, NULL));
}

static void append(cairn_value *list, cairn_value *v) { CHECK_OK(cairn_value_append(list, v, NULL)); }

static cairn_value *epoch(int64_t n, double loss)
{
    cairn_value *m = cairn_value_map();
    set(m, "epoch", cairn_value_int(n));
    set(m, "loss", cairn_value_float(loss));
    return m;
}

/* Two trees that differ in every way the walk distinguishes. */
static void build_trees(cairn_value **a, cairn_value **b)
{
    *a = cairn_value_map();
    *b = cairn_value_map();
    cairn_value *ca = cairn_value_map(), *cb = cairn_value_map();
    set(ca, "num_units", cairn_value_int(64));
    set(ca, "lr", cairn_value_float(0.1));
    set(ca, "gone", cairn_value_bool(1));
    set(cb, "lr", cairn_value_float(0.1)); /* other insertion order: not a difference */
    set(cb, "num_units", cairn_value_int(128));
    set(cb, "added", cairn_value_null());
    set(*a, "config", ca);
    set(*b, "config", cb);
    cairn_value *ha = cairn_value_list(), *hb = cairn_value_list();
    append(ha, epoch(0, 1.5));
    append(ha, epoch(1, 0.9));
    append(hb, epoch(0, 1.5));
    append(hb, epoch(1, 0.875));
    append(hb, epoch(2, 0.5));
    set(*a, "history", ha);
    set(*b, "history", hb);
    set(*a, "nan_same", cairn_value_float(double_of(0x7FF8000000000001ull)));
    set(*b, "nan_same", cairn_value_float(double_of(0x7FF8000000000001ull)));
    set(*a, "nan_other", cairn_value_float(double_of(0x7FF8000000000000ull)));
    set(*b, "nan_other", cairn_value_float(double_of(0xFFF8000000000000ull)));
    set(*a, "zero", cairn_value_float(0.0));
    set(*b, "zero", cairn_value_float(-0.0));
    set(*a, "one", cairn_value_int(1));
    set(*b, "one", cairn_value_float(1.0));
    set(*a, "odd key", cairn_value_string("x\"y"));
    set(*b, "odd key", cairn_value_string("x\"y"));
    set(*a, "a.b", cairn_value_bytes("\x01\x02", 2));
    set(*b, "a.b", cairn_value_bytes("\x01\x03", 2));
    set(*a, "x[0]", cairn_value_tensor_ref("w"));
    set(*b, "x[0]", cairn_value_tensor_ref("w2"));
    set(*a, "shape", cairn_value_list());
    set(*b, "shape", cairn_value_map()); /* reported once, not descended */
}

static void test_meta_walk(void)
{
    cairn_value *a, *b;
    build_trees(&a, &b);
    collected c = {{0}, 0};
    uint64_t n = 0;
    CHECK(diff_meta(a, b, collect, &c, &n) == 0);
    const char *want =
        "changed [\"a.b\"]: <2 bytes> | <2 bytes>\n"
        "only-b config.added: - | null\n"
        "only-a config.gone: true | -\n"
        "changed config.num_units: 64 | 128\n"
        "changed history[1].loss: 0.9 | 0.875\n"
        "only-b history[2]: - | <map of 2>\n"
        "changed nan_other: nan | nan:0xfff8000000000000\n"
        "changed one: 1 | 1.0\n"
        "changed shape: <list of 0> | <map of 0>\n"
        "changed [\"x[0]\"]: <tensor w> | <tensor w2>\n"
        "changed zero: 0.0 | -0.0\n";
    CHECK(strcmp(c.text, want) == 0);
    if (strcmp(c.text, want) != 0)
        fprintf(stderr, "got:\n%s", c.text);
    CHECK(n == 11);

    /* A tree equals itself and its clone; the walk is symmetric. */
    cairn_value *a2 = cairn_value_clone(a);
    collected same = {{0}, 0};
    CHECK(diff_meta(a, a2, collect, &same, &n) == 0 && n == 0 && same.len == 0);
    collected back = {{0}, 0};
    CHECK(diff_meta(b, a, collect, &back, &n) == 0 && n == 11);
    CHECK(strstr(back.text, "only-a history[2]: <map of 2> | -\n") != NULL);
    cairn_value_free(a2);
    cairn_value_free(a);
    cairn_value_free(b);
}

/* A non-zero callback result stops the walk and is returned. */
static int stop_at_first(void *ctx, diff_meta_kind kind, const char *path, const cairn_value *a,
                         const cairn_value *b)
{
    (*(int *)ctx)++;
    return 7;
}

static void test_meta_stop(void)
{
    cairn_value *a, *b;
    build_trees(&a, &b);
    int calls = 0;
    CHECK(diff_meta(a, b, stop_at_first, &calls, NULL) == 7);
    CHECK(calls == 1);
    cairn_value_free(a);
    cairn_value_free(b);
}

static void check_render(cairn_value *v, const char *want)
{
    char buf[256];
    diff_meta_render(v, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0);
    if (strcmp(buf, want) != 0)
        fprintf(stderr, "render: got '%s', wanted '%s'\n", buf, want);
    cairn_value_free(v);
}

static void test_render(void)
{
    check_render(cairn_value_float(0.1), "0.1");
    check_render(cairn_value_float(2.0), "2.0");
    check_render(cairn_value_float(1e20), "1e+20");
    check_render(cairn_value_float(1.0 / 3), "0.3333333333333333");
    check_render(cairn_value_float(double_of(0x7FF0000000000000ull)), "inf");
    check_render(cairn_value_float(double_of(0xFFF0000000000000ull)), "-inf");
    check_render(cairn_value_float(double_of(0x7FF8000000000000ull)), "nan");
    check_render(cairn_value_int(INT64_MIN), "-9223372036854775808");
    check_render(cairn_value_bool(0), "false");
    check_render(cairn_value_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    check_render(cairn_value_string_n("a\0b", 3), "\"a\\u0000b\"");
    char long_text[200];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    char want[80];
    snprintf(want, sizeof want, "\"%.60s\"...", long_text);
    check_render(cairn_value_string(long_text), want);
    /* A tiny buffer is cut, still terminated. */
    char tiny[4];
    cairn_value *v = cairn_value_string("abcdef");
    diff_meta_render(v, tiny, sizeof tiny);
    CHECK(strcmp(tiny, "\"ab") == 0);
    cairn_value_free(v);
}

/* ------------------------------------------------------ element values */

/* One rank-1 tensor "t" in an in-memory archive. */
typedef struct mem_tensor {
    void *bytes;
    cairn_file *f;
    cairn_tensor_info t;
} mem_tensor;

static void mem_open(mem_tensor *m, cairn_dtype dtype, uint64_t n, const void *data)
{
    cairn_writer *w = NULL;
    size_t size = 0;
    CHECK_OK(cairn_writer_open_memory(NULL, &w, NULL));
    CHECK_OK(cairn_writer_add(w, "t", dtype, 1, &n, data, NULL));
    CHECK_OK(cairn_writer_commit_memory(w, &m->bytes, &size, NULL));
    CHECK_OK(cairn_file_open_memory(m->bytes, size, NULL, &m->f, NULL));
    CHECK_OK(cairn_tensor_info_at(m->f, 0, &m->t, NULL));
}

static void mem_close(mem_tensor *m)
{
    cairn_file_close(m->f);
    cairn_free(m->bytes);
}

static diff_stats compare(cairn_dtype dtype, uint64_t n, const void *a, const void *b,
                          int numeric, double atol, double rtol)
{
    mem_tensor ma, mb;
    mem_open(&ma, dtype, n, a);
    mem_open(&mb, dtype, n, b);
    diff_tolerance tol = {numeric, atol, rtol};
    diff_stats s;
    cairn_error err = {0};
    CHECK_OK(diff_values(ma.f, 0, &ma.t, mb.f, 0, &mb.t, &tol, &s, &err));
    CHECK(s.count == n);
    mem_close(&ma);
    mem_close(&mb);
    return s;
}

static void test_values_floats(void)
{
    /* BF16, which NumPy cannot write: 1, NaN, -0, 2 vs 1, NaN, +0, 2.5. */
    uint16_t a[4] = {0x3F80, 0x7FC1, 0x8000, 0x4000}, b[4] = {0x3F80, 0x7FC1, 0x0000, 0x4020};
    diff_stats s = compare(CAIRN_BF16, 4, a, b, 0, 0, 0);
    CHECK(s.differing == 2 && s.nan_mismatch == 0);
    CHECK(s.max_abs == 0.5 && s.max_rel == 0.2);
    s = compare(CAIRN_BF16, 4, a, b, 1, 0, 0); /* numeric: -0 == 0 */
    CHECK(s.differing == 1 && s.max_abs == 0.5);
    s = compare(CAIRN_BF16, 4, a, b, 1, 0.5, 0);
    CHECK(s.differing == 0 && s.max_abs == 0.5); /* maxima span every pair */

    /* NaN payloads: bitwise they differ, numerically NaN == NaN. */
    uint32_t na[2] = {0x7FC00000, 0x7FC00001}, nb[2] = {0x7FC00000, 0x7FC00002};
    s = compare(CAIRN_F32, 2, na, nb, 0, 0, 0);
    CHECK(s.differing == 1 && s.nan_mismatch == 1 && s.max_abs == 0 && s.max_rel == 0);
    s = compare(CAIRN_F32, 2, na, nb, 1, 0, 0);
    CHECK(s.differing == 0);

    /* Infinities: Inf == Inf; 1 vs Inf is an infinite difference, also
     * with a huge rtol (numpy.isclose: Inf is only close to itself). */
    double inf = double_of(0x7FF0000000000000ull);
    double ia[3] = {inf, 1, inf}, ib[3] = {inf, inf, 1};
    s = compare(CAIRN_F64, 3, ia, ib, 0, 0, 0);
    CHECK(s.differing == 2 && isinf(s.max_abs) && isinf(s.max_rel));
    s = compare(CAIRN_F64, 3, ia, ib, 1, 0, 10);
    CHECK(s.differing == 2);

    /* b == 0, a != 0: relative difference inf. */
    double za[2] = {0, 3}, zb[2] = {0, 0};
    s = compare(CAIRN_F64, 2, za, zb, 0, 0, 0);
    CHECK(s.differing == 1 && s.max_abs == 3 && isinf(s.max_rel));

    /* F8_E4M3: 1.0 (0x38) vs 1.125 (0x39). */
    uint8_t fa[1] = {0x38}, fb[1] = {0x39};
    s = compare(CAIRN_F8_E4M3, 1, fa, fb, 0, 0, 0);
    CHECK(s.differing == 1 && s.max_abs == 0.125 && s.max_rel == 0.125 / 1.125);

    /* C64: |(1+1j) - (1+2j)| = 1, |b| = sqrt(5). */
    float ca[4] = {1, 1, 5, 5}, cb[4] = {1, 2, 5, 5};
    s = compare(CAIRN_C64, 2, ca, cb, 0, 0, 0);
    CHECK(s.differing == 1 && s.max_abs == 1 && fabs(s.max_rel - 1 / sqrt(5)) < 1e-15);
    s = compare(CAIRN_C64, 2, ca, cb, 1, 1, 0);
    CHECK(s.differing == 0);
}

static void test_values_integers(void)
{
    int64_t a[2] = {INT64_MIN, 5}, b[2] = {INT64_MAX, 5};
    diff_stats s = compare(CAIRN_I64, 2, a, b, 0, 0, 0);
    CHECK(s.is_integer && s.differing == 1 && s.max_abs_int == UINT64_MAX);
    int8_t ea[1] = {-128}, eb[1] = {127};
    s = compare(CAIRN_I8, 1, ea, eb, 0, 0, 0);
    CHECK(s.max_abs_int == 255 && s.max_rel == 255.0 / 127);
    uint64_t ua[3] = {UINT64_MAX, 0, 100}, ub[3] = {0, UINT64_MAX, 103};
    s = compare(CAIRN_U64, 3, ua, ub, 0, 0, 0);
    CHECK(s.differing == 3 && s.max_abs_int == UINT64_MAX && isinf(s.max_rel));
    /* |100-103| = 3: close with atol 3, not with 2.9; exact at the edge. */
    s = compare(CAIRN_U64, 1, ua + 2, ub + 2, 1, 3, 0);
    CHECK(s.differing == 0 && s.max_abs_int == 3);
    s = compare(CAIRN_U64, 1, ua + 2, ub + 2, 1, 2.9, 0);
    CHECK(s.differing == 1);
    /* 2^64-1 vs 2^64-2 with rtol 1e-30: the bound rounds to 0 -> differs. */
    uint64_t big_a[1] = {UINT64_MAX}, big_b[1] = {UINT64_MAX - 1};
    s = compare(CAIRN_U64, 1, big_a, big_b, 1, 0, 1e-30);
    CHECK(s.differing == 1 && s.max_abs_int == 1);
    uint8_t ba[2] = {1, 0}, bb[2] = {1, 1};
    s = compare(CAIRN_BOOL, 2, ba, bb, 0, 0, 0);
    CHECK(s.differing == 1 && s.max_abs_int == 1);
}

static void test_values_slices(void)
{
    /* More than one 64Ki slice, differences only in the last one, one side
     * read through pread (no zero-copy view) and one from memory. */
    enum { N = 200003 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++)
        a[i] = b[i] = (float)i;
    b[N - 1] += 1;
    b[150000] = -b[150000];
    const char *dir = tu_tmpdir("test_diff");
    char path[4200];
    snprintf(path, sizeof path, "%s/slices.cairn", dir);
    cairn_writer *w = NULL;
    uint64_t n = N;
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, NULL));
    CHECK_OK(cairn_writer_add(w, "t", CAIRN_F32, 1, &n, a, NULL));
    CHECK_OK(cairn_writer_commit(w, NULL));
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = CAIRN_OPEN_NO_MMAP, .format = CAIRN_FORMAT_AUTO};
    cairn_file *fa = NULL;
    cairn_tensor_info ta;
    CHECK_OK(cairn_file_open(path, &opts, &fa, NULL));
    CHECK_OK(cairn_tensor_info_at(fa, 0, &ta, NULL));
    CHECK(!ta.zero_copy);
    mem_tensor mb;
    mem_open(&mb, CAIRN_F32, N, b);
    CHECK(mb.t.zero_copy);
    diff_tolerance tol = {0, 0, 0};
    diff_stats s;
    CHECK_OK(diff_values(fa, 0, &ta, mb.f, 0, &mb.t, &tol, &s, NULL));
    CHECK(s.count == N && s.differing == 2);
    CHECK(s.max_abs == 300000 && s.max_rel == 2);
    /* A dtype or shape mismatch is the caller's error. */
    mem_tensor mc;
    mem_open(&mc, CAIRN_F32, 3, a);
    cairn_error err = {0};
    CHECK_ST(diff_values(fa, 0, &ta, mc.f, 0, &mc.t, &tol, &s, &err), CAIRN_E_ARG);
    CHECK(s.differing == 0 && strstr(err.message, "'t'") != NULL);
    mem_close(&mc);
    mem_close(&mb);
    cairn_file_close(fa);
    free(a);
    free(b);
}

/* ------------------------------------------------------------ the CLI */

static void write_archive(const char *path, const float *w, const cairn_value *meta)
{
    cairn_writer *wr = NULL;
    uint64_t n = 4;
    CHECK_OK(cairn_writer_open_path(path, NULL, &wr, NULL));
    CHECK_OK(cairn_writer_add(wr, "w", CAIRN_F32, 1, &n, w, NULL));
    CHECK_OK(cairn_writer_set_metadata(wr, meta, NULL));
    CHECK_OK(cairn_writer_commit(wr, NULL));
}

/* Runs `cairn diff ARGS`; returns its exit status and its stdout in `out`. */
static int run_diff(const char *cli, const char *args, char *out, size_t size)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' diff %s", cli, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t len = fread(out, 1, size - 1, p);
    out[len] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli(void)
{
    const char *cli = getenv("CAIRN_CLI");
    if (!cli || !*cli) {
        fprintf(stderr, "CAIRN_CLI not set: CLI checks skipped\n");
        return;
    }
    const char *dir = tu_tmpdir("test_diff");
    char a[4200], b[4200], c[4200], args[9000], out[8192];
    snprintf(a, sizeof a, "%s/a.cairn", dir);
    snprintf(b, sizeof b, "%s/b.cairn", dir);
    snprintf(c, sizeof c, "%s/c.cairn", dir);
    float wa[4] = {1, 2, 3, 4}, wb[4] = {1, 2, 3.5f, 4};
    cairn_value *ma = cairn_value_map(), *mb = cairn_value_map();
    cairn_value *ca = cairn_value_map(), *cb = cairn_value_map();
    set(ca, "num_units", cairn_value_int(64));
    set(cb, "num_units", cairn_value_int(128));
    set(cb, "dropout", cairn_value_float(0.25));
    set(ma, "config", ca);
    set(mb, "config", cb);
    cairn_value *ha = cairn_value_list(), *hb = cairn_value_list();
    append(ha, epoch(0, 1.5));
    append(ha, epoch(1, 0.9));
    append(hb, epoch(0, 1.5));
    append(hb, epoch(1, 0.875));
    append(hb, epoch(2, 0.5));
    set(ma, "history", ha);
    set(mb, "history", hb);
    set(ma, "odd key", cairn_value_int(1));
    set(mb, "odd key", cairn_value_int(2));
    set(ma, "tag", cairn_value_string("x"));
    set(mb, "tag", cairn_value_int(3));
    set(ma, "weights", cairn_value_tensor_ref("w"));
    set(mb, "weights", cairn_value_tensor_ref("w"));
    write_archive(a, wa, ma);
    write_archive(b, wb, mb);
    write_archive(c, wa, mb); /* A's tensors, B's metadata */

    snprintf(args, sizeof args, "'%s' '%s'", a, b);
    CHECK(run_diff(cli, args, out, sizeof out) == 1);
    const char *want = "values: w: 1 of 4 elements differ, max abs 0.5, max rel 0.142857\n"
                       "metadata: only in B: config.dropout: 0.25\n"
                       "metadata: config.num_units: 64 vs 128\n"
                       "metadata: history[1].loss: 0.9 vs 0.875\n"
                       "metadata: only in B: history[2]: <map of 2>\n"
                       "metadata: [\"odd key\"]: 1 vs 2\n"
                       "metadata: tag: \"x\" vs 3\n"
                       "7 differences\n";
    CHECK(strcmp(out, want) == 0);
    if (strcmp(out, want) != 0)
        fprintf(stderr, "cairn diff printed:\n%s", out);

    snprintf(args, sizeof args, "'%s' '%s' --tensors-only", a, c);
    CHECK(run_diff(cli, args, out, sizeof out) == 0);
    CHECK(strcmp(out, "identical\n") == 0);
    snprintf(args, sizeof args, "'%s' '%s'", a, c);
    CHECK(run_diff(cli, args, out, sizeof out) == 1);
    CHECK(strstr(out, "6 differences\n") != NULL && strstr(out, "values:") == NULL);
    snprintf(args, sizeof args, "'%s' '%s'", b, c);
    CHECK(run_diff(cli, args, out, sizeof out) == 1);
    CHECK(strcmp(out, "values: w: 1 of 4 elements differ, max abs 0.5, max rel 0.166667\n"
                      "1 difference\n") == 0);
    snprintf(args, sizeof args, "'%s' '%s'", a, a);
    CHECK(run_diff(cli, args, out, sizeof out) == 0);
    CHECK(strcmp(out, "identical\n") == 0);

    snprintf(args, sizeof args, "'%s' '%s' --json", a, b);
    CHECK(run_diff(cli, args, out, sizeof out) == 1);
    json_error_t jerr;
    json_t *r = json_loads(out, 0, &jerr);
    CHECK(r != NULL);
    json_t *meta = json_object_get(r, "metadata");
    CHECK(json_is_false(json_object_get(r, "identical")));
    CHECK(json_integer_value(json_object_get(r, "differences")) == 7);
    CHECK(json_array_size(meta) == 6);
    json_t *loss = json_array_get(meta, 2);
    CHECK(!strcmp(json_string_value(json_object_get(loss, "path")), "history[1].loss"));
    CHECK(!strcmp(json_string_value(json_object_get(loss, "change")), "changed"));
    CHECK(json_real_value(json_object_get(loss, "a")) == 0.9);
    CHECK(json_real_value(json_object_get(loss, "b")) == 0.875);
    json_t *added = json_array_get(meta, 3);
    CHECK(!strcmp(json_string_value(json_object_get(added, "change")), "only_in_b"));
    CHECK(json_object_get(added, "a") == NULL);
    CHECK(json_integer_value(json_object_get(json_object_get(added, "b"), "epoch")) == 2);
    json_decref(r);
    cairn_value_free(ma);
    cairn_value_free(mb);
}

int main(void)
{
    test_meta_walk();
    test_meta_stop();
    test_render();
    test_values_floats();
    test_values_integers();
    test_values_slices();
    test_cli();
    TEST_MAIN_END();
}
