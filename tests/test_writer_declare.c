/* test_writer_declare.c -- cairn_writer_declare: a declared save is the same
 * file as an undeclared one (byte for byte for safetensors in any add order,
 * for GGUF and the native format in declaration order), through path and
 * memory writers; every misuse fails with its documented status and a
 * message naming the tensor; a failed declared save leaves nothing behind;
 * and `cairn convert` (which declares) writes what the spooling path wrote. */
#include "testutil.h"

#include <dirent.h>

static const char *tmp;

/* ------------------------------------------------------------- fixtures */

typedef struct tensor {
    const char *name;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[4];
    uint8_t *data;
    size_t size;
} tensor;

/* Mixed dtypes (so safetensors reorders them), a scalar, an empty tensor
 * and sizes that are not multiples of any alignment. */
static tensor set[] = {
    {"embed.weight", CAIRN_F32, 2, {17, 33}, NULL, 0},
    {"a.bias", CAIRN_F16, 1, {33}, NULL, 0},
    {"steps", CAIRN_I64, 0, {0}, NULL, 0},
    {"mask", CAIRN_I8, 2, {3, 5}, NULL, 0},
    {"empty", CAIRN_F32, 2, {0, 4}, NULL, 0},
    {"z.last", CAIRN_BF16, 3, {2, 3, 7}, NULL, 0},
    {"m.i32", CAIRN_I32, 1, {1001}, NULL, 0},
};
#define N_SET (sizeof set / sizeof set[0])

static void fill_set(void)
{
    for (size_t i = 0; i < N_SET; i++) {
        set[i].size = (size_t)(tu_elem_count(set[i].rank, set[i].dims) *
                               cairn_dtype_size(set[i].dtype));
        set[i].data = malloc(set[i].size ? set[i].size : 1);
        tu_fill(set[i].data, set[i].size, set[i].dtype, 100 + i);
    }
}

static cairn_tensor_decl decl_of(const tensor *t)
{
    return (cairn_tensor_decl){t->name, t->dtype, t->rank, t->dims};
}

/* The declarations of set[order[0..n)]. */
static void decls_in(const size_t *order, size_t n, cairn_tensor_decl *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = decl_of(&set[order[i]]);
}

static cairn_status add(cairn_writer *w, const tensor *t, cairn_error *err)
{
    return cairn_writer_add(w, t->name, t->dtype, t->rank, t->dims, t->data, err);
}

/* A metadata tree with a tensor reference (checked against the declared
 * names at declare time). */
static cairn_value *sample_meta(void)
{
    cairn_error err;
    cairn_value *m = cairn_value_map();
    cairn_value_set(m, "epoch", cairn_value_int(7), &err);
    cairn_value_set(m, "name", cairn_value_string("decl"), &err);
    cairn_value_set(m, "tied", cairn_value_tensor_ref("embed.weight"), &err);
    return m;
}

static cairn_write_opts opts_for(cairn_format format, uint64_t alignment)
{
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                          .format = format, .alignment = alignment};
    return o;
}

/* How a save is made: which tensors, declared or not, in which orders. */
typedef struct plan {
    cairn_format format;
    uint64_t alignment;
    const size_t *decl_order; /* NULL: undeclared */
    const size_t *add_order;
    size_t n;
    const cairn_value *meta;
} plan;

/* Runs a plan on `w`, then commits: to `path` when given, else to memory
 * (*mem, *len). */
static cairn_status run(const plan *p, const char *path, void **mem, size_t *len,
                        cairn_error *err)
{
    cairn_write_opts o = opts_for(p->format, p->alignment);
    cairn_writer *w = NULL;
    cairn_status st = path ? cairn_writer_open_path(path, &o, &w, err)
                           : cairn_writer_open_memory(&o, &w, err);
    if (st != CAIRN_OK)
        return st;
    if (p->meta)
        st = cairn_writer_set_metadata(w, p->meta, err);
    if (st == CAIRN_OK && p->decl_order) {
        cairn_tensor_decl d[N_SET];
        decls_in(p->decl_order, p->n, d);
        st = cairn_writer_declare(w, d, p->n, err);
    }
    for (size_t i = 0; st == CAIRN_OK && i < p->n; i++)
        st = add(w, &set[p->add_order[i]], err);
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return path ? cairn_writer_commit(w, err) : cairn_writer_commit_memory(w, mem, len, err);
}

