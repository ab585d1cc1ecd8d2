/* test_safetensors_index.c -- sharded safetensors models (an index JSON plus
 * its shards) read as one archive: reads, views, metadata, verification,
 * threads, Python-built shards, malformed indexes and the CLI. */
#include "testutil.h"

#include <cairn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

static const char *tmp;
static const cairn_write_opts st_opts = {.struct_size = sizeof(cairn_write_opts),
                                         .flags = CAIRN_WRITE_NO_SYNC,
                                         .format = CAIRN_FORMAT_SAFETENSORS};
static const cairn_open_opts no_mmap = {.struct_size = sizeof(cairn_open_opts),
                                        .flags = CAIRN_OPEN_NO_MMAP};
static const cairn_open_opts verify_opts = {.struct_size = sizeof(cairn_open_opts),
                                            .flags = CAIRN_OPEN_VERIFY};

/* ------------------------------------------------------------- helpers */

/* One tensor of the test model and the shard it goes to. */
typedef struct spec {
    const char *name;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[3];
    int shard; /* 0, 1, 2 */
    uint8_t *data;
    size_t size;
} spec;

static spec model[] = {
    {"embed.weight", CAIRN_F32, 2, {16, 8}, 0, NULL, 0},
    {"layers.0.attn.q", CAIRN_BF16, 2, {8, 8}, 0, NULL, 0},
    {"layers.0.bias", CAIRN_F16, 1, {8}, 0, NULL, 0},
    {"layers.1.attn.q", CAIRN_BF16, 2, {8, 8}, 1, NULL, 0},
    {"layers.1.mask", CAIRN_BOOL, 2, {3, 3}, 1, NULL, 0},
    {"scalar.step", CAIRN_I64, 0, {0}, 1, NULL, 0},
    {"lm_head.weight", CAIRN_F32, 2, {8, 16}, 2, NULL, 0},
    {"empty", CAIRN_U8, 2, {0, 4}, 2, NULL, 0},
};
#define N_MODEL (sizeof model / sizeof model[0])

static const char *const shard_files[] = {"model-00001-of-00003.safetensors",
                                          "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors"};

static int write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t n = strlen(text), w = fwrite(text, 1, n, fp);
    return (fclose(fp) == 0 && w == n) ? 0 : -1;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void make_data(void)
{
    uint64_t seed = 42;
    for (size_t i = 0; i < N_MODEL; i++) {
        spec *s = &model[i];
        uint64_t count = 1;
        for (uint32_t d = 0; d < s->rank; d++)
            count *= s->dims[d];
        s->size = (size_t)count * cairn_dtype_size(s->dtype);
        s->data = malloc(s->size ? s->size : 1);
        for (size_t b = 0; b < s->size; b++)
            s->data[b] = (uint8_t)tu_rand(&seed);
        if (s->dtype == CAIRN_BOOL)
            for (size_t b = 0; b < s->size; b++)
                s->data[b] &= 1;
        if (s->dtype == CAIRN_F32) /* finite floats, so conversions compare exactly */
            for (size_t b = 3; b < s->size; b += 4)
                s->data[b] &= 0x3f;
    }
}

static uint64_t model_bytes(void)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < N_MODEL; i++)
        sum += model[i].size;
    return sum;
}

/* Writes a safetensors shard from a list of model tensors (by position)
 * with `meta` (may be NULL) as metadata. */
static int write_shard(const char *dir, const char *file, const size_t *which, size_t n,
                       const cairn_value *meta)
{
    char path[4200];
    cairn_error err = {0};
    cairn_writer *w = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (cairn_writer_open_path(path, &st_opts, &w, &err) != CAIRN_OK)
        return fprintf(stderr, "%s\n", err.message), -1;
    for (size_t k = 0; k < n; k++) {
        const spec *s = &model[which[k]];
        if (cairn_writer_add(w, s->name, s->dtype, s->rank, s->dims, s->data, &err) != CAIRN_OK) {
            fprintf(stderr, "%s\n", err.message);
            cairn_writer_abort(w);
            return -1;
        }
    }
    if (meta && cairn_writer_set_metadata(w, meta, &err) != CAIRN_OK) {
        cairn_writer_abort(w);
        return -1;
    }
    return cairn_writer_commit(w, &err) == CAIRN_OK ? 0 : -1;
}

/* The three model shards, every one with {"format": "pt"}; the first also
 * carries a typed "config" (so its metadata goes through cairn.meta). */
