/* test_mxnet.c -- MXNet nd.save (.params): round trips of every dtype, list
 * and dict forms, hand-built V1/V2/V3 and sparse files, and malformed input. */
#include "testutil.h"

#include <cairn.h>

#define LIST_MAGIC 0x112u
#define V1 0xF993FAC8u
#define V2 0xF993FAC9u
#define V3 0xF993FACAu

/* ------------------------------------------------------- a byte builder */

typedef struct buf {
    uint8_t b[1 << 16];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void header(buf *b, uint64_t n)
{
    b->n = 0;
    u64(b, LIST_MAGIC);
    u64(b, 0);
    u64(b, n);
}
static void shape(buf *b, int32_t ndim, const int64_t *d)
{
    u32(b, (uint32_t)ndim);
    for (int i = 0; i < ndim; i++)
        u64(b, (uint64_t)d[i]);
}
static void ctx_flag(buf *b, int32_t flag)
{
    u32(b, 1); /* cpu */
    u32(b, 0);
    u32(b, (uint32_t)flag);
}
static void names(buf *b, int n, const char *const *s)
{
    u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        u64(b, strlen(s[i]));
        put(b, s[i], strlen(s[i]));
    }
}

static cairn_status open_mem(const buf *b, cairn_file **f, cairn_error *err)
{
    return cairn_file_open_memory(b->b, b->n, NULL, f, err);
}

/* ------------------------------------------------------------- round trips */

static const cairn_dtype all_dtypes[] = {CAIRN_F32, CAIRN_F64, CAIRN_F16, CAIRN_U8,  CAIRN_I32,
                                         CAIRN_I8,  CAIRN_I64, CAIRN_BOOL, CAIRN_I16, CAIRN_U16,
                                         CAIRN_U32, CAIRN_U64, CAIRN_BF16};
#define NDT (sizeof all_dtypes / sizeof all_dtypes[0])

static void fill(uint8_t *p, size_t n, cairn_dtype d, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = d == CAIRN_BOOL ? (uint8_t)((i + seed) & 1) : (uint8_t)(i * 7 + seed);
}

static void test_roundtrip_all_dtypes(void)
{
    cairn_writer *w;
    cairn_error err;
    uint8_t data[NDT][6 * 8];
    uint64_t dims[2] = {2, 3};
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_MXNET},
                                      &w, &err));
    for (size_t i = 0; i < NDT; i++) {
        char name[32];
        snprintf(name, sizeof name, "arg:w%zu", i);
        fill(data[i], 6 * cairn_dtype_size(all_dtypes[i]), all_dtypes[i], (unsigned)i);
        CHECK_OK(cairn_writer_add(w, name, all_dtypes[i], 2, dims, data[i], &err));
    }
    void *out = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_commit_memory(w, &out, &len, &err));
    if (!out)
        return;
    const uint8_t *p = out;
    CHECK(len > 24 && p[0] == 0x12 && p[1] == 0x01);
    uint32_t magic;
    memcpy(&magic, p + 24, 4);
    CHECK(magic == V2); /* no scalar or empty dimension: nd.load's default semantics */
    cairn_file *f;
    CHECK_OK(cairn_file_open_memory(out, len, NULL, &f, &err));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_MXNET && fi.tensor_count == NDT);
    CHECK(strcmp(cairn_format_name(CAIRN_FORMAT_MXNET), "mxnet") == 0);
    for (size_t i = 0; i < NDT; i++) {
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_info_at(f, i, &ti, &err));
        char name[32];
        snprintf(name, sizeof name, "arg:w%zu", i);
        CHECK(strcmp(ti.name, name) == 0);
        CHECK(ti.dtype == all_dtypes[i] && ti.rank == 2 && ti.dims[0] == 2 && ti.dims[1] == 3);
        uint8_t back[6 * 8];
        CHECK_OK(cairn_tensor_read(f, i, ti.dtype, back, (size_t)ti.raw_size, 0, &err));
        CHECK(memcmp(back, data[i], (size_t)ti.raw_size) == 0);
        const void *view;
        CHECK_OK(cairn_tensor_data(f, i, &view, &err));
    }
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    cairn_free(out);
    /* dtypes MXNet lacks are refused, naming the tensor */
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_MXNET},
                                      &w, &err));
    CHECK_ST(cairn_writer_add(w, "c", CAIRN_C64, 2, dims, data[0], &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "'c'") != NULL);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_MXNET},
                                      &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_U8, 2, dims, data[0], &err));
    CHECK_ST(cairn_writer_add(w, "a", CAIRN_U8, 2, dims, data[0], &err), CAIRN_E_EXISTS);
    cairn_writer_abort(w);
}

