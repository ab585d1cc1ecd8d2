/* test_params.c -- parameter sets: save/load round trips (path and memory),
 * strict and non-strict reports with exact contents, dtype conversion only
 * when allowed, prefixes, renames and a schema-versioned migration. */
#include "testutil.h"

#include <cairn.h>
#include <math.h>

static const char *dir;

static char *path_of(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* A tiny two-layer model whose buffers are registered by name. */
typedef struct model {
    float w1[4][3], b1[4], w2[2][4], b2[2];
    int64_t steps;
} model;

static cairn_params *bind(model *m, const char *prefix)
{
    cairn_params *p = cairn_params_new();
    cairn_error err;
    uint64_t d_w1[2] = {4, 3}, d_b1 = 4, d_w2[2] = {2, 4}, d_b2 = 2;
    char name[64];
#define REG(n, dt, r, d, ptr)                                              \
    snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", n);          \
    CHECK_OK(cairn_params_add(p, name, dt, r, d, ptr, &err));
    REG("fc1.weight", CAIRN_F32, 2, d_w1, m->w1);
    REG("fc1.bias", CAIRN_F32, 1, &d_b1, m->b1);
    REG("fc2.weight", CAIRN_F32, 2, d_w2, m->w2);
    REG("fc2.bias", CAIRN_F32, 1, &d_b2, m->b2);
    REG("steps", CAIRN_I64, 0, NULL, &m->steps);
#undef REG
    return p;
}

static void init_model(model *m, float base)
{
    float *f = &m->w1[0][0];
    size_t n = (sizeof *m - sizeof m->steps) / sizeof(float);
    for (size_t i = 0; i < n; i++)
        f[i] = base + (float)i * 0.25f;
    m->steps = (int64_t)base * 100;
}

static cairn_file *open_path(const char *path)
{
    cairn_file *f = NULL;
    cairn_error err;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    return f;
}

static void test_round_trip(void)
{
    model a, b;
    init_model(&a, 1);
    init_model(&b, 9);
    cairn_params *pa = bind(&a, NULL), *pb = bind(&b, NULL);
    cairn_error err;
    CHECK(cairn_params_count(pa) == 5);
    CHECK_OK(cairn_params_save(pa, path_of("model.cairn"), NULL, &err));
    void *mem;
    size_t size;
    CHECK_OK(cairn_params_save_memory(pa, NULL, &mem, &size, &err));
    cairn_file *f = open_path(path_of("model.cairn"));
    cairn_load_report *r;
    cairn_load_opts o = {.struct_size = sizeof o, .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
    CHECK_OK(cairn_params_load(pb, f, &o, &r, &err));
    CHECK(cairn_load_report_loaded(r) == 5 && cairn_load_report_count(r) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    cairn_load_report_free(r);
    cairn_file_close(f);
    /* from memory */
    init_model(&b, 5);
    CHECK_OK(cairn_file_open_memory(mem, size, NULL, &f, &err));
    CHECK_OK(cairn_params_load(pb, f, &o, NULL, &err));
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    cairn_file_close(f);
    cairn_free(mem);
    /* accessors */
    const char *name;
    cairn_dtype dt;
    uint32_t rank;
    const uint64_t *dims;
    void *data;
    CHECK_OK(cairn_params_at(pa, 2, &name, &dt, &rank, &dims, &data, &err));
    CHECK(strcmp(name, "fc2.weight") == 0 && dt == CAIRN_F32 && rank == 2 && dims[0] == 2 &&
          data == (void *)a.w2);
    CHECK_ST(cairn_params_at(pa, 5, &name, NULL, NULL, NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    CHECK_ST(cairn_params_add(pa, "fc1.bias", CAIRN_F32, 0, NULL, a.b1, &err), CAIRN_E_EXISTS);
    cairn_params_free(pa);
    cairn_params_free(pb);
}

/* The saved file differs from the model in every way at once. */
static void test_strict_and_lenient_reports(void)
{
    cairn_error err;
    cairn_writer *w;
    float w1[4][3] = {{0}}, w2_wrong[4][2] = {{0}}, extra[3] = {7, 8, 9};
    double b1[4] = {1, 2, 3, 4};
    uint64_t d_w1[2] = {4, 3}, d_w2[2] = {4, 2}, d3 = 3, d4 = 4;
    for (int i = 0; i < 12; i++)
        w1[i / 3][i % 3] = (float)i;
    CHECK_OK(cairn_writer_open_path(path_of("other.cairn"), NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "fc1.weight", CAIRN_F32, 2, d_w1, w1, &err));   /* fine */
    CHECK_OK(cairn_writer_add(w, "fc1.bias", CAIRN_F64, 1, &d4, b1, &err));      /* dtype */
    CHECK_OK(cairn_writer_add(w, "fc2.weight", CAIRN_F32, 2, d_w2, w2_wrong, &err)); /* shape */
    CHECK_OK(cairn_writer_add(w, "fc3.weight", CAIRN_F32, 1, &d3, extra, &err));  /* unexpected */
    CHECK_OK(cairn_writer_commit(w, &err));                 /* fc2.bias and steps: missing */

    model m, before;
    init_model(&m, 3);
    before = m;
    cairn_params *p = bind(&m, NULL);
    cairn_file *f = open_path(path_of("other.cairn"));
    cairn_load_report *r;
    cairn_load_opts strict = {.struct_size = sizeof strict, .flags = CAIRN_LOAD_STRICT};
    CHECK_ST(cairn_params_load(p, f, &strict, &r, &err), CAIRN_E_MISMATCH);
    CHECK(memcmp(&m, &before, sizeof m) == 0); /* nothing changed */
    CHECK(strstr(err.message, "5 problems") != NULL);
    CHECK(cairn_load_report_loaded(r) == 0);
    static const struct {
        cairn_mismatch_kind kind;
        const char *name, *file_name, *text;
    } want[5] = {
        {CAIRN_MISMATCH_MISSING, "fc2.bias", NULL, "missing tensor 'fc2.bias'"},
        {CAIRN_MISMATCH_MISSING, "steps", NULL, "missing tensor 'steps'"},
        {CAIRN_MISMATCH_UNEXPECTED, NULL, "fc3.weight", "unexpected tensor 'fc3.weight'"},
        {CAIRN_MISMATCH_SHAPE, "fc2.weight", "fc2.weight",
         "shape of 'fc2.weight': file has [4, 2], model has [2, 4]"},
        {CAIRN_MISMATCH_DTYPE, "fc1.bias", "fc1.bias",
         "dtype of 'fc1.bias': file has F64, model has F32"},
    };
    CHECK(cairn_load_report_count(r) == 5);
    for (size_t i = 0; i < 5 && i < cairn_load_report_count(r); i++) {
        cairn_mismatch_kind kind;
        const char *name, *file_name, *text;
        CHECK_OK(cairn_load_report_at(r, i, &kind, &name, &file_name, &text, &err));
        CHECK(kind == want[i].kind);
        CHECK((!name && !want[i].name) || (name && want[i].name && !strcmp(name, want[i].name)));
        CHECK((!file_name && !want[i].file_name) ||
              (file_name && want[i].file_name && !strcmp(file_name, want[i].file_name)));
        CHECK(strstr(text, want[i].text) == text);
    }
    cairn_load_report_free(r);

    /* non-strict: loads fc1.weight only; the same five problems are reported */
    CHECK_OK(cairn_params_load(p, f, NULL, &r, &err));
    CHECK(cairn_load_report_loaded(r) == 1 && cairn_load_report_count(r) == 5);
    CHECK(memcmp(m.w1, w1, sizeof w1) == 0 && memcmp(m.b1, before.b1, sizeof m.b1) == 0);
    cairn_load_report_free(r);

    /* with conversion allowed, the F64 bias loads into F32 too */
    cairn_load_opts conv = {.struct_size = sizeof conv, .flags = CAIRN_LOAD_CONVERT};
    CHECK_OK(cairn_params_load(p, f, &conv, &r, &err));
    CHECK(cairn_load_report_loaded(r) == 2 && cairn_load_report_count(r) == 4);
    CHECK(m.b1[0] == 1.0f && m.b1[3] == 4.0f);
    cairn_load_report_free(r);
    cairn_file_close(f);
    cairn_params_free(p);
}

static void test_prefixes_and_renames(void)
{
    model a, b;
    init_model(&a, 2);
    cairn_error err;
    /* saved by a multi-GPU wrapper: every name starts with "module." */
    cairn_params *pa = bind(&a, "module.");
    CHECK_OK(cairn_params_save(pa, path_of("wrapped.cairn"), NULL, &err));
    cairn_params_free(pa);
    init_model(&b, 0);
    cairn_params *pb = bind(&b, "net.");
    cairn_file *f = open_path(path_of("wrapped.cairn"));
    cairn_load_opts o = {.struct_size = sizeof o, .flags = CAIRN_LOAD_STRICT};
    o.strip_prefix = "module.";
    o.add_prefix = "net.";
    CHECK_OK(cairn_params_load(pb, f, &o, NULL, &err));
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    cairn_file_close(f);
    cairn_params_free(pb);

    /* explicit rename map; and `prefix` selects one part of a bigger archive */
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(path_of("parts.cairn"), NULL, &w, &err));
    cairn_params *pa2 = bind(&a, NULL);
    CHECK_OK(cairn_params_write(pa2, w, "params/", &err));
    CHECK_OK(cairn_params_write(pa2, w, "optimizer/momentum.", &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_params_free(pa2);
    f = open_path(path_of("parts.cairn"));
    CHECK(cairn_file_count(f) == 10);
    init_model(&b, 0);
    pb = bind(&b, NULL);
    const char *from[] = {"fc2.bias", "steps"}, *to[] = {"fc2.bias", "steps"};
    cairn_load_opts po = {.struct_size = sizeof po, .flags = CAIRN_LOAD_STRICT};
    po.prefix = "params/";
    po.rename_from = from;
    po.rename_to = to;
    po.rename_count = 2;
    CHECK_OK(cairn_params_load(pb, f, &po, NULL, &err));
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    /* a rename that makes two file tensors collide is refused before writing */
    const char *from2[] = {"fc2.bias"}, *to2[] = {"fc1.bias"};
    po.rename_from = from2;
    po.rename_to = to2;
    po.rename_count = 1;
    init_model(&b, 0);
    model snapshot = b;
    CHECK_ST(cairn_params_load(pb, f, &po, NULL, &err), CAIRN_E_EXISTS);
    CHECK(memcmp(&b, &snapshot, sizeof b) == 0);
    cairn_file_close(f);
    cairn_params_free(pb);
}

/* Theano's long-term advice: a file written when the fields were called W
 * and b (schema version 1) still loads after they became weights and bias. */
static const char *theano_migration(void *ctx, int64_t version, const char *name, char *buf,
                                    size_t size)
{
    int *calls = ctx;
    (*calls)++;
    if (version >= 2)
        return name;
    const char *dot = strrchr(name, '.');
    size_t stem = dot ? (size_t)(dot - name) + 1 : 0;
    const char *field = name + stem;
    const char *renamed = !strcmp(field, "W") ? "weights" : !strcmp(field, "b") ? "bias" : NULL;
    if (!strcmp(field, "obsolete_scratch"))
        return NULL; /* dropped from the load */
    if (!renamed)
        return name;
    snprintf(buf, size, "%.*s%s", (int)stem, name, renamed);
    return buf;
}

static void test_versioned_migration(void)
{
    cairn_error err;
    float W[2][2] = {{1, 2}, {3, 4}}, b[2] = {5, 6}, junk[1] = {0};
    uint64_t d2[2] = {2, 2}, d1 = 2, dj = 1;
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(path_of("theano_v1.cairn"), NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "layer0.W", CAIRN_F32, 2, d2, W, &err));
    CHECK_OK(cairn_writer_add(w, "layer0.b", CAIRN_F32, 1, &d1, b, &err));
    CHECK_OK(cairn_writer_add(w, "layer0.obsolete_scratch", CAIRN_F32, 1, &dj, junk, &err));
    cairn_value *meta = cairn_value_map(), *tag = cairn_value_map();
    CHECK_OK(cairn_value_set(tag, "kind", cairn_value_string("theano.Layer"), &err));
    CHECK_OK(cairn_value_set(tag, "schema_version", cairn_value_int(1), &err));
    CHECK_OK(cairn_value_set(meta, "type_tag", tag, &err));
    CHECK_OK(cairn_writer_set_metadata(w, meta, &err));
    cairn_value_free(meta);
    CHECK_OK(cairn_writer_commit(w, &err));

    float weights[2][2] = {{0}}, bias[2] = {0};
    cairn_params *p = cairn_params_new();
    CHECK_OK(cairn_params_add(p, "layer0.weights", CAIRN_F32, 2, d2, weights, &err));
    CHECK_OK(cairn_params_add(p, "layer0.bias", CAIRN_F32, 1, &d1, bias, &err));
    cairn_file *f = open_path(path_of("theano_v1.cairn"));
    cairn_load_report *r;
    /* without the migration, a strict load fails and names what is wrong */
    cairn_load_opts o = {.struct_size = sizeof o, .flags = CAIRN_LOAD_STRICT};
    CHECK_ST(cairn_params_load(p, f, &o, &r, &err), CAIRN_E_MISMATCH);
    CHECK(strstr(err.message, "layer0.W") && strstr(err.message, "layer0.weights"));
    CHECK(cairn_load_report_schema_version(r) == 1);
    cairn_load_report_free(r);
    int calls = 0;
    o.migrate = theano_migration;
    o.migrate_ctx = &calls;
    CHECK_OK(cairn_params_load(p, f, &o, &r, &err));
    CHECK(calls == 3 && cairn_load_report_loaded(r) == 2 && cairn_load_report_count(r) == 0);
    CHECK(memcmp(weights, W, sizeof W) == 0 && memcmp(bias, b, sizeof b) == 0);
    cairn_load_report_free(r);
    cairn_file_close(f);
    cairn_params_free(p);
}

static void test_verify_before_writing(void)
{
    model a, b;
    init_model(&a, 4);
    cairn_error err;
    cairn_params *pa = bind(&a, NULL);
    void *mem;
    size_t size;
    CHECK_OK(cairn_params_save_memory(pa, NULL, &mem, &size, &err));
    cairn_params_free(pa);
    /* damage the last-sorted tensor ("steps") so earlier ones would load first */
    cairn_file *f;
    cairn_tensor_info t;
    CHECK_OK(cairn_file_open_memory(mem, size, NULL, &f, &err));
    CHECK_OK(cairn_tensor_find(f, "steps", NULL, &t, &err));
    cairn_file_close(f);
    ((uint8_t *)mem)[t.offset] ^= 1;
    CHECK_OK(cairn_file_open_memory(mem, size, NULL, &f, &err));
    init_model(&b, 0);
    model snapshot = b;
    cairn_params *pb = bind(&b, NULL);
    cairn_load_opts o = {.struct_size = sizeof o, .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
    CHECK_ST(cairn_params_load(pb, f, &o, NULL, &err), CAIRN_E_CHECKSUM);
    CHECK(strstr(err.message, "steps") != NULL);
    CHECK(memcmp(&b, &snapshot, sizeof b) == 0);
    cairn_file_close(f);
    cairn_params_free(pb);
    cairn_free(mem);
}

int main(void)
{
    dir = tu_tmpdir("test_params");
    test_round_trip();
    test_strict_and_lenient_reports();
    test_prefixes_and_renames();
    test_versioned_migration();
    test_verify_before_writing();
    TEST_MAIN_END();
}
