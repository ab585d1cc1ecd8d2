/* test_hostile.c -- hostile inputs, round two (docs/FORMAT.md §14.2-§14.4,
 * §18): sizes that wrap, stride-0 expansions, storage keys declared twice,
 * shared pickle objects, NumPy itemsizes against NumPy itself, one name for
 * two arrays, and metadata arrays kept packed. The .pt, joblib and pickle
 * files are made at test time by real torch, numpy and joblib
 * (tests/hostile_gen.py, which also says what each must read as); GGUF
 * files are built here. */
#include "testutil.h"
#include "common/value_internal.h"

#include <cairn.h>
#include <string.h>
#include <sys/stat.h>

static const char *gen_dir;

static cairn_status open_file(const char *name, uint64_t max_inflate, cairn_file **f,
                              cairn_error *err)
{
    cairn_open_opts o = {.struct_size = sizeof o, .flags = CAIRN_OPEN_INERT,
                         .max_inflate = max_inflate};
    return cairn_file_open(tu_path(gen_dir, name), &o, f, err);
}

/* Opens, verifies and reads every tensor: each read path of a file that
 * opens must agree with the sizes it reports. */
static void read_all(cairn_file *f, const char *name)
{
    cairn_error err = {0};
    uint64_t n = cairn_file_count(f);
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info in;
        CHECK_OK(cairn_tensor_info_at(f, i, &in, &err));
        uint8_t *buf = malloc(in.raw_size ? (size_t)in.raw_size : 1);
        CHECK(buf != NULL);
        if (buf && cairn_tensor_read(f, i, in.dtype, buf, (size_t)in.raw_size, 0, &err) != CAIRN_OK) {
            fprintf(stderr, "%s: tensor %llu: %s\n", name, (unsigned long long)i, err.message);
            CHECK(0);
        }
        free(buf);
    }
    if (cairn_file_verify(f, &err) != CAIRN_OK) {
        fprintf(stderr, "%s: verify: %s\n", name, err.message);
        CHECK(0);
    }
}

static void check_refused(const char *file, int status, const char *text)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    cairn_status st = open_file(file, 0, &f, &err);
    if (st != (cairn_status)status || !strstr(err.message, text)) {
        fprintf(stderr, "%s: want status %d with '%s', got %d: %s\n", file, status, text, st,
                err.message);
        CHECK(0);
    }
    CHECK(f == NULL);
    cairn_file_close(f);
}

/* Opens `file` at the default limits; a failure is a failed check, reported. */
static int opened(const char *file, cairn_file **f)
{
    cairn_error err = {0};
    if (open_file(file, 0, f, &err) == CAIRN_OK)
        return 1;
    fprintf(stderr, "%s: %s\n", file, err.message);
    CHECK(0);
    return 0;
}

static void check_array(const char *file, const char *name, uint64_t nbytes)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    if (!opened(file, &f))
        return;
    if (strcmp(name, "-") != 0) {
        cairn_tensor_info in;
        uint64_t i;
        CHECK_OK(cairn_tensor_find(f, name, &i, &in, &err));
        CHECK(in.raw_size == nbytes);
        if (!strcmp(name, "after")) { /* np.arange(3): read right only after exact array sizes */
            int64_t v[3] = {-1, -1, -1};
            CHECK_OK(cairn_tensor_read(f, i, CAIRN_I64, v, sizeof v, 0, &err));
            CHECK(v[0] == 0 && v[1] == 1 && v[2] == 2);
        }
    }
    read_all(f, file);
    cairn_file_close(f);
}

/* A joblib array cairn has no dtype for stays in the tree, its bytes whole. */
static void check_data(const char *file, const char *key, uint64_t nbytes)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    cairn_value *tree = NULL;
    if (!opened(file, &f))
        return;
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    const void *d = NULL;
    size_t len = 0;
    const cairn_value *data = cairn_value_get(cairn_value_get(tree, key), "data");
    CHECK(cairn_value_get_type(data) == CAIRN_VALUE_BYTES);
    CHECK(cairn_value_get_data(data, &d, &len) == CAIRN_OK && len == nbytes);
    if (len != nbytes)
        fprintf(stderr, "%s: '%s' holds %zu bytes, NumPy says %llu\n", file, key, len,
                (unsigned long long)nbytes);
    cairn_value_free(tree);
    read_all(f, file);
    cairn_file_close(f);
}