/* Names "0", "1", ... give the list form (no names), which reads back so. */
static void test_list_form_and_v3(void)
{
    cairn_writer *w;
    cairn_error err;
    float a = 1.5f, b[2] = {2, 3};
    uint64_t d0[1] = {0}, d2[1] = {2};
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_MXNET},
                                      &w, &err));
    CHECK_OK(cairn_writer_add(w, "0", CAIRN_F32, 0, NULL, &a, &err)); /* scalar: V3 */
    CHECK_OK(cairn_writer_add(w, "1", CAIRN_F32, 1, d2, b, &err));
    CHECK_OK(cairn_writer_add(w, "2", CAIRN_F32, 1, d0, NULL, &err));
    void *out = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_commit_memory(w, &out, &len, &err));
    if (!out)
        return;
    const uint8_t *p = out;
    uint64_t n_names;
    memcpy(&n_names, p + len - 8, 8);
    CHECK(n_names == 0);
    uint32_t magic;
    memcpy(&magic, p + 24, 4);
    CHECK(magic == V3);
    /* every record patched to V3: nd.load refuses a file that mixes them */
    memcpy(&magic, p + 24 + 12 + 12 + 4, 4);
    CHECK(magic == V3);
    cairn_file *f;
    CHECK_OK(cairn_file_open_memory(out, len, NULL, &f, &err));
    cairn_tensor_info ti;
    CHECK_OK(cairn_tensor_find(f, "0", NULL, &ti, &err));
    CHECK(ti.rank == 0 && ti.count == 1);
    CHECK_OK(cairn_tensor_find(f, "2", NULL, &ti, &err));
    CHECK(ti.rank == 1 && ti.count == 0);
    float back[2];
    CHECK_OK(cairn_tensor_find(f, "1", NULL, &ti, &err));
    uint64_t idx;
    CHECK_OK(cairn_tensor_find(f, "1", &idx, NULL, &err));
    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F32, back, sizeof back, 0, &err));
    CHECK(back[0] == 2 && back[1] == 3);
    cairn_file_close(f);
    cairn_free(out);
}

/* The writer's bytes match the layout nd.save writes, field by field. */
static void test_exact_bytes(void)
{
    cairn_writer *w;
    cairn_error err;
    int32_t v[3] = {7, 8, 9};
    uint64_t d[1] = {3};
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_MXNET},
                                      &w, &err));
    CHECK_OK(cairn_writer_add(w, "arg:fc", CAIRN_I32, 1, d, v, &err));
    void *out;
    size_t len;
    CHECK_OK(cairn_writer_commit_memory(w, &out, &len, &err));
    static buf b;
    header(&b, 1);
    u32(&b, V2);
    u32(&b, 0);
    shape(&b, 1, (int64_t[]){3});
    ctx_flag(&b, 4);
    put(&b, v, sizeof v);
    names(&b, 1, (const char *[]){"arg:fc"});
    CHECK(len == b.n && memcmp(out, b.b, b.n) == 0);
    cairn_free(out);
}

/* A file holding each record version, in dict form. */
static void build_versions(buf *b)
{
    header(b, 3);
    u32(b, V1); /* V1: no storage type */
    shape(b, 2, (int64_t[]){2, 2});
    ctx_flag(b, 0);
    float f[4] = {1, 2, 3, 4};
    put(b, f, sizeof f);
    u32(b, V2);
    u32(b, 0);
    shape(b, 1, (int64_t[]){3});
    ctx_flag(b, 6);
    int64_t q[3] = {-1, 0, 1};
    put(b, q, sizeof q);
    u32(b, V3);
    u32(b, 0);
    shape(b, 0, NULL); /* a scalar under np semantics */
    ctx_flag(b, 1);
    double x = 2.5;
    put(b, &x, 8);
    names(b, 3, (const char *[]){"arg:a", "aux:b", "c"});
}

static void test_versions(void)
{
    static buf b;
    build_versions(&b);
    cairn_file *f;
    cairn_error err;
    CHECK_OK(open_mem(&b, &f, &err));
    if (!f)
        return;
    cairn_tensor_info ti;
    CHECK_OK(cairn_tensor_find(f, "arg:a", NULL, &ti, &err));
    CHECK(ti.dtype == CAIRN_F32 && ti.rank == 2 && ti.dims[1] == 2);
    CHECK_OK(cairn_tensor_find(f, "aux:b", NULL, &ti, &err));
    CHECK(ti.dtype == CAIRN_I64 && ti.count == 3);
    uint64_t idx;
    CHECK_OK(cairn_tensor_find(f, "c", &idx, &ti, &err));
    CHECK(ti.dtype == CAIRN_F64 && ti.rank == 0);
    double x = 0;
    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F64, &x, 8, 0, &err));
    CHECK(x == 2.5);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.version_major == 3);
    cairn_file_close(f);
}