/* Runs a plan both to a file and to memory; *out gets the bytes (the two
 * must agree). */
static uint8_t *bytes_of(const plan *p, const char *file, size_t *n)
{
    cairn_error err = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmp, file);
    cairn_status st = run(p, path, NULL, NULL, &err);
    if (st != CAIRN_OK)
        fprintf(stderr, "%s: %s\n", file, err.message);
    CHECK_OK(st);
    uint8_t *disk = tu_read_whole(path, n);
    void *mem = NULL;
    size_t mem_len = 0;
    st = run(p, NULL, &mem, &mem_len, &err);
    if (st != CAIRN_OK)
        fprintf(stderr, "%s (memory): %s\n", file, err.message);
    CHECK_OK(st);
    /* torch.save names the archive's folder after the file ("archive" in memory). */
    int same = disk && mem &&
               (p->format == CAIRN_FORMAT_TORCH || (mem_len == *n && !memcmp(disk, mem, *n)));
    if (!same)
        fprintf(stderr, "%s: the file and memory saves differ\n", file);
    CHECK(same);
    cairn_free(mem);
    unlink(path);
    return disk;
}

/* Every tensor of set[order[0..n)] reads back from `buf` with its bytes. */
static void check_tensors(const uint8_t *buf, size_t len, const size_t *order, size_t n)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(buf, len, NULL, &f, &err));
    if (!f)
        return;
    CHECK(cairn_file_count(f) == n);
    for (size_t i = 0; i < n; i++) {
        const tensor *t = &set[order[i]];
        uint64_t at;
        cairn_tensor_info info;
        CHECK_OK(cairn_tensor_find(f, t->name, &at, &info, &err));
        CHECK(info.dtype == t->dtype && info.rank == t->rank);
        uint8_t *got = malloc(t->size ? t->size : 1);
        CHECK_OK(cairn_tensor_read(f, at, t->dtype, got, t->size, 0, &err));
        CHECK(memcmp(got, t->data, t->size) == 0);
        free(got);
    }
    cairn_file_close(f);
}

/* Nothing in the scratch directory but `keep` (NULL: nothing at all). */
static int dir_holds_only(const char *keep)
{
    DIR *d = opendir(tmp);
    int others = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            (!keep || strcmp(de->d_name, keep))) {
            fprintf(stderr, "stray file %s\n", de->d_name);
            others++;
        }
    if (d)
        closedir(d);
    return others == 0;
}

static const size_t in_order[N_SET] = {0, 1, 2, 3, 4, 5, 6};
static const size_t shuffled[N_SET] = {5, 2, 6, 0, 4, 3, 1};
static const size_t reversed[N_SET] = {6, 5, 4, 3, 2, 1, 0};

/* ------------------------------------------------- 1. same bytes as before */

/* safetensors lays tensors out by dtype and name, so a declared save gives
 * the undeclared file whatever the declaration and add orders. */
static void test_safetensors_same_bytes(void)
{
    cairn_value *meta = sample_meta();
    plan before = {CAIRN_FORMAT_SAFETENSORS, 0, NULL, in_order, N_SET, meta};
    size_t n0, n1, n2, n3;
    uint8_t *b0 = bytes_of(&before, "u.safetensors", &n0);
    plan declared = {CAIRN_FORMAT_SAFETENSORS, 0, in_order, in_order, N_SET, meta};
    uint8_t *b1 = bytes_of(&declared, "d1.safetensors", &n1);
    plan any_order = {CAIRN_FORMAT_SAFETENSORS, 0, shuffled, reversed, N_SET, meta};
    uint8_t *b2 = bytes_of(&any_order, "d2.safetensors", &n2);
    plan bare = {CAIRN_FORMAT_SAFETENSORS, 0, reversed, shuffled, N_SET, NULL};
    uint8_t *b3 = bytes_of(&bare, "d3.safetensors", &n3);
    CHECK(b0 && b1 && b2 && n0 == n1 && n0 == n2);
    CHECK(b0 && b1 && memcmp(b0, b1, n0) == 0);
    CHECK(b0 && b2 && memcmp(b0, b2, n0) == 0);
    check_tensors(b2, n2, in_order, N_SET);
    check_tensors(b3, n3, in_order, N_SET);
    /* The metadata came through the declared layout. */
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_value *back = NULL;
    int64_t epoch = 0;
    CHECK_OK(cairn_file_open_memory(b2, n2, NULL, &f, &err));
    CHECK_OK(cairn_file_read_metadata(f, &back, &err));
    CHECK(back && cairn_value_get_int(cairn_value_get(back, "epoch"), &epoch) == CAIRN_OK &&
          epoch == 7);
    cairn_value_free(back);
    cairn_file_close(f);
    free(b0);
    free(b1);
    free(b2);
    free(b3);
    cairn_value_free(meta);
}