static void write_model_shards(const char *dir)
{
    for (int s = 0; s < 3; s++) {
        size_t which[N_MODEL], n = 0;
        for (size_t i = 0; i < N_MODEL; i++)
            if (model[i].shard == s)
                which[n++] = i;
        cairn_value *meta = cairn_value_map();
        cairn_value_set(meta, "format", cairn_value_string("pt"), NULL);
        if (s == 0) {
            cairn_value *config = cairn_value_map();
            cairn_value_set(config, "layers", cairn_value_int(2), NULL);
            cairn_value_set(config, "tied", cairn_value_tensor_ref("embed.weight"), NULL);
            cairn_value_set(meta, "config", config, NULL);
        }
        CHECK(write_shard(dir, shard_files[s], which, n, meta) == 0);
        cairn_value_free(meta);
    }
}

/* The weight_map entries of the model as JSON members (no braces). */
static void weight_map_members(char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < N_MODEL; i++)
        o += (size_t)snprintf(out + o, size - o, "%s\n    \"%s\": \"%s\"", i ? "," : "",
                              model[i].name, shard_files[model[i].shard]);
}

static void model_index_text(char *out, size_t size, const char *total)
{
    char members[4096];
    weight_map_members(members, sizeof members);
    snprintf(out, size, "{\n  \"metadata\": {\"total_size\": %s, \"format\": \"pt\", "
             "\"nested\": {\"list\": [1, 2.5, true, null, \"x\"]}},\n  \"weight_map\": {%s\n  }\n}\n",
             total, members);
}

static const spec *spec_named(const char *name)
{
    for (size_t i = 0; i < N_MODEL; i++)
        if (strcmp(model[i].name, name) == 0)
            return &model[i];
    return NULL;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* ----------------------------------------------------- 1. reading the model */

static char model_dir[4096], model_index[4200];

static void check_tensors(cairn_file *f, int mapped)
{
    cairn_error err = {0};
    CHECK(cairn_file_count(f) == N_MODEL);
    cairn_tensor_info prev = {0};
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        CHECK_OK(cairn_tensor_info_at(f, i, &in, &err));
        if (i > 0) /* name order */
            CHECK(strcmp(prev.name, in.name) < 0);
        prev = in;
        const spec *s = spec_named(in.name);
        CHECK(s != NULL);
        if (!s)
            continue;
        uint64_t idx = 99;
        CHECK_OK(cairn_tensor_find(f, s->name, &idx, NULL, &err));
        CHECK(idx == i);
        CHECK(in.dtype == s->dtype && in.rank == s->rank && in.raw_size == s->size);
        for (uint32_t d = 0; d < s->rank; d++)
            CHECK(in.dims[d] == s->dims[d]);
        uint8_t *buf = malloc(s->size ? s->size : 1);
        CHECK_OK(cairn_tensor_read(f, i, s->dtype, buf, s->size, CAIRN_READ_VERIFY, &err));
        CHECK(memcmp(buf, s->data, s->size) == 0);
        free(buf);
        CHECK_OK(cairn_tensor_verify(f, i, &err));
        const void *view = NULL;
        CHECK(in.zero_copy == mapped);
        if (mapped) {
            CHECK_OK(cairn_tensor_data(f, i, &view, &err));
            CHECK(view != NULL && memcmp(view, s->data, s->size) == 0);
        } else {
            CHECK_ST(cairn_tensor_data(f, i, &view, &err), CAIRN_E_UNSUPPORTED);
            CHECK(view == NULL && contains(err.message, "model-0000")); /* names the shard */
        }
    }
}

/* F32 -> F64 through the index gives what cairn_convert gives. */
static void check_conversion(cairn_file *f)
{
    cairn_error err = {0};
    const spec *s = spec_named("embed.weight");
    uint64_t idx;
    CHECK_OK(cairn_tensor_find(f, s->name, &idx, NULL, &err));
    size_t n = s->size / 4;
    double *got = malloc(n * 8), *want = malloc(n * 8);
    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F64, got, n * 8, 0, &err));
    CHECK_OK(cairn_convert(CAIRN_F32, s->data, CAIRN_F64, want, n, &err));
    CHECK(memcmp(got, want, n * 8) == 0);
    CHECK_ST(cairn_tensor_read(f, idx, CAIRN_I8, got, n, 0, &err), CAIRN_E_DTYPE);
    CHECK(contains(err.message, "embed.weight"));
    free(got);
    free(want);
}