/* csr: data, then aux indptr and indices; row_sparse: data, then indices. */
static void build_sparse(buf *b)
{
    header(b, 2);
    u32(b, V2);
    u32(b, 2); /* csr */
    shape(b, 1, (int64_t[]){3});    /* storage shape: 3 non-zeros */
    shape(b, 2, (int64_t[]){2, 4}); /* logical shape */
    ctx_flag(b, 0);
    u32(b, 6); /* indptr I64 */
    shape(b, 1, (int64_t[]){3});
    u32(b, 6); /* indices I64 */
    shape(b, 1, (int64_t[]){3});
    float v[3] = {1, 2, 3};
    put(b, v, sizeof v);
    int64_t indptr[3] = {0, 1, 3}, idx[3] = {2, 0, 3};
    put(b, indptr, sizeof indptr);
    put(b, idx, sizeof idx);
    u32(b, V2);
    u32(b, 1);                      /* row_sparse */
    shape(b, 2, (int64_t[]){1, 2}); /* one stored row */
    shape(b, 2, (int64_t[]){5, 2});
    ctx_flag(b, 0);
    u32(b, 6);
    shape(b, 1, (int64_t[]){1});
    float r[2] = {4, 5};
    put(b, r, sizeof r);
    int64_t row = 3;
    put(b, &row, 8);
    names(b, 2, (const char *[]){"m", "e"});
}

static void test_sparse(void)
{
    static buf b;
    build_sparse(&b);
    cairn_file *f;
    cairn_error err;
    CHECK_OK(open_mem(&b, &f, &err));
    if (!f)
        return;
    CHECK(cairn_file_count(f) == 5);
    const char *want[] = {"m.data", "m.indptr", "m.indices", "e.data", "e.indices"};
    for (int i = 0; i < 5; i++) {
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_info_at(f, (uint64_t)i, &ti, &err));
        CHECK(strcmp(ti.name, want[i]) == 0);
    }
    int64_t ip[3];
    uint64_t idx;
    CHECK_OK(cairn_tensor_find(f, "m.indptr", &idx, NULL, &err));
    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_I64, ip, sizeof ip, 0, &err));
    CHECK(ip[2] == 3);
    float r[2];
    CHECK_OK(cairn_tensor_find(f, "e.data", &idx, NULL, &err));
    CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F32, r, sizeof r, 0, &err));
    CHECK(r[0] == 4 && r[1] == 5);
    cairn_file_close(f);
}

/* --------------------------------------------------------------- malformed */

static void expect_fail(const buf *b, cairn_status want, const char *what)
{
    cairn_file *f = NULL;
    cairn_error err;
    cairn_status st = open_mem(b, &f, &err);
    if (st != want)
        fprintf(stderr, "%s: got %d (%s)\n", what, (int)st, st ? err.message : "ok");
    CHECK(st == want);
    CHECK(f == NULL);
    cairn_file_close(f);
}