/* A shared list read once per reference, each copy packed. */
static void check_list(const char *file, const char *key, uint64_t count)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    cairn_value *tree = NULL;
    if (!opened(file, &f))
        return;
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    const cairn_value *l = cairn_value_get(tree, key);
    CHECK(cairn_value_count(l) == count && l->pack != CAIRN__PACK_NONE);
    cairn_value_free(tree);
    cairn_file_close(f);
}

/* Refused at the default limit, read whole once the caller raises it. */
static void check_inflate(const char *file, const char *name, uint64_t nbytes)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_ST(open_file(file, 0, &f, &err), CAIRN_E_LIMIT);
    CHECK(strstr(err.message, "max_inflate") != NULL);
    CHECK_OK(open_file(file, 2 * nbytes, &f, &err));
    if (!f)
        return;
    cairn_tensor_info in;
    uint64_t i;
    CHECK_OK(cairn_tensor_find(f, name, &i, &in, &err));
    CHECK(in.raw_size == nbytes && in.count * cairn_dtype_size(in.dtype) == nbytes);
    uint8_t *buf = malloc((size_t)nbytes);
    CHECK(buf != NULL);
    if (buf) {
        memset(buf, 0xAA, (size_t)nbytes);
        CHECK_OK(cairn_tensor_read(f, i, in.dtype, buf, (size_t)nbytes, 0, &err));
        CHECK(buf[0] == 0 && buf[nbytes / 2] == 0 && buf[nbytes - 1] == 0);
    }
    free(buf);
    cairn_file_close(f);
}

static int manifest_line(void *ctx, char *line)
{
    (void)ctx;
    char *field[4] = {0};
    int n = 0;
    line[strcspn(line, "\n")] = '\0';
    for (char *save = NULL, *tok = strtok_r(line, "\t", &save); tok && n < 4;
         tok = strtok_r(NULL, "\t", &save))
        field[n++] = tok;
    if (n != 4) {
        CHECK(0);
        return 0;
    }
    uint64_t number = strtoull(field[2], NULL, 10), nbytes = strtoull(field[3], NULL, 10);
    if (!strcmp(field[1], "refuse"))
        check_refused(field[0], (int)number, field[3]);
    else if (!strcmp(field[1], "array"))
        check_array(field[0], field[2], nbytes);
    else if (!strcmp(field[1], "data"))
        check_data(field[0], field[2], nbytes);
    else if (!strcmp(field[1], "list"))
        check_list(field[0], field[2], nbytes);
    else if (!strcmp(field[1], "inflate"))
        check_inflate(field[0], field[2], nbytes);
    else
        CHECK(0);
    return 1;
}

static void test_generated(const char *tmp)
{
    static char dir[4200];
    if (!tu_python_imports("torch, numpy, joblib", "hostile .pt / joblib checks"))
        return;
    snprintf(dir, sizeof dir, "%s/gen", tmp);
    mkdir(dir, 0777);
    CHECK(tu_run_python(tu_tests_file("hostile_gen.py"), dir, NULL) == 0);
    gen_dir = dir;
    int lines = tu_each_line(tu_path(dir, "manifest.txt"), manifest_line, NULL);
    CHECK(lines >= 90);
    fprintf(stderr, "hostile files: %d checks from the manifest\n", lines);
}