static void check_metadata(cairn_file *f)
{
    cairn_error err = {0};
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    const cairn_value *index = cairn_value_get(meta, "index");
    int64_t total = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_get(index, "total_size"), &total));
    CHECK((uint64_t)total == model_bytes());
    const cairn_value *list = cairn_value_get(cairn_value_get(index, "nested"), "list");
    CHECK(cairn_value_count(list) == 5);
    CHECK(cairn_value_get_type(cairn_value_at(list, 1)) == CAIRN_VALUE_FLOAT);
    CHECK(cairn_value_get_type(cairn_value_at(list, 3)) == CAIRN_VALUE_NULL);
    const void *s = NULL;
    size_t len = 0;
    CHECK_OK(cairn_value_get_data(cairn_value_get(meta, "format"), &s, &len));
    CHECK(len == 2 && memcmp(s, "pt", 2) == 0);
    const cairn_value *config = cairn_value_get(meta, "config");
    CHECK(cairn_value_get_type(cairn_value_get(config, "tied")) == CAIRN_VALUE_TENSOR);
    /* "index" first, then the shards' keys in shard order, each once. */
    CHECK(cairn_value_count(meta) == 3);
    CHECK(strcmp(cairn_value_key_at(meta, 0), "index") == 0);
    cairn_value_free(meta);
}

static void check_info(cairn_file *f)
{
    cairn_error err = {0};
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_SAFETENSORS);
    CHECK(fi.tensor_count == N_MODEL);
    CHECK(fi.payload_bytes == model_bytes());
    uint64_t size = file_size(model_index);
    for (int s = 0; s < 3; s++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", model_dir, shard_files[s]);
        size += file_size(path);
    }
    CHECK(fi.file_size == size);
    CHECK(fi.has_metadata);
    CHECK(fi.alignment >= 8);
}

static void test_model(void)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    char text[8192], total[32];
    snprintf(model_dir, sizeof model_dir, "%s/model", tmp);
    mkdir(model_dir, 0777);
    write_model_shards(model_dir);
    snprintf(model_index, sizeof model_index, "%s/model.safetensors.index.json", model_dir);
    snprintf(total, sizeof total, "%llu", (unsigned long long)model_bytes());
    model_index_text(text, sizeof text, total);
    CHECK(write_text(model_index, text) == 0);

    CHECK_OK(cairn_file_open(model_index, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    check_tensors(f, 1);
    check_conversion(f);
    check_metadata(f);
    check_info(f);
    CHECK_OK(cairn_file_verify(f, &err));
    uint64_t idx;
    CHECK_ST(cairn_tensor_find(f, "nope", &idx, NULL, &err), CAIRN_E_NOT_FOUND);
    CHECK(contains(err.message, model_index) && contains(err.message, "nope"));
    CHECK_ST(cairn_tensor_read(f, N_MODEL, CAIRN_U8, NULL, 0, 0, &err), CAIRN_E_NOT_FOUND);
    CHECK(contains(err.message, model_index));
    cairn_file_close(f);

    CHECK_OK(cairn_file_open(model_index, &no_mmap, &f, &err));
    if (f)
        check_tensors(f, 0);
    cairn_file_close(f);
    f = NULL;
    CHECK_OK(cairn_file_open(model_index, &verify_opts, &f, &err));
    cairn_file_close(f);
    f = NULL;

    /* A bare file name: shards resolve against the current directory. */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(model_dir) == 0);
    CHECK_OK(cairn_file_open("model.safetensors.index.json", NULL, &f, &err));
    CHECK(cairn_file_count(f) == N_MODEL);
    cairn_file_close(f);
    CHECK(chdir(cwd) == 0);

    /* An integral real total_size (some tools write one) is fine. */
    char real[40];
    snprintf(real, sizeof real, "%llu.0", (unsigned long long)model_bytes());
    model_index_text(text, sizeof text, real);
    char path[4200];
    snprintf(path, sizeof path, "%s/real.safetensors.index.json", model_dir);
    CHECK(write_text(path, text) == 0);
    f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    cairn_file_close(f);
}

/* ------------------------------------------------ 2. threads, params, memory */

typedef struct thread_arg {
    cairn_file *f;
    int bad;
} thread_arg;

static void *reader_thread(void *p)
{
    thread_arg *a = p;
    for (int round = 0; round < 20; round++)
        for (uint64_t i = 0; i < cairn_file_count(a->f); i++) {
            cairn_tensor_info in;
            cairn_error err = {0};
            if (cairn_tensor_info_at(a->f, i, &in, &err) != CAIRN_OK) {
                a->bad++;
                continue;
            }
            const spec *s = spec_named(in.name);
            uint8_t *buf = malloc(s->size ? s->size : 1);
            if (cairn_tensor_read(a->f, i, s->dtype, buf, s->size, 0, &err) != CAIRN_OK ||
                memcmp(buf, s->data, s->size) != 0)
                a->bad++;
            free(buf);
        }
    return NULL;
}