/* GGUF lays tensors out in add order: a declared save is the undeclared
 * save that adds in declaration order, whatever order the adds come in. */
static void test_gguf_same_bytes(void)
{
    cairn_value *meta = sample_meta();
    cairn_error err;
    cairn_value_set(meta, "tied", cairn_value_string("not a ref: GGUF has no references"), &err);
    for (int a = 0; a < 2; a++) {
        uint64_t alignment = a ? 256 : 0; /* GGUF's 32, and one written to general.alignment */
        size_t n0, n1, n2;
        plan before = {CAIRN_FORMAT_GGUF, alignment, NULL, shuffled, N_SET, meta};
        uint8_t *b0 = bytes_of(&before, "u.gguf", &n0);
        plan same = {CAIRN_FORMAT_GGUF, alignment, shuffled, shuffled, N_SET, meta};
        uint8_t *b1 = bytes_of(&same, "d1.gguf", &n1);
        plan other = {CAIRN_FORMAT_GGUF, alignment, shuffled, reversed, N_SET, meta};
        uint8_t *b2 = bytes_of(&other, "d2.gguf", &n2);
        CHECK(b0 && b1 && b2 && n0 == n1 && n0 == n2);
        CHECK(b0 && b1 && memcmp(b0, b1, n0) == 0);
        CHECK(b0 && b2 && memcmp(b0, b2, n0) == 0);
        check_tensors(b2, n2, in_order, N_SET);
        free(b0);
        free(b1);
        free(b2);
    }
    cairn_value_free(meta);
}

/* A quantized GGUF tensor: U8 bytes whose ggml type comes from the
 * metadata's gguf.tensor_types, which declare reads (so it must be set
 * first). */
