/* test_model.c -- whole-model archives (every part, to a path and to memory,
 * and as separate skorch-style files) and several objects in one file read
 * back in order. */
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

typedef struct state {
    float w[3][2], b[3];
    float mom_w[3][2], mom_b[3];
    int64_t labels[2];
} state;

typedef struct bound {
    cairn_params *params, *opt, *attrs;
} bound;

static bound bind(state *s)
{
    bound b = {cairn_params_new(), cairn_params_new(), cairn_params_new()};
    cairn_error err;
    uint64_t dw[2] = {3, 2}, db = 3, dl = 2;
    CHECK_OK(cairn_params_add(b.params, "fc.weight", CAIRN_F32, 2, dw, s->w, &err));
    CHECK_OK(cairn_params_add(b.params, "fc.bias", CAIRN_F32, 1, &db, s->b, &err));
    CHECK_OK(cairn_params_add(b.opt, "fc.weight.momentum", CAIRN_F32, 2, dw, s->mom_w, &err));
    CHECK_OK(cairn_params_add(b.opt, "fc.bias.momentum", CAIRN_F32, 1, &db, s->mom_b, &err));
    CHECK_OK(cairn_params_add(b.attrs, "classes", CAIRN_I64, 1, &dl, s->labels, &err));
    return b;
}

static void unbind(bound *b)
{
    cairn_params_free(b->params);
    cairn_params_free(b->opt);
    cairn_params_free(b->attrs);
}

static void fill(state *s, float base)
{
    for (int i = 0; i < 6; i++) {
        s->w[i / 2][i % 2] = base + (float)i;
        s->mom_w[i / 2][i % 2] = -base - (float)i;
    }
    for (int i = 0; i < 3; i++)
        s->b[i] = base * 10 + (float)i, s->mom_b[i] = base / 8;
    s->labels[0] = 3;
    s->labels[1] = 7;
}

/* config, optimizer scalars, a history with a NaN, RNG bytes, data position */
static void values(cairn_value **config, cairn_value **opt, cairn_value **hist, cairn_value **rng,
                   cairn_value **pos)
{
    cairn_error err;
    *config = cairn_value_map();
    cairn_value_set(*config, "num_units", cairn_value_int(10), &err);
    cairn_value_set(*config, "dropout", cairn_value_float(0.2), &err);
    *opt = cairn_value_map();
    cairn_value_set(*opt, "kind", cairn_value_string("sgd"), &err);
    cairn_value_set(*opt, "lr", cairn_value_float(0.1), &err);
    cairn_value_set(*opt, "step", cairn_value_int(80), &err);
    *hist = cairn_value_list();
    for (int e = 1; e <= 3; e++) {
        cairn_value *rec = cairn_value_map();
        cairn_value_set(rec, "epoch", cairn_value_int(e), &err);
        cairn_value_set(rec, "valid_loss", cairn_value_float(e == 2 ? NAN : 1.0 / e), &err);
        cairn_value_set(rec, "event", cairn_value_string(e == 3 ? "cp" : ""), &err);
        cairn_value_append(*hist, rec, &err);
    }
    uint64_t words[4] = {1, 2, 3, UINT64_MAX};
    *rng = cairn_value_bytes(words, sizeof words);
    *pos = cairn_value_map();
    cairn_value_set(*pos, "epoch", cairn_value_int(3), &err);
    cairn_value_set(*pos, "batch", cairn_value_int(0), &err);
}

static void check_loaded_meta(const cairn_value *meta)
{
    int64_t i;
    double d;
    CHECK_OK(cairn_value_get_int(cairn_value_get(cairn_value_get(meta, "config"), "num_units"), &i));
    CHECK(i == 10);
    const cairn_value *hist = cairn_value_get(meta, "history");
    CHECK(cairn_value_count(hist) == 3);
    CHECK_OK(cairn_value_get_float(cairn_value_get(cairn_value_at(hist, 1), "valid_loss"), &d));
    CHECK(isnan(d));
    const void *bytes;
    size_t n;
    CHECK_OK(cairn_value_get_data(cairn_value_get(meta, "rng"), &bytes, &n));
    CHECK(n == 32 && ((const uint64_t *)bytes)[3] == UINT64_MAX);
    const cairn_value *tag = cairn_value_get(meta, "type_tag");
    CHECK_OK(cairn_value_get_int(cairn_value_get(tag, "schema_version"), &i));
    CHECK(i == 3);
}