static void test_threads(void)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(model_index, &no_mmap, &f, &err));
    if (!f)
        return;
    pthread_t th[4];
    thread_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg){f, 0};
        CHECK(pthread_create(&th[t], NULL, reader_thread, &args[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK(args[t].bad == 0);
    }
    cairn_file_close(f);
}

static void test_params(void)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_params *p = cairn_params_new();
    uint8_t *bufs[N_MODEL];
    for (size_t i = 0; i < N_MODEL; i++) {
        bufs[i] = calloc(1, model[i].size ? model[i].size : 1);
        CHECK_OK(cairn_params_add(p, model[i].name, model[i].dtype, model[i].rank, model[i].dims,
                                  bufs[i], &err));
    }
    CHECK_OK(cairn_file_open(model_index, NULL, &f, &err));
    cairn_load_opts lo = {.struct_size = sizeof lo, .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
    cairn_load_report *rep = NULL;
    CHECK_OK(cairn_params_load(p, f, &lo, &rep, &err));
    CHECK(cairn_load_report_loaded(rep) == N_MODEL);
    for (size_t i = 0; i < N_MODEL; i++) {
        CHECK(memcmp(bufs[i], model[i].data, model[i].size) == 0);
        free(bufs[i]);
    }
    cairn_load_report_free(rep);
    cairn_params_free(p);
    cairn_file_close(f);
}

static void test_memory_index(void)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    char text[8192];
    model_index_text(text, sizeof text, "0");
    CHECK_ST(cairn_file_open_memory(text, strlen(text), NULL, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(f == NULL && contains(err.message, "<memory>") && contains(err.message, "memory") &&
          contains(err.message, "by path"));
    /* An index that names no shard needs no directory. */
    const char *empty = " \n{\"metadata\": {\"total_size\": 0}, \"weight_map\": {}}";
    CHECK_OK(cairn_file_open_memory(empty, strlen(empty), NULL, &f, &err));
    CHECK(cairn_file_count(f) == 0);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK(cairn_value_count(meta) == 1);
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
}

static void test_writer_refusal(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/out.safetensors.index.json", tmp);
    CHECK_ST(cairn_writer_open_path(path, NULL, &w, &err), CAIRN_E_UNSUPPORTED);
    CHECK(w == NULL && contains(err.message, "sharded") && contains(err.message, path));
    CHECK(access(path, F_OK) != 0);
}

/* ----------------------------------------------------- 3. malformed indexes */

/* Writes `text` as bad.safetensors.index.json next to the model's shards
 * and insists the open fails with `want`, naming the index and each of the
 * given strings. */
static void expect_open(const char *text, cairn_status want, const char *s1, const char *s2,
                        const char *s3, int line)
{
    char path[4200];
    cairn_error err = {0};
    cairn_file *f = NULL;
    snprintf(path, sizeof path, "%s/bad.safetensors.index.json", model_dir);
    CHECK(write_text(path, text) == 0);
    cairn_status st = cairn_file_open(path, NULL, &f, &err);
    int ok = st == want && f == NULL && contains(err.message, path) &&
             (!s1 || contains(err.message, s1)) && (!s2 || contains(err.message, s2)) &&
             (!s3 || contains(err.message, s3));
    if (!ok)
        fprintf(stderr, "line %d: status %d (want %d): %s\n", line, (int)st, (int)want,
                err.message);
    CHECK(ok);
    cairn_file_close(f);
}
#define EXPECT(text, st, a, b, c) expect_open(text, st, a, b, c, __LINE__)

static void test_bad_shard_names(void)
{
    static const char *const names[] = {
        "sub/model-00001-of-00003.safetensors", "../model/model-00001-of-00003.safetensors",
        "/etc/passwd", ".hidden.safetensors", "..", "a\\\\b.safetensors", "",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{\"weight_map\": {\"embed.weight\": \"%s\"}}", names[i]);
        EXPECT(text, CAIRN_E_CORRUPT, "embed.weight", "bare file name", NULL);
    }
}

static void test_malformed(void)
{
    char text[8192];
    EXPECT("{\"weight_map\": {\"embed.weight\": \"model-00009-of-00009.safetensors\"}}",
           CAIRN_E_IO, "model-00009-of-00009.safetensors", "embed.weight", "cannot open");
    EXPECT("{\"weight_map\": {\"nope\": \"model-00001-of-00003.safetensors\"}}",
           CAIRN_E_CORRUPT, "'nope' is not in its shard", "model-00001-of-00003", NULL);
    /* Shard 1 holds three tensors; listing two leaves one unlisted. */
    EXPECT("{\"weight_map\": {\"embed.weight\": \"model-00001-of-00003.safetensors\", "
           "\"layers.0.bias\": \"model-00001-of-00003.safetensors\"}}",
           CAIRN_E_CORRUPT, "layers.0.attn.q", "does not list", "model-00001-of-00003");
    test_bad_shard_names();
    EXPECT("{\"weight_map\": {\"embed.weight\": 3}}", CAIRN_E_CORRUPT, "embed.weight",
           "an integer", NULL);
    EXPECT("{\"weight_map\": {\"embed.weight\": null}}", CAIRN_E_CORRUPT, "embed.weight", "null",
           NULL);
    EXPECT("{\"weight_map\": [\"model-00001-of-00003.safetensors\"]}", CAIRN_E_CORRUPT,
           "\"weight_map\" is an array", NULL, NULL);
    EXPECT("{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}",
           CAIRN_E_CORRUPT, "duplicate", "invalid JSON", NULL);
    EXPECT("{\"metadata\": [], \"weight_map\": {}}", CAIRN_E_CORRUPT, "\"metadata\" is an array",
           NULL, NULL);
    EXPECT("{}", CAIRN_E_FORMAT, "not a sharded safetensors index", NULL, NULL);
    EXPECT("{\"weight_map\": {}, \"weight_map\": {}}", CAIRN_E_CORRUPT, "invalid JSON",
           "duplicate object key 'weight_map'", NULL);
    /* simdjson says what is wrong, not where (as for safetensors headers) */
    EXPECT("{\"weight_map\": {\"a\": \"x.safetensors\",", CAIRN_E_CORRUPT, "invalid JSON",
           "sharded safetensors index", NULL);
    EXPECT("{\"metadata\": {\"total_size\": \"12\"}, \"weight_map\": {}}", CAIRN_E_CORRUPT,
           "total_size", "a string", NULL);
    EXPECT("{\"metadata\": {\"total_size\": -1}, \"weight_map\": {}}", CAIRN_E_CORRUPT,
           "total_size", NULL, NULL);
    EXPECT("{\"metadata\": {\"total_size\": 1.5}, \"weight_map\": {}}", CAIRN_E_CORRUPT,
           "total_size", NULL, NULL);
    EXPECT("{\"metadata\": {\"total_size\": 1}, \"weight_map\": {}}", CAIRN_E_CORRUPT,
           "\"total_size\" is 1 but the 0 tensors hold 0 bytes", NULL, NULL);
    char total[32];
    snprintf(total, sizeof total, "%llu", (unsigned long long)model_bytes() + 1);
    model_index_text(text, sizeof text, total);
    EXPECT(text, CAIRN_E_CORRUPT, "total_size", total, NULL);
    /* JSON without a weight_map is no index: not a known format. */
    EXPECT("{\"model_type\": \"llama\"}", CAIRN_E_FORMAT, "not a sharded safetensors index",
           NULL, NULL);
    EXPECT("{\"model_type\": ", CAIRN_E_FORMAT, "not even valid JSON", NULL, NULL);
    /* The index itself as a shard is refused by the safetensors reader, not recursed into. */
    EXPECT("{\"weight_map\": {\"x\": \"bad.safetensors.index.json\"}}", CAIRN_E_LIMIT,
           "bad.safetensors.index.json", "weight_map puts tensor 'x'", NULL);
}

/* A shard holding a tensor that weight_map puts in another shard. */
static void test_duplicate_across_shards(void)
{
    size_t dup[] = {0, 7}; /* embed.weight (also in shard 1) and empty (also in shard 3) */
    CHECK(write_shard(model_dir, "dup.safetensors", dup, 2, NULL) == 0);
    char members[4096], text[8192];
    weight_map_members(members, sizeof members);
    /* "empty" moves to dup.safetensors, so shard 3 no longer owns it either. */
    snprintf(text, sizeof text, "{\"weight_map\": {%s, \"extra\": \"dup.safetensors\"}}",
             members);
    EXPECT(text, CAIRN_E_CORRUPT, "'extra' is not in its shard 'dup.safetensors'", NULL, NULL);
    size_t two[] = {0, 6}; /* embed.weight and lm_head.weight */
    char path[4200];
    snprintf(path, sizeof path, "%s/dup.safetensors", model_dir);
    unlink(path);
    CHECK(write_shard(model_dir, "dup.safetensors", two, 2, NULL) == 0);
    /* The map puts lm_head.weight in dup, so shard 3 holds it unlisted... */
    snprintf(text, sizeof text, "{\"weight_map\": {\"lm_head.weight\": \"dup.safetensors\"}}");
    EXPECT(text, CAIRN_E_CORRUPT, "does not list", "embed.weight", "dup.safetensors");
    /* ... and with embed.weight listed in shard 1, dup's copy is a duplicate. */
    snprintf(text, sizeof text,
             "{\"weight_map\": {\"embed.weight\": \"model-00001-of-00003.safetensors\", "
             "\"layers.0.attn.q\": \"model-00001-of-00003.safetensors\", "
             "\"layers.0.bias\": \"model-00001-of-00003.safetensors\", "
             "\"lm_head.weight\": \"dup.safetensors\"}}");
    EXPECT(text, CAIRN_E_CORRUPT,
           "'embed.weight' is in shard 'model-00001-of-00003.safetensors' and in shard "
           "'dup.safetensors'", NULL, NULL);
}

static void test_not_safetensors_shard(void)
{
    char path[4200];
    cairn_error err = {0};
    cairn_writer *w = NULL;
    snprintf(path, sizeof path, "%s/native.safetensors", model_dir);
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                          .format = CAIRN_FORMAT_NATIVE};
    uint8_t x = 1;
    CHECK_OK(cairn_writer_open_path(path, &o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U8, 0, NULL, &x, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file *f = NULL;
    snprintf(path, sizeof path, "%s/bad.safetensors.index.json", model_dir);
    CHECK(write_text(path, "{\"weight_map\": {\"x\": \"native.safetensors\"}}") == 0);
    CHECK(cairn_file_open(path, NULL, &f, &err) != CAIRN_OK);
    CHECK(contains(err.message, "native.safetensors") && contains(err.message, "'x'"));
}

static void test_huge_index(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/huge.safetensors.index.json", tmp);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(fd >= 0 && write(fd, "{", 1) == 1 && ftruncate(fd, (off_t)(65u << 20)) == 0);
    close(fd);
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open(path, NULL, &f, &err), CAIRN_E_LIMIT);
    CHECK(contains(err.message, path) && contains(err.message, "64 MiB"));
    unlink(path);
}

/* Shards whose metadata disagree open, but the merged tree is refused. */
static void test_metadata_conflict(void)
{
    char path[4200];
    cairn_error err = {0};
    size_t one[] = {0}, two[] = {6};
    cairn_value *a = cairn_value_map(), *b = cairn_value_map();
    cairn_value_set(a, "format", cairn_value_string("pt"), NULL);
    cairn_value_set(b, "format", cairn_value_string("np"), NULL);
    snprintf(path, sizeof path, "%s/conflict", tmp);
    mkdir(path, 0777);
    CHECK(write_shard(path, "c1.safetensors", one, 1, a) == 0);
    CHECK(write_shard(path, "c2.safetensors", two, 1, b) == 0);
    cairn_value_free(a);
    cairn_value_free(b);
    strcat(path, "/c.safetensors.index.json");
    CHECK(write_text(path, "{\"weight_map\": {\"embed.weight\": \"c1.safetensors\", "
                           "\"lm_head.weight\": \"c2.safetensors\"}}") == 0);
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    cairn_value *meta = NULL;
    CHECK_ST(cairn_file_read_metadata(f, &meta, &err), CAIRN_E_UNSUPPORTED);
    CHECK(meta == NULL && contains(err.message, "'format'") &&
          contains(err.message, "c1.safetensors") && contains(err.message, "c2.safetensors"));
    CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_UNSUPPORTED);
    uint8_t buf[16 * 8 * 4];
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_F32, buf, sizeof buf, 0, &err));
    CHECK(memcmp(buf, model[0].data, sizeof buf) == 0);
    cairn_file_close(f);
}