static void test_gguf_quantized(void)
{
    cairn_error err = {0};
    uint8_t q[3 * 68];
    float f[5] = {1, 2, 3, 4, 5};
    uint64_t qdims[2] = {3, 68}, fdims[1] = {5}; /* Q8_0: 64 elements = 2 blocks of 34 bytes */
    tu_fill(q, sizeof q, CAIRN_U8, 9);
    cairn_value *root = cairn_value_map(), *g = cairn_value_map(), *tt = cairn_value_map();
    cairn_value *e = cairn_value_map(), *ne = cairn_value_list();
    cairn_value_set(e, "type", cairn_value_string("Q8_0"), &err);
    cairn_value_append(ne, cairn_value_int(64), &err);
    cairn_value_append(ne, cairn_value_int(3), &err);
    cairn_value_set(e, "ne", ne, &err);
    cairn_value_set(tt, "blk.0.q", e, &err);
    cairn_value_set(g, "tensor_types", tt, &err);
    cairn_value_set(root, "gguf", g, &err);
    cairn_write_opts o = opts_for(CAIRN_FORMAT_GGUF, 0);
    void *m[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    for (int declared = 0; declared < 2; declared++) {
        cairn_writer *w = NULL;
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_set_metadata(w, root, &err));
        if (declared) {
            cairn_tensor_decl d[2] = {{"blk.0.q", CAIRN_U8, 2, qdims},
                                      {"out", CAIRN_F32, 1, fdims}};
            CHECK_OK(cairn_writer_declare(w, d, 2, &err));
            CHECK_OK(cairn_writer_add(w, "out", CAIRN_F32, 1, fdims, f, &err));
            CHECK_OK(cairn_writer_add(w, "blk.0.q", CAIRN_U8, 2, qdims, q, &err));
        } else {
            CHECK_OK(cairn_writer_add(w, "blk.0.q", CAIRN_U8, 2, qdims, q, &err));
            CHECK_OK(cairn_writer_add(w, "out", CAIRN_F32, 1, fdims, f, &err));
        }
        CHECK_OK(cairn_writer_commit_memory(w, &m[declared], &len[declared], &err));
    }
    CHECK(m[0] && m[1] && len[0] == len[1] && memcmp(m[0], m[1], len[0]) == 0);
    cairn_file *file = NULL;
    cairn_value *back = NULL;
    CHECK_OK(cairn_file_open_memory(m[1], len[1], NULL, &file, &err));
    CHECK_OK(cairn_file_read_metadata(file, &back, &err));
    const cairn_value *bt = cairn_value_get(cairn_value_get(back, "gguf"), "tensor_types");
    const void *name = NULL;
    size_t name_len = 0;
    CHECK(bt && cairn_value_get_data(cairn_value_get(cairn_value_get(bt, "blk.0.q"), "type"),
                                     &name, &name_len) == CAIRN_OK &&
          name_len == 4 && memcmp(name, "Q8_0", 4) == 0);
    cairn_value_free(back);
    cairn_file_close(file);
    cairn_free(m[0]);
    cairn_free(m[1]);

    /* The declaration is checked against the record at once. */
    cairn_writer *w = NULL;
    uint64_t wrong[2] = {3, 64};
    cairn_tensor_decl d = {"blk.0.q", CAIRN_U8, 2, wrong};
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, root, &err));
    CHECK_ST(cairn_writer_declare(w, &d, 1, &err), CAIRN_E_ARG);
    CHECK(strstr(err.message, "blk.0.q") && strstr(err.message, "Q8_0"));
    cairn_writer_abort(w);
    /* A record for a tensor that is not declared. */
    d = (cairn_tensor_decl){"other", CAIRN_F32, 1, fdims};
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, root, &err));
    CHECK_ST(cairn_writer_declare(w, &d, 1, &err), CAIRN_E_NOT_FOUND);
    CHECK(strstr(err.message, "blk.0.q") && strstr(err.message, "not declared"));
    cairn_writer_abort(w);
    cairn_value_free(root);
}

/* The native format keeps its layout (payloads in add order): declaring
 * only checks, so the bytes are those of the same adds undeclared. Other
 * formats just check too. */
static void test_other_formats(void)
{
    cairn_value *meta = sample_meta();
    size_t n0, n1;
    plan before = {CAIRN_FORMAT_NATIVE, 0, NULL, shuffled, N_SET, meta};
    uint8_t *b0 = bytes_of(&before, "u.cairn", &n0);
    plan declared = {CAIRN_FORMAT_NATIVE, 0, reversed, shuffled, N_SET, meta};
    uint8_t *b1 = bytes_of(&declared, "d.cairn", &n1);
    CHECK(b0 && b1 && n0 == n1 && memcmp(b0, b1, n0) == 0);
    check_tensors(b1, n1, in_order, N_SET);
    free(b0);
    free(b1);
    cairn_value_free(meta);

    static const cairn_format formats[] = {CAIRN_FORMAT_NPZ, CAIRN_FORMAT_TORCH,
                                           CAIRN_FORMAT_MXNET};
    static const size_t no_bf16[] = {3, 0, 6, 2, 1}; /* npz and MXNet have no BF16 */
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        plan u = {formats[i], 0, NULL, no_bf16, 5, NULL};
        plan d = {formats[i], 0, in_order, no_bf16, 5, NULL};
        size_t decl_order[5] = {0, 1, 2, 3, 6};
        d.decl_order = decl_order;
        size_t nu, nd;
        uint8_t *bu = bytes_of(&u, "o.out", &nu), *bd = bytes_of(&d, "o.out", &nd);
        int same = bu && bd && nu == nd && memcmp(bu, bd, nu) == 0;
        if (!same)
            fprintf(stderr, "%s: declared and undeclared saves differ\n",
                    cairn_format_name(formats[i]));
        CHECK(same);
        free(bu);
        free(bd);
    }
    /* .npy holds one tensor. */
    plan npy = {CAIRN_FORMAT_NPY, 0, in_order, in_order, 1, NULL};
    size_t n;
    uint8_t *b = bytes_of(&npy, "d.npy", &n);
    cairn_error err = {0};
    cairn_file *f = NULL;
    uint8_t got[17 * 33 * 4];
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 1);
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_F32, got, sizeof got, 0, &err));
    CHECK(memcmp(got, set[0].data, sizeof got) == 0);
    cairn_file_close(f);
    free(b);
}