static void test_whole_model(void)
{
    state s, back;
    fill(&s, 1);
    bound b = bind(&s);
    cairn_value *config, *opt, *hist, *rng, *pos;
    values(&config, &opt, &hist, &rng, &pos);
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = "mlp", .schema_version = 3,
                               .params = b.params, .optimizer_tensors = b.opt,
                               .attribute_tensors = b.attrs, .config = config, .optimizer = opt,
                               .history = hist, .rng = rng, .data_position = pos};
    cairn_error err;
    CHECK_OK(cairn_model_save(path_of("whole.cairn"), &parts, &err));
    void *mem;
    size_t size;
    CHECK_OK(cairn_model_save_memory(&parts, &mem, &size, &err));

    for (int from_memory = 0; from_memory < 2; from_memory++) {
        fill(&back, 0);
        bound lb = bind(&back);
        cairn_file *f;
        if (from_memory)
            CHECK_OK(cairn_file_open_memory(mem, size, NULL, &f, &err));
        else
            CHECK_OK(cairn_file_open(path_of("whole.cairn"), NULL, &f, &err));
        CHECK(cairn_file_count(f) == 5);
        cairn_model_parts want = {.struct_size = sizeof want, .kind = "mlp", .params = lb.params,
                                  .optimizer_tensors = lb.opt, .attribute_tensors = lb.attrs};
        cairn_load_opts o = {.struct_size = sizeof o, .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
        cairn_value *meta;
        CHECK_OK(cairn_model_load(f, &want, &o, &meta, &err));
        CHECK(memcmp(&s, &back, sizeof s) == 0);
        check_loaded_meta(meta);
        cairn_value_free(meta);
        /* the type tag is checked */
        want.kind = "resnet";
        CHECK_ST(cairn_model_load(f, &want, &o, NULL, &err), CAIRN_E_MISMATCH);
        CHECK(strstr(err.message, "'mlp'") && strstr(err.message, "resnet"));
        cairn_file_close(f);
        unbind(&lb);
    }
    cairn_free(mem);

    /* skorch-style separate files: each holds only its part */
    cairn_model_parts p_only = {.struct_size = sizeof p_only, .params = b.params};
    cairn_model_parts o_only = {.struct_size = sizeof o_only, .optimizer_tensors = b.opt,
                                .optimizer = opt};
    cairn_model_parts h_only = {.struct_size = sizeof h_only, .history = hist};
    CHECK_OK(cairn_model_save(path_of("f_params.cairn"), &p_only, &err));
    CHECK_OK(cairn_model_save(path_of("f_optimizer.cairn"), &o_only, &err));
    CHECK_OK(cairn_model_save(path_of("f_history.cairn"), &h_only, &err));
    cairn_file *f;
    CHECK_OK(cairn_file_open(path_of("f_history.cairn"), NULL, &f, &err));
    CHECK(cairn_file_count(f) == 0);
    cairn_value *meta;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK(cairn_value_get(meta, "history") && !cairn_value_get(meta, "config") &&
          !cairn_value_get(meta, "type_tag"));
    cairn_value_free(meta);
    cairn_file_close(f);
    /* loading params from the optimizer file: strict says the part is absent */
    fill(&back, 0);
    bound lb = bind(&back);
    CHECK_OK(cairn_file_open(path_of("f_optimizer.cairn"), NULL, &f, &err));
    cairn_model_parts want = {.struct_size = sizeof want, .params = lb.params,
                              .optimizer_tensors = lb.opt};
    cairn_load_opts strict = {.struct_size = sizeof strict, .flags = CAIRN_LOAD_STRICT};
    CHECK_ST(cairn_model_load(f, &want, &strict, NULL, &err), CAIRN_E_MISMATCH);
    CHECK(strstr(err.message, "no params part") != NULL);
    CHECK_OK(cairn_model_load(f, &want, NULL, NULL, &err)); /* lenient: loads what is there */
    CHECK(memcmp(back.mom_w, s.mom_w, sizeof s.mom_w) == 0 && back.w[0][0] == 0);
    cairn_file_close(f);
    unbind(&lb);

    cairn_value_free(config);
    cairn_value_free(opt);
    cairn_value_free(hist);
    cairn_value_free(rng);
    cairn_value_free(pos);
    unbind(&b);
}