/* Names and shard names written with JSON escapes are the strings they
 * decode to (the parse is freed before the shards open: they are copied),
 * and the metadata keeps its types. */
static void test_escapes(void)
{
    char path[4200];
    cairn_error err = {0};
    size_t one[] = {0}, two[] = {6};
    snprintf(path, sizeof path, "%s/escaped", tmp);
    mkdir(path, 0777);
    CHECK(write_shard(path, "c1.safetensors", one, 1, NULL) == 0);
    CHECK(write_shard(path, "c2.safetensors", two, 1, NULL) == 0);
    strcat(path, "/e.safetensors.index.json");
    CHECK(write_text(path, "{\"metadata\": {\"x\": [true, null, 1.5, "
                           "\"\\u00e9\"]}, \"weight_map\": {\"embed\\u002eweight\": "
                           "\"c\\u0031.safetensors\", \"lm_head.weight\": \"c2.safetensors\"}}") == 0);
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    uint64_t i;
    cairn_tensor_info info;
    CHECK_OK(cairn_tensor_find(f, "embed.weight", &i, &info, &err));
    CHECK(i == 0 && info.raw_size == model[0].size);
    CHECK_OK(cairn_tensor_find(f, "lm_head.weight", &i, &info, &err));
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    char *json = NULL;
    CHECK(meta && cairn_value_to_json(meta, 0, &json, &err) == CAIRN_OK);
    CHECK(json && contains(json, "[true,null,1.5,\"\u00e9\"]"));
    if (!json || !contains(json, "[true,null,1.5,\"\u00e9\"]"))
        fprintf(stderr, "metadata: %s\n", json ? json : "(none)");
    cairn_free(json);
    cairn_value_free(meta);
    cairn_file_close(f);
    CHECK(write_text(path, "{\"metadata\": {\"a\": 1, \"a\": 2}, \"weight_map\": {}}") == 0);
    CHECK_ST(cairn_file_open(path, NULL, &f, &err), CAIRN_E_CORRUPT);
    CHECK(contains(err.message, "duplicate object key 'a'"));
}