/* ----------------------------------------------------------- 2. misuse */

typedef cairn_status (*step_fn)(cairn_writer *w, cairn_error *err);

/* Opens a memory writer of `format`, declares set[0..2], runs `step` and
 * checks its status and that the message holds `needle`; the writer is then
 * failed (a later add is CAIRN_E_STATE). */
static void expect(cairn_format format, step_fn step, cairn_status want, const char *needle)
{
    cairn_error err = {0};
    cairn_write_opts o = opts_for(format, 0);
    cairn_writer *w = NULL;
    cairn_tensor_decl d[3];
    decls_in(in_order, 3, d);
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_declare(w, d, 3, &err));
    cairn_status st = step(w, &err);
    CHECK_ST(st, want);
    if (!strstr(err.message, needle)) {
        fprintf(stderr, "%s: message '%s' lacks '%s'\n", cairn_format_name(format), err.message,
                needle);
        CHECK(0);
    }
    CHECK_ST(add(w, &set[0], &err), CAIRN_E_STATE);
    cairn_writer_abort(w);
}

static cairn_status undeclared_add(cairn_writer *w, cairn_error *err)
{
    return add(w, &set[3], err);
}

static cairn_status other_dtype(cairn_writer *w, cairn_error *err)
{
    const tensor *t = &set[0];
    return cairn_writer_add(w, t->name, CAIRN_I32, t->rank, t->dims, t->data, err);
}

static cairn_status other_dims(cairn_writer *w, cairn_error *err)
{
    const tensor *t = &set[0];
    uint64_t dims[2] = {33, 17};
    return cairn_writer_add(w, t->name, t->dtype, 2, dims, t->data, err);
}

static cairn_status other_rank(cairn_writer *w, cairn_error *err)
{
    const tensor *t = &set[1];
    uint64_t dims[2] = {1, 33};
    return cairn_writer_add(w, t->name, t->dtype, 2, dims, t->data, err);
}

static cairn_status added_twice(cairn_writer *w, cairn_error *err)
{
    cairn_status st = add(w, &set[1], err);
    return st == CAIRN_OK ? add(w, &set[1], err) : st;
}

static cairn_status declared_twice(cairn_writer *w, cairn_error *err)
{
    cairn_tensor_decl d = decl_of(&set[3]);
    return cairn_writer_declare(w, &d, 1, err);
}

static cairn_status meta_after(cairn_writer *w, cairn_error *err)
{
    cairn_value *m = cairn_value_map();
    cairn_status st = cairn_writer_set_metadata(w, m, err);
    cairn_value_free(m);
    return st;
}

static cairn_status object_after(cairn_writer *w, cairn_error *err)
{
    return cairn_writer_append_object(w, "thing", NULL, NULL, err);
}