static void test_malformed(void)
{
    static buf b;
    header(&b, 1000000); /* count past EOF */
    names(&b, 0, NULL);
    expect_fail(&b, CAIRN_E_CORRUPT, "count past EOF");

    header(&b, 1); /* huge shape */
    u32(&b, V2);
    u32(&b, 0);
    shape(&b, 2, (int64_t[]){INT64_MAX, 4});
    ctx_flag(&b, 0);
    names(&b, 0, NULL);
    expect_fail(&b, CAIRN_E_CORRUPT, "huge shape");

    header(&b, 1); /* shape past EOF */
    u32(&b, V2);
    u32(&b, 0);
    shape(&b, 1, (int64_t[]){1000});
    ctx_flag(&b, 0);
    names(&b, 0, NULL);
    expect_fail(&b, CAIRN_E_CORRUPT, "data past EOF");

    header(&b, 1); /* unknown type_flag */
    u32(&b, V2);
    u32(&b, 0);
    shape(&b, 1, (int64_t[]){1});
    ctx_flag(&b, 13);
    u32(&b, 0);
    names(&b, 0, NULL);
    expect_fail(&b, CAIRN_E_UNSUPPORTED, "type_flag 13");

    header(&b, 1); /* negative dim, rank 9 */
    u32(&b, V3);
    u32(&b, 0);
    shape(&b, 1, (int64_t[]){-5});
    expect_fail(&b, CAIRN_E_CORRUPT, "negative dim");
    header(&b, 1);
    u32(&b, V3);
    u32(&b, 0);
    shape(&b, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    expect_fail(&b, CAIRN_E_UNSUPPORTED, "rank 9");

    header(&b, 1); /* unknown record magic (pre-V1 legacy is not read) */
    u32(&b, 2);
    u64(&b, 0);
    expect_fail(&b, CAIRN_E_UNSUPPORTED, "bad record magic");

    header(&b, 1); /* none array */
    u32(&b, V2);
    u32(&b, 0);
    shape(&b, 0, NULL);
    names(&b, 0, NULL);
    expect_fail(&b, CAIRN_E_UNSUPPORTED, "none array");

    header(&b, 2); /* name count neither 0 nor n */
    for (int i = 0; i < 2; i++) {
        u32(&b, V2);
        u32(&b, 0);
        shape(&b, 1, (int64_t[]){1});
        ctx_flag(&b, 3);
        put(&b, "x", 1);
    }
    size_t at = b.n;
    names(&b, 1, (const char *[]){"a"});
    expect_fail(&b, CAIRN_E_CORRUPT, "1 name for 2 arrays");
    b.n = at;
    names(&b, 2, (const char *[]){"a", "a"});
    expect_fail(&b, CAIRN_E_CORRUPT, "duplicate names");
    b.n = at;
    names(&b, 2, (const char *[]){"a", "b"});
    u32(&b, 0);
    expect_fail(&b, CAIRN_E_CORRUPT, "trailing bytes");
    b.n = at;
    u64(&b, 2);
    u64(&b, UINT64_MAX); /* name length */
    expect_fail(&b, CAIRN_E_CORRUPT, "name length");
}

/* Every prefix of valid files fails cleanly; random flips never crash. */
static void test_truncation_and_flips(void)
{
    static buf full, b;
    void (*builders[])(buf *) = {build_versions, build_sparse};
    for (size_t k = 0; k < 2; k++) {
        builders[k](&full);
        for (size_t n = 0; n < full.n; n++) {
            memcpy(b.b, full.b, n);
            b.n = n;
            cairn_file *f = NULL;
            CHECK(open_mem(&b, &f, NULL) != CAIRN_OK);
            cairn_file_close(f);
        }
        uint64_t seed = 42 + k;
        for (int round = 0; round < 3000; round++) {
            memcpy(b.b, full.b, full.n);
            b.n = full.n;
            for (int j = 0; j < 1 + round % 4; j++)
                b.b[tu_rand(&seed) % b.n] ^= (uint8_t)(1u << (tu_rand(&seed) % 8));
            cairn_file *f = NULL;
            cairn_format fmt = CAIRN_FORMAT_MXNET;
            cairn_open_opts o = {.struct_size = sizeof o, .format = fmt};
            if (cairn_file_open_memory(b.b, b.n, &o, &f, NULL) == CAIRN_OK) {
                for (uint64_t i = 0; i < cairn_file_count(f); i++) {
                    cairn_tensor_info ti;
                    if (cairn_tensor_info_at(f, i, &ti, NULL) == CAIRN_OK && ti.raw_size < 65536) {
                        uint8_t tmp[65536];
                        cairn_tensor_read(f, i, ti.dtype, tmp, (size_t)ti.raw_size, 0, NULL);
                    }
                }
                cairn_file_verify(f, NULL);
            }
            cairn_file_close(f);
        }
    }
}

/* A path save by extension, detection by content, and a .params -> .npz ->
 * .params conversion through the archive API. */
static void test_path_and_detect(void)
{
    const char *dir = tu_tmpdir("test_mxnet");
    char path[4200];
    snprintf(path, sizeof path, "%s/model-0001.params", dir);
    cairn_writer *w;
    cairn_error err;
    uint16_t h[4] = {1, 2, 3, 4};
    uint64_t d[2] = {2, 2};
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "arg:x", CAIRN_BF16, 2, d, h, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file *f;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_MXNET);
    cairn_file_close(f);
    cairn_open_opts o = {.struct_size = sizeof o, .flags = CAIRN_OPEN_NO_MMAP};
    CHECK_OK(cairn_file_open(path, &o, &f, &err));
    uint16_t back[4];
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_BF16, back, sizeof back, 0, &err));
    CHECK(memcmp(back, h, sizeof h) == 0);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
}

int main(void)
{
    test_roundtrip_all_dtypes();
    test_list_form_and_v3();
    test_exact_bytes();
    test_versions();
    test_sparse();
    test_malformed();
    test_truncation_and_flips();
    test_path_and_detect();
    TEST_MAIN_END();
}