/* The index rewritten after open: verify notices. */
static void test_changed_index(void)
{
    char path[4200], text[8192], total[32];
    cairn_error err = {0};
    snprintf(path, sizeof path, "%s/changing.safetensors.index.json", model_dir);
    snprintf(total, sizeof total, "%llu", (unsigned long long)model_bytes());
    model_index_text(text, sizeof text, total);
    CHECK(write_text(path, text) == 0);
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
    char *at = strstr(text, "\"pt\"");
    at[1] = 'q'; /* same length, different metadata */
    CHECK(write_text(path, text) == 0);
    CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_CORRUPT);
    CHECK(contains(err.message, "changed since"));
    cairn_file_close(f);
}

/* --------------------------------------------------------- 4. Python shards */

static const char py_gen[] =
    "import json, struct, sys\n"
    "import numpy as np\n"
    "d = sys.argv[1]\n"
    "rng = np.random.default_rng(7)\n"
    "t = {\n"
    "  'a.w': rng.standard_normal((4, 5)).astype('<f4'),\n"
    "  'a.b': rng.standard_normal(5).astype('<f2'),\n"
    "  'b.ids': rng.integers(-2**40, 2**40, size=(3, 2), dtype='<i8'),\n"
    "  'b.mask': rng.integers(0, 2, size=7).astype(np.bool_),\n"
    "  'c.u8': rng.integers(0, 255, size=(2, 2, 2), dtype=np.uint8),\n"
    "  'c.f64': np.array(3.25, dtype='<f8'),\n"
    "}\n"
    "dt = {'float32': 'F32', 'float16': 'F16', 'int64': 'I64', 'bool': 'BOOL',\n"
    "      'uint8': 'U8', 'float64': 'F64'}\n"
    "shards = {'py-00001-of-00002.safetensors': ['a.w', 'a.b', 'b.ids'],\n"
    "          'py-00002-of-00002.safetensors': ['b.mask', 'c.u8', 'c.f64']}\n"
    "def write(path, names):\n"
    "    hdr, off, blobs = {'__metadata__': {'format': 'pt'}}, 0, []\n"
    "    for n in names:\n"
    "        b = t[n].tobytes()\n"
    "        hdr[n] = {'dtype': dt[t[n].dtype.name], 'shape': list(t[n].shape),\n"
    "                  'data_offsets': [off, off + len(b)]}\n"
    "        off += len(b)\n"
    "        blobs.append(b)\n"
    "    h = json.dumps(hdr).encode()\n"
    "    h += b' ' * (-len(h) % 8)\n"
    "    with open(path, 'wb') as f:\n"
    "        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))\n"
    "wm = {}\n"
    "for s, names in shards.items():\n"
    "    write(d + '/' + s, names)\n"
    "    for n in names:\n"
    "        wm[n] = s\n"
    "total = sum(a.nbytes for a in t.values())\n"
    "with open(d + '/py.safetensors.index.json', 'w') as f:\n"
    "    json.dump({'metadata': {'total_size': total}, 'weight_map': wm}, f, indent=2)\n"
    "with open(d + '/expected.txt', 'w') as f:\n"
    "    for n, a in t.items():\n"
    "        f.write('%s %d %s\\n' % (n, total, a.tobytes().hex()))\n";