static void test_misuse(void)
{
    static const cairn_format formats[] = {CAIRN_FORMAT_SAFETENSORS, CAIRN_FORMAT_GGUF,
                                           CAIRN_FORMAT_NATIVE, CAIRN_FORMAT_NPZ};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        cairn_format f = formats[i];
        expect(f, undeclared_add, CAIRN_E_MISMATCH, "'mask' was not declared");
        expect(f, other_dtype, CAIRN_E_MISMATCH, "'embed.weight' is I32 [17, 33], but was "
                                                 "declared F32 [17, 33]");
        expect(f, other_dims, CAIRN_E_MISMATCH, "declared F32 [17, 33]");
        expect(f, other_rank, CAIRN_E_MISMATCH, "'a.bias' is F16 [1, 33]");
        expect(f, added_twice, CAIRN_E_EXISTS, "'a.bias' was already added");
        expect(f, declared_twice, CAIRN_E_STATE, "already called");
        expect(f, meta_after, CAIRN_E_STATE, "before cairn_writer_declare");
        expect(f, object_after, CAIRN_E_STATE, "cannot follow cairn_writer_declare");
    }

    /* Commit with a declared tensor never added names it (the first one in
     * declaration order). */
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        cairn_error err = {0};
        cairn_write_opts o = opts_for(formats[i], 0);
        cairn_writer *w = NULL;
        cairn_tensor_decl d[4];
        decls_in(in_order, 4, d);
        void *mem = NULL;
        size_t len = 0;
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_declare(w, d, 4, &err));
        CHECK_OK(add(w, &set[0], &err));
        CHECK_OK(add(w, &set[2], &err));
        CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), CAIRN_E_STATE);
        CHECK(strstr(err.message, "'a.bias' was declared but never added") &&
              strstr(err.message, "2 of 4"));
        CHECK(mem == NULL && len == 0);
    }

    /* Declaring after an add, and bad declarations. */
    cairn_error err = {0};
    cairn_write_opts st_opts = opts_for(CAIRN_FORMAT_SAFETENSORS, 0);
    cairn_writer *w = NULL;
    cairn_tensor_decl d[3];
    decls_in(in_order, 3, d);
    CHECK_OK(cairn_writer_open_memory(&st_opts, &w, &err));
    CHECK_OK(add(w, &set[0], &err));
    CHECK_ST(cairn_writer_declare(w, d, 3, &err), CAIRN_E_STATE);
    CHECK(strstr(err.message, "before the first tensor is added") != NULL);
    cairn_writer_abort(w);

    struct {
        cairn_format format;
        cairn_tensor_decl decl[2];
        size_t n;
        cairn_status want;
        const char *needle;
    } bad[] = {
        {CAIRN_FORMAT_NATIVE, {{"x", CAIRN_F32, 1, set[1].dims}, {"x", CAIRN_F16, 0, NULL}}, 2,
         CAIRN_E_EXISTS, "'x' is declared twice"},
        {CAIRN_FORMAT_NATIVE, {{"", CAIRN_F32, 0, NULL}}, 1, CAIRN_E_ARG, "tensor"},
        {CAIRN_FORMAT_NATIVE, {{NULL, CAIRN_F32, 0, NULL}}, 1, CAIRN_E_ARG, "NULL tensor name"},
        {CAIRN_FORMAT_NATIVE, {{"x", (cairn_dtype)99, 0, NULL}}, 1, CAIRN_E_ARG, "invalid dtype"},
        {CAIRN_FORMAT_NATIVE, {{"x", CAIRN_F32, 9, set[0].dims}}, 1, CAIRN_E_LIMIT, "rank 9"},
        {CAIRN_FORMAT_NATIVE, {{"x", CAIRN_F32, 2, NULL}}, 1, CAIRN_E_ARG, "NULL dims"},
        {CAIRN_FORMAT_SAFETENSORS, {{"c", CAIRN_C128, 0, NULL}}, 1, CAIRN_E_UNSUPPORTED,
         "'c': safetensors has no dtype for C128"},
        {CAIRN_FORMAT_SAFETENSORS, {{"__metadata__", CAIRN_U8, 0, NULL}}, 1,
         CAIRN_E_UNSUPPORTED, "reserved"},
        {CAIRN_FORMAT_GGUF, {{"b", CAIRN_BOOL, 0, NULL}}, 1, CAIRN_E_UNSUPPORTED,
         "'b': GGUF has no type for BOOL"},
        {CAIRN_FORMAT_GGUF, {{"r", CAIRN_F32, 5, (const uint64_t[5]){1, 1, 1, 1, 2}}}, 1,
         CAIRN_E_LIMIT, "'r': rank 5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cairn_write_opts o = opts_for(bad[i].format, 0);
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_ST(cairn_writer_declare(w, bad[i].decl, bad[i].n, &err), bad[i].want);
        if (!strstr(err.message, bad[i].needle)) {
            fprintf(stderr, "bad[%zu]: message '%s' lacks '%s'\n", i, err.message,
                    bad[i].needle);
            CHECK(0);
        }
        CHECK_ST(add(w, &set[0], &err), CAIRN_E_STATE); /* the writer failed */
        cairn_writer_abort(w);
    }
    CHECK_OK(cairn_writer_open_memory(&st_opts, &w, &err));
    CHECK_ST(cairn_writer_declare(w, NULL, 2, &err), CAIRN_E_ARG);
    cairn_writer_abort(w);
    CHECK_ST(cairn_writer_declare(NULL, d, 1, &err), CAIRN_E_ARG);

    /* A declared save of nothing is an empty archive. */
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        cairn_write_opts o = opts_for(formats[i], 0);
        void *mem = NULL;
        size_t len = 0;
        cairn_file *f = NULL;
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_declare(w, NULL, 0, &err));
        CHECK_ST(add(w, &set[0], &err), CAIRN_E_MISMATCH);
        cairn_writer_abort(w);
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_declare(w, NULL, 0, &err));
        CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
        CHECK_OK(cairn_file_open_memory(mem, len, NULL, &f, &err));
        CHECK(f && cairn_file_count(f) == 0);
        cairn_file_close(f);
        cairn_free(mem);
    }
}