/* ---------------------------------------------------------------- GGUF */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gput(gbuf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void gput_u32(gbuf *b, uint32_t v) { gput(b, &v, 4); } /* the tests run little-endian */
static void gput_u64(gbuf *b, uint64_t v) { gput(b, &v, 8); }

static void gput_key(gbuf *b, const char *k)
{
    gput_u64(b, strlen(k));
    gput(b, k, strlen(k));
}

/* A GGUF file with no tensors: key "x.u8" an ARRAY[UINT8] of `n` values,
 * "x.s" an ARRAY[STRING] of `m` empty strings, "x.f" an ARRAY[FLOAT32]. */
static gbuf gguf_arrays(uint64_t n, uint64_t m)
{
    gbuf b = {0};
    gput(&b, "GGUF", 4);
    gput_u32(&b, 3);
    gput_u64(&b, 0);
    gput_u64(&b, 3);
    gput_key(&b, "x.u8");
    gput_u32(&b, 9), gput_u32(&b, 0), gput_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t v = (uint8_t)(i * 7);
        gput(&b, &v, 1);
    }
    gput_key(&b, "x.s");
    gput_u32(&b, 9), gput_u32(&b, 8), gput_u64(&b, m);
    for (uint64_t i = 0; i < m; i++)
        gput_u64(&b, 0);
    gput_key(&b, "x.f");
    gput_u32(&b, 9), gput_u32(&b, 6), gput_u64(&b, 3);
    float f[3] = {0.5f, -2.0f, 1e30f};
    gput(&b, f, sizeof f);
    return b;
}

/* Arrays of one scalar type are one packed node each, and everything that
 * reads the tree (JSON, the native encoding, the public accessors) sees
 * exactly the list it would see with a node per element. */
static void test_gguf_packed(void)
{
    gbuf b = gguf_arrays(1u << 20, 300000);
    cairn_file *f = NULL;
    cairn_error err = {0};
    cairn_value *tree = NULL;
    CHECK_OK(cairn_file_open_memory(b.p, b.n, NULL, &f, &err));
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    const cairn_value *kv = cairn_value_get(cairn_value_get(tree, "gguf"), "kv");
    const cairn_value *u8 = cairn_value_get(kv, "x.u8"), *s = cairn_value_get(kv, "x.s");
    const cairn_value *fl = cairn_value_get(kv, "x.f");
    CHECK(u8 && s && fl);
    if (!u8 || !s || !fl)
        goto out;
    CHECK(u8->pack == CAIRN__PACK_I16 && cairn_value_count(u8) == (1u << 20));
    CHECK(s->pack == CAIRN__PACK_STR && cairn_value_count(s) == 300000);
    CHECK(fl->pack == CAIRN__PACK_F64 && cairn_value_count(fl) == 3);
    uint8_t *packed = NULL, *plain = NULL;
    size_t np = 0, nq = 0;
    char *json_packed = NULL, *json_plain = NULL;
    CHECK_OK(cairn__meta_encode(tree, NULL, NULL, &packed, &np, &err));
    CHECK_OK(cairn_value_to_json(tree, 2, &json_packed, &err));
    cairn_value *copy = cairn_value_clone(tree);
    CHECK(copy != NULL);
    /* The public accessors unpack: item 1000 of the copy is an int node. */
    const cairn_value *ckv = cairn_value_get(cairn_value_get(copy, "gguf"), "kv");
    int64_t v = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_at(cairn_value_get(ckv, "x.u8"), 1000), &v));
    CHECK(v == (uint8_t)(1000 * 7));
    for (size_t k = 0; k < cairn_value_count(ckv); k++)
        (void)cairn_value_at(cairn_value_at(ckv, k), 0);
    CHECK(cairn_value_get(ckv, "x.s")->pack == 0 && cairn_value_get(ckv, "x.f")->pack == 0);
    CHECK_OK(cairn__meta_encode(copy, NULL, NULL, &plain, &nq, &err));
    CHECK_OK(cairn_value_to_json(copy, 2, &json_plain, &err));
    CHECK(np == nq && packed && plain && memcmp(packed, plain, np) == 0);
    CHECK(json_packed && json_plain && strcmp(json_packed, json_plain) == 0);
    free(packed);
    free(plain);
    cairn_free(json_packed);
    cairn_free(json_plain);
    cairn_value_free(copy);
out:
    cairn_value_free(tree);
    cairn_file_close(f);
    free(b.p);
}

int main(void)
{
    const char *tmp = tu_tmpdir("test_hostile");
    test_gguf_packed();
    test_generated(tmp);
    if (!tu_failures)
        tu_remove_tmpdir_if_passed(tmp);
    TEST_MAIN_END();
}