static const char *python(void)
{
    const char *py = getenv("CAIRN_PYTHON");
    return py && *py ? py : "/usr/bin/python3";
}

static void check_python_tensor(cairn_file *f, const char *name, const char *hex)
{
    cairn_error err = {0};
    cairn_tensor_info in;
    uint64_t idx;
    CHECK_OK(cairn_tensor_find(f, name, &idx, &in, &err));
    size_t n = strlen(hex) / 2;
    CHECK(in.raw_size == n);
    uint8_t *buf = malloc(n ? n : 1);
    CHECK_OK(cairn_tensor_read(f, idx, in.dtype, buf, n, 0, &err));
    for (size_t i = 0; i < n && i < in.raw_size; i++) {
        unsigned byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        CHECK(buf[i] == byte);
    }
    const void *view = NULL;
    CHECK_OK(cairn_tensor_data(f, idx, &view, &err));
    CHECK(n == 0 || memcmp(view, buf, n) == 0);
    free(buf);
}

static void test_python(void)
{
    char cmd[8800], dir[4200], path[4300];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy' >/dev/null 2>&1", python());
    if (system(cmd) != 0) {
        fprintf(stderr, "numpy unavailable (%s): Python-built shards skipped\n", python());
        return;
    }
    snprintf(dir, sizeof dir, "%s/python", tmp);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/gen.py", dir);
    CHECK(write_text(path, py_gen) == 0);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", python(), path, dir);
    CHECK(system(cmd) == 0);
    cairn_error err = {0};
    cairn_file *f = NULL;
    snprintf(path, sizeof path, "%s/py.safetensors.index.json", dir);
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f)
        return (void)fprintf(stderr, "%s\n", err.message);
    CHECK(cairn_file_count(f) == 6);
    snprintf(path, sizeof path, "%s/expected.txt", dir);
    FILE *fp = fopen(path, "r");
    char name[64], hex[1024];
    unsigned long long total = 0;
    int lines = 0;
    while (fp && fscanf(fp, "%63s %llu %1023s", name, &total, hex) == 3) {
        check_python_tensor(f, name, hex);
        lines++;
    }
    if (fp)
        fclose(fp);
    CHECK(lines == 6);
    cairn_value *meta = NULL;
    int64_t got = 0;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK_OK(cairn_value_get_int(cairn_value_get(cairn_value_get(meta, "index"), "total_size"),
                                 &got));
    CHECK((unsigned long long)got == total);
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    fprintf(stderr, "python shards: %d tensors checked\n", lines);
}