/* Aliases: a declared name may be filled by an alias of a declared tensor
 * with its dtype and dims (native); safetensors still refuses aliases. */
static void test_aliases(void)
{
    cairn_error err = {0};
    cairn_write_opts o = opts_for(CAIRN_FORMAT_NATIVE, 0);
    cairn_writer *w = NULL;
    cairn_tensor_decl d[3] = {decl_of(&set[0]), decl_of(&set[0]), decl_of(&set[1])};
    d[1].name = "lm_head.weight";
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_declare(w, d, 3, &err));
    CHECK_OK(add(w, &set[0], &err));
    CHECK_OK(cairn_writer_add_alias(w, "lm_head.weight", "embed.weight", &err));
    CHECK_OK(add(w, &set[1], &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, len, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 3);
    cairn_file_close(f);
    cairn_free(mem);

    /* An alias whose name is not declared, or declared with another shape. */
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_declare(w, d, 3, &err));
    CHECK_OK(add(w, &set[0], &err));
    CHECK_ST(cairn_writer_add_alias(w, "tied", "embed.weight", &err), CAIRN_E_MISMATCH);
    CHECK(strstr(err.message, "'tied' was not declared") != NULL);
    cairn_writer_abort(w);
    d[1] = decl_of(&set[1]);
    d[1].name = "lm_head.weight";
    d[2] = decl_of(&set[2]);
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_declare(w, d, 3, &err));
    CHECK_OK(add(w, &set[0], &err));
    CHECK_ST(cairn_writer_add_alias(w, "lm_head.weight", "embed.weight", &err),
             CAIRN_E_MISMATCH);
    CHECK(strstr(err.message, "alias 'lm_head.weight' was declared F16 [33], but "
                              "'embed.weight' is F32 [17, 33]") != NULL);
    cairn_writer_abort(w);

    o = opts_for(CAIRN_FORMAT_SAFETENSORS, 0);
    d[1] = decl_of(&set[0]);
    d[1].name = "lm_head.weight";
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_declare(w, d, 2, &err));
    CHECK_OK(add(w, &set[0], &err));
    CHECK_ST(cairn_writer_add_alias(w, "lm_head.weight", "embed.weight", &err),
             CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
}

/* ------------------------------------------------------ 3. crash safety */

/* A declared save that fails or is aborted halfway leaves the target as it
 * was (absent, or the previous file) and no temporary file. */