/* Theano's pattern: obj1, obj2, obj3 dumped into one file, read in order. */
static void test_objects_in_order(void)
{
    cairn_error err;
    cairn_writer *w;
    CHECK_OK(cairn_writer_open_path(path_of("objects.cairn"), NULL, &w, &err));
    cairn_value *user = cairn_value_map();
    cairn_value_set(user, "note", cairn_value_string("set by the caller"), &err);
    CHECK_OK(cairn_writer_set_metadata(w, user, &err));
    cairn_value_free(user);
    float a[2] = {1, 2}, c[3] = {7, 8, 9};
    uint64_t d2 = 2, d3 = 3;
    for (int i = 0; i < 3; i++) {
        cairn_params *p = cairn_params_new();
        if (i == 0)
            CHECK_OK(cairn_params_add(p, "w", CAIRN_F32, 1, &d2, a, &err));
        if (i == 2)
            CHECK_OK(cairn_params_add(p, "w", CAIRN_F32, 1, &d3, c, &err));
        cairn_value *v = i == 1 ? cairn_value_string("just a value") : cairn_value_int(i);
        const char *kinds[3] = {"Layer", "Note", "Layer"};
        CHECK_OK(cairn_writer_append_object(w, kinds[i], v, i == 1 ? NULL : p, &err));
        cairn_value_free(v);
        cairn_params_free(p);
    }
    CHECK_OK(cairn_writer_commit(w, &err));

    cairn_file *f;
    CHECK_OK(cairn_file_open(path_of("objects.cairn"), NULL, &f, &err));
    cairn_value *list;
    CHECK_OK(cairn_file_read_objects(f, &list, &err));
    CHECK(cairn_value_count(list) == 3);
    const char *want_kind[3] = {"Layer", "Note", "Layer"};
    for (size_t i = 0; i < cairn_value_count(list) && i < 3; i++) {
        const cairn_value *o = cairn_value_at(list, i);
        const void *kind, *prefix;
        size_t kn, pn;
        CHECK_OK(cairn_value_get_data(cairn_value_get(o, "kind"), &kind, &kn));
        CHECK(kn == strlen(want_kind[i]) && memcmp(kind, want_kind[i], kn) == 0);
        CHECK_OK(cairn_value_get_data(cairn_value_get(o, "prefix"), &prefix, &pn));
        if (i == 1)
            continue;
        float got[3] = {0};
        uint64_t d = i == 0 ? 2 : 3;
        cairn_params *p = cairn_params_new();
        CHECK_OK(cairn_params_add(p, "w", CAIRN_F32, 1, &d, got, &err));
        cairn_load_opts o2 = {.struct_size = sizeof o2, .flags = CAIRN_LOAD_STRICT,
                              .prefix = (const char *)prefix};
        CHECK_OK(cairn_params_load(p, f, &o2, NULL, &err));
        CHECK(memcmp(got, i == 0 ? a : c, d * 4) == 0);
        int64_t v;
        CHECK_OK(cairn_value_get_int(cairn_value_get(o, "value"), &v));
        CHECK(v == (int64_t)i);
        cairn_params_free(p);
    }
    cairn_value_free(list);
    cairn_value *meta;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK(cairn_value_get(meta, "note") != NULL); /* the caller's own metadata survives */
    cairn_value_free(meta);
    cairn_file_close(f);

    /* a file without objects gives an empty list */
    CHECK_OK(cairn_file_open(path_of("f_history.cairn"), NULL, &f, &err));
    CHECK_OK(cairn_file_read_objects(f, &list, &err));
    CHECK(cairn_value_get_type(list) == CAIRN_VALUE_LIST && cairn_value_count(list) == 0);
    cairn_value_free(list);
    cairn_file_close(f);
}

int main(void)
{
    dir = tu_tmpdir("test_model");
    test_whole_model();
    test_objects_in_order();
    TEST_MAIN_END();
}