/* ------------------------------------------------------------------ 5. CLI */

static int run(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void)
{
    const char *cli = getenv("CAIRN_CLI");
    if (!cli || !*cli || access(cli, X_OK) != 0) {
        fprintf(stderr, "CAIRN_CLI unset: CLI checks skipped\n");
        return;
    }
    char cmd[9000], out[16384], one[4200];
    snprintf(cmd, sizeof cmd, "'%s' ls '%s' 2>&1", cli, model_index);
    CHECK(run(cmd, out, sizeof out) == 0);
    for (size_t i = 0; i < N_MODEL; i++)
        CHECK(contains(out, model[i].name));
    snprintf(one, sizeof one, "%s/one.cairn", tmp);
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' --no-sync --no-progress 2>&1", cli,
             model_index, one);
    CHECK(run(cmd, out, sizeof out) == 0);
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(one, &verify_opts, &f, &err));
    if (f) {
        check_tensors(f, 1);
        check_metadata(f);
    }
    cairn_file_close(f);
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s/back.safetensors.index.json' --no-sync 2>&1",
             cli, one, tmp);
    CHECK(run(cmd, out, sizeof out) != 0);
    CHECK(contains(out, "sharded"));
}

int main(void)
{
    tmp = tu_tmpdir("test_safetensors_index");
    make_data();
    test_model();
    test_threads();
    test_params();
    test_memory_index();
    test_writer_refusal();
    test_malformed();
    test_duplicate_across_shards();
    test_not_safetensors_shard();
    test_huge_index();
    test_metadata_conflict();
    test_escapes();
    test_changed_index();
    test_python();
    test_cli();
    for (size_t i = 0; i < N_MODEL; i++)
        free(model[i].data);
    if (tu_failures == 0) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        CHECK(system(cmd) == 0);
    }
    TEST_MAIN_END();
}