static void test_nothing_left_behind(void)
{
    static const cairn_format formats[] = {CAIRN_FORMAT_SAFETENSORS, CAIRN_FORMAT_GGUF};
    static const char *const names[] = {"t.safetensors", "t.gguf"};
    CHECK(dir_holds_only(NULL));
    for (size_t i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", tmp, names[i]);
        for (int previous = 0; previous < 2; previous++) {
            if (previous)
                CHECK(tu_write_file(path, "old", 3) == 0);
            for (int how = 0; how < 3; how++) {
                cairn_error err = {0};
                cairn_write_opts o = opts_for(formats[i], 0);
                o.flags = 0; /* the real protocol, fsyncs included */
                cairn_writer *w = NULL;
                cairn_tensor_decl d[N_SET];
                decls_in(in_order, N_SET, d);
                CHECK_OK(cairn_writer_open_path(path, &o, &w, &err));
                CHECK_OK(cairn_writer_declare(w, d, N_SET, &err));
                CHECK_OK(add(w, &set[5], &err));
                CHECK_OK(add(w, &set[0], &err));
                if (how == 0) { /* aborted */
                    cairn_writer_abort(w);
                } else if (how == 1) { /* committed with tensors missing */
                    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_STATE);
                } else { /* a bad add, then commit */
                    CHECK_ST(add(w, &set[5], &err), CAIRN_E_EXISTS);
                    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_STATE);
                }
                size_t n = 0;
                uint8_t *now = tu_read_whole(path, &n);
                CHECK(previous ? now && n == 3 && memcmp(now, "old", 3) == 0 : now == NULL);
                free(now);
                CHECK(dir_holds_only(previous ? names[i] : NULL));
            }
            unlink(path);
        }
    }
}

/* -------------------------------------------------------- 4. the CLI */

/* `cairn convert` declares: its safetensors and GGUF outputs are the files
 * the spooling path writes for the same tensors and metadata. */
static void test_convert(void)
{
    const char *cli = getenv("CAIRN_CLI");
    if (!cli || !*cli) {
        fprintf(stderr, "CAIRN_CLI unset: convert check skipped\n");
        return;
    }
    cairn_error err = {0};
    cairn_value *meta = sample_meta(); /* GGUF holds no tensor references */
    cairn_value_set(meta, "tied", cairn_value_string("embed.weight"), &err);
    char src[4200], out[4200], cmd[9000];
    snprintf(src, sizeof src, "%s/src.cairn", tmp);
    plan native = {CAIRN_FORMAT_NATIVE, 0, NULL, in_order, N_SET, meta};
    CHECK_OK(run(&native, src, NULL, NULL, &err));
    cairn_file *in = NULL;
    CHECK_OK(cairn_file_open(src, NULL, &in, &err));
    static const char *const exts[] = {"safetensors", "gguf"};
    for (int k = 0; in && k < 2; k++) {
        snprintf(out, sizeof out, "%s/out.%s", tmp, exts[k]);
        snprintf(cmd, sizeof cmd, "'%s' convert '%s' '%s' --no-progress --no-sync", cli, src,
                 out);
        CHECK(system(cmd) == 0);
        /* The reference: the same metadata and tensors, added undeclared in
         * the source's order. */
        cairn_value *m = NULL;
        CHECK_OK(cairn_file_read_metadata(in, &m, &err));
        cairn_write_opts o = opts_for(k ? CAIRN_FORMAT_GGUF : CAIRN_FORMAT_SAFETENSORS, 0);
        cairn_writer *w = NULL;
        void *mem = NULL;
        size_t len = 0, n = 0;
        CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
        CHECK_OK(cairn_writer_set_metadata(w, m, &err));
        for (uint64_t i = 0; i < cairn_file_count(in); i++) {
            cairn_tensor_info t;
            const void *data = NULL;
            CHECK_OK(cairn_tensor_info_at(in, i, &t, &err));
            CHECK_OK(cairn_tensor_data(in, i, &data, &err));
            CHECK_OK(cairn_writer_add(w, t.name, t.dtype, t.rank, t.dims, data, &err));
        }
        CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
        uint8_t *disk = tu_read_whole(out, &n);
        CHECK(disk && n == len && memcmp(disk, mem, n) == 0);
        check_tensors(disk, n, in_order, N_SET);
        free(disk);
        cairn_free(mem);
        cairn_value_free(m);
        unlink(out);
    }
    cairn_file_close(in);
    unlink(src);
    cairn_value_free(meta);
}

int main(void)
{
    tmp = tu_tmpdir("test_writer_declare");
    fill_set();
    test_safetensors_same_bytes();
    test_gguf_same_bytes();
    test_gguf_quantized();
    test_other_formats();
    test_misuse();
    test_aliases();
    test_nothing_left_behind();
    test_convert();
    for (size_t i = 0; i < N_SET; i++)
        free(set[i].data);
    rmdir(tmp);
    TEST_MAIN_END();
}
