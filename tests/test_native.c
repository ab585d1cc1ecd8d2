/* test_native.c -- round trips, edge shapes, names, limits and the file/memory
 * back ends of the native .cairn format, through the public API only. */
#include "testutil.h"

#include <cairn.h>
#include <fcntl.h>
#include <pthread.h>

static const char *dir;

static void fill(void *buf, size_t bytes, uint64_t seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < bytes; i++) {
        if (i % 8 == 0)
            seed = tu_rand(&seed);
        p[i] = (uint8_t)(seed >> (8 * (i % 8)));
    }
}

static char *path_of(const char *name) { return tu_path(dir, name); }

typedef struct spec {
    const char *name;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[8];
} spec;

static size_t spec_bytes(const spec *s)
{
    size_t n = cairn_dtype_size(s->dtype);
    for (uint32_t d = 0; d < s->rank; d++)
        n *= s->dims[d];
    return n;
}

/* Writes the same tensors to a path and to memory; checks identical bytes;
 * reads everything back both ways and checks every byte. */
static void round_trip(const spec *specs, size_t n, const char *file)
{
    void **data = calloc(n, sizeof *data);
    for (size_t i = 0; i < n; i++) {
        data[i] = malloc(spec_bytes(&specs[i]) + 1);
        fill(data[i], spec_bytes(&specs[i]), i + 1);
        if (specs[i].dtype == CAIRN_BOOL)
            for (size_t k = 0; k < spec_bytes(&specs[i]); k++)
                ((uint8_t *)data[i])[k] &= 1;
    }
    cairn_writer *fw, *mw;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path_of(file), NULL, &fw, &err));
    CHECK_OK(cairn_writer_open_memory(NULL, &mw, &err));
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(cairn_writer_add(fw, specs[i].name, specs[i].dtype, specs[i].rank, specs[i].dims,
                                  data[i], &err));
        CHECK_OK(cairn_writer_add(mw, specs[i].name, specs[i].dtype, specs[i].rank, specs[i].dims,
                                  data[i], &err));
    }
    CHECK_OK(cairn_writer_commit(fw, &err));
    void *mem;
    size_t mem_size;
    CHECK_OK(cairn_writer_commit_memory(mw, &mem, &mem_size, &err));
    size_t fsize;
    void *fbytes = tu_read_whole(path_of(file), &fsize);
    CHECK(fbytes && fsize == mem_size && memcmp(fbytes, mem, fsize) == 0);
    free(fbytes);

    for (int backend = 0; backend < 3; backend++) {
        cairn_file *f = NULL;
        cairn_open_opts opts = {.struct_size = sizeof opts, .flags = CAIRN_OPEN_VERIFY, .format = CAIRN_FORMAT_AUTO};
        if (backend == 2)
            opts.flags |= CAIRN_OPEN_NO_MMAP;
        if (backend == 1)
            CHECK_OK(cairn_file_open_memory(mem, mem_size, &opts, &f, &err));
        else
            CHECK_OK(cairn_file_open(path_of(file), &opts, &f, &err));
        if (!f) {
            fprintf(stderr, "open failed: %s\n", err.message);
            continue;
        }
        CHECK(cairn_file_count(f) == n);
        for (size_t i = 0; i < n; i++) {
            cairn_tensor_info t;
            uint64_t idx;
            CHECK_OK(cairn_tensor_find(f, specs[i].name, &idx, &t, &err));
            CHECK(strcmp(t.name, specs[i].name) == 0);
            CHECK(t.dtype == specs[i].dtype && t.rank == specs[i].rank);
            CHECK(memcmp(t.dims, specs[i].dims, sizeof(uint64_t) * specs[i].rank) == 0);
            CHECK(t.raw_size == spec_bytes(&specs[i]));
            CHECK(t.offset % 64 == 0 && t.alignment == 64);
            size_t bytes = spec_bytes(&specs[i]);
            void *back = malloc(bytes + 1);
            CHECK_OK(cairn_tensor_read(f, idx, t.dtype, back, bytes, CAIRN_READ_VERIFY, &err));
            CHECK(memcmp(back, data[i], bytes) == 0);
            const void *view = NULL;
            if (backend == 2) {
                CHECK(!t.zero_copy);
                CHECK_ST(cairn_tensor_data(f, idx, &view, &err), CAIRN_E_UNSUPPORTED);
            } else {
                CHECK(t.zero_copy);
                CHECK_OK(cairn_tensor_data(f, idx, &view, &err));
                CHECK(view && memcmp(view, data[i], bytes) == 0);
                CHECK(((uintptr_t)view - (uintptr_t)(backend == 1 ? mem : 0)) % 64 == 0 ||
                      backend == 1);
            }
            CHECK_ST(cairn_tensor_read(f, idx, t.dtype, back, bytes + 1, 0, &err), CAIRN_E_SIZE);
            free(back);
        }
        CHECK_OK(cairn_file_verify(f, &err));
        cairn_file_close(f);
    }
    free(mem);
    for (size_t i = 0; i < n; i++)
        free(data[i]);
    free(data);
}

static void test_every_dtype_and_shape(void)
{
    static const char *names[] = {"", "F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I8",
                                  "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL", "C64",
                                  "C128"};
    spec specs[17 * 5];
    char name_buf[17 * 5][64];
    size_t n = 0;
    for (int d = 1; d < CAIRN_DTYPE_COUNT; d++) {
        CHECK(strcmp(cairn_dtype_name((cairn_dtype)d), names[d]) == 0);
        const spec shapes[5] = {
            {NULL, (cairn_dtype)d, 0, {0}},                       /* 0-d scalar */
            {NULL, (cairn_dtype)d, 2, {0, 7}},                    /* empty */
            {NULL, (cairn_dtype)d, 1, {1}},                       /* one element */
            {NULL, (cairn_dtype)d, 8, {2, 1, 3, 1, 2, 2, 1, 3}},  /* rank 8 */
            {NULL, (cairn_dtype)d, 3, {5, 7, 11}},
        };
        for (int s = 0; s < 5; s++) {
            snprintf(name_buf[n], sizeof name_buf[n], "%s/shape%d", names[d], s);
            specs[n] = shapes[s];
            specs[n].name = name_buf[n];
            n++;
        }
    }
    round_trip(specs, n, "dtypes.cairn");
}

static void test_big_tensor(void)
{
    spec s[2] = {{"big.f32", CAIRN_F32, 1, {10000000}}, {"big.u8", CAIRN_U8, 2, {1000, 10000}}};
    round_trip(s, 2, "big.cairn");
}

static void test_names(void)
{
    char long1000[1001], long4096[4097], long4097[4098];
    memset(long1000, 'a', 1000);
    long1000[1000] = 0;
    memset(long4096, 'b', 4096);
    long4096[4096] = 0;
    memset(long4097, 'c', 4097);
    long4097[4097] = 0;
    spec s[6] = {
        {"\xce\xb8.poids", CAIRN_F32, 1, {3}},           /* Greek */
        {"\xe6\xa8\xa1\xe5\x9e\x8b/\xe6\x9d\x83\xe9\x87\x8d", CAIRN_F16, 1, {2}}, /* CJK */
        {"\xf0\x9f\xa7\xb1 emoji", CAIRN_U8, 0, {0}},
        {long1000, CAIRN_I32, 1, {4}},
        {long4096, CAIRN_I8, 1, {1}},
        {"../../etc/passwd", CAIRN_U8, 1, {2}},
    };
    round_trip(s, 6, "names.cairn");

    cairn_writer *w;
    cairn_error err;
    float x = 1;
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_ST(cairn_writer_add(w, long4097, CAIRN_F32, 0, NULL, &x, &err), CAIRN_E_ARG);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_ST(cairn_writer_add(w, "", CAIRN_F32, 0, NULL, &x, &err), CAIRN_E_ARG);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_ST(cairn_writer_add(w, "bad\xff", CAIRN_F32, 0, NULL, &x, &err), CAIRN_E_ARG);
    CHECK(strstr(err.message, "UTF-8") != NULL);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, &x, &err));
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, &x, &err), CAIRN_E_EXISTS);
    CHECK(strstr(err.message, "'x'") != NULL);
    /* the writer is now failed: further calls and commit refuse */
    CHECK_ST(cairn_writer_add(w, "y", CAIRN_F32, 0, NULL, &x, &err), CAIRN_E_STATE);
    void *mem;
    size_t size;
    CHECK_ST(cairn_writer_commit_memory(w, &mem, &size, &err), CAIRN_E_STATE);
    CHECK(mem == NULL && size == 0);
}

static void test_zero_tensors(void)
{
    round_trip(NULL, 0, "empty.cairn");
    cairn_file *f;
    cairn_error err;
    CHECK_OK(cairn_file_open(path_of("empty.cairn"), NULL, &f, &err));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.tensor_count == 0 && fi.payload_bytes == 0 && fi.format == CAIRN_FORMAT_NATIVE);
    CHECK(fi.file_size == 64 + 128);
    CHECK_ST(cairn_tensor_find(f, "x", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    cairn_file_close(f);
}

static void test_many_tensors(void)
{
    enum { N = 100000 };
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path_of("many.cairn"), NULL, &w, &err));
    for (int i = N - 1; i >= 0; i--) { /* reverse order: the writer sorts */
        char name[32];
        int32_t v[2] = {i, -i};
        uint64_t dim = 2;
        snprintf(name, sizeof name, "layer%06d.w", i);
        if (cairn_writer_add(w, name, CAIRN_I32, 1, &dim, v, &err) != CAIRN_OK) {
            CHECK(0);
            break;
        }
    }
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file *f;
    CHECK_OK(cairn_file_open(path_of("many.cairn"), NULL, &f, &err));
    CHECK(cairn_file_count(f) == N);
    int bad = 0;
    for (int i = 0; i < N; i += 7) {
        char name[32];
        uint64_t idx;
        int32_t v[2];
        snprintf(name, sizeof name, "layer%06d.w", i);
        if (cairn_tensor_find(f, name, &idx, NULL, &err) != CAIRN_OK || idx != (uint64_t)i ||
            cairn_tensor_read(f, idx, CAIRN_I32, v, sizeof v, CAIRN_READ_VERIFY, &err) != CAIRN_OK ||
            v[0] != i || v[1] != -i)
            bad++;
    }
    CHECK(bad == 0);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
}

static void test_alias_and_metadata(void)
{
    cairn_writer *w;
    cairn_error err;
    float emb[6] = {1, 2, 3, 4, 5, 6};
    uint64_t dims[2] = {2, 3};
    CHECK_OK(cairn_writer_open_path(path_of("tied.cairn"), NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "embed.weight", CAIRN_F32, 2, dims, emb, &err));
    CHECK_OK(cairn_writer_add_alias(w, "head.weight", "embed.weight", &err));
    cairn_value *meta = cairn_value_map(), *hist = cairn_value_list();
    CHECK_OK(cairn_value_set(meta, "epoch", cairn_value_int(7), &err));
    CHECK_OK(cairn_value_set(meta, "loss", cairn_value_float(0.25), &err));
    CHECK_OK(cairn_value_set(meta, "tied", cairn_value_tensor_ref("head.weight"), &err));
    CHECK_OK(cairn_value_append(hist, cairn_value_float(0.0 / 0.0), &err));
    CHECK_OK(cairn_value_set(meta, "history", hist, &err));
    CHECK_OK(cairn_writer_set_metadata(w, meta, &err));
    cairn_value_free(meta);
    CHECK_OK(cairn_writer_commit(w, &err));

    cairn_file *f;
    CHECK_OK(cairn_file_open(path_of("tied.cairn"), NULL, &f, &err));
    cairn_tensor_info a, b;
    CHECK_OK(cairn_tensor_find(f, "embed.weight", NULL, &a, &err));
    CHECK_OK(cairn_tensor_find(f, "head.weight", NULL, &b, &err));
    CHECK(a.offset == b.offset && a.checksum == b.checksum);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.payload_bytes == sizeof emb && fi.has_metadata);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_value *back;
    CHECK_OK(cairn_file_read_metadata(f, &back, &err));
    int64_t epoch = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_get(back, "epoch"), &epoch));
    CHECK(epoch == 7);
    const void *ref;
    size_t ref_len;
    CHECK_OK(cairn_value_get_data(cairn_value_get(back, "tied"), &ref, &ref_len));
    CHECK(ref_len == 11 && memcmp(ref, "head.weight", 11) == 0);
    CHECK(cairn_value_count(cairn_value_get(back, "history")) == 1);
    cairn_value_free(back);
    cairn_file_close(f);

    /* a tensor reference to nothing is refused at commit, and no file appears */
    CHECK_OK(cairn_writer_open_path(path_of("dangling.cairn"), NULL, &w, &err));
    meta = cairn_value_map();
    CHECK_OK(cairn_value_set(meta, "ref", cairn_value_tensor_ref("missing"), &err));
    CHECK_OK(cairn_writer_set_metadata(w, meta, &err));
    cairn_value_free(meta);
    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_NOT_FOUND);
    CHECK(access(path_of("dangling.cairn"), F_OK) != 0);
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_ST(cairn_writer_add_alias(w, "a", "nothing", &err), CAIRN_E_NOT_FOUND);
    cairn_writer_abort(w);
}

static void test_conversion_on_read(void)
{
    cairn_writer *w;
    cairn_error err;
    float v[4] = {1.0f, -2.5f, 65504.0f, 1e-8f};
    int16_t iv[3] = {-32768, 0, 32767};
    uint64_t d4 = 4, d3 = 3;
    void *mem;
    size_t size;
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "f", CAIRN_F32, 1, &d4, v, &err));
    CHECK_OK(cairn_writer_add(w, "i", CAIRN_I16, 1, &d3, iv, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &size, &err));
    cairn_file *f;
    CHECK_OK(cairn_file_open_memory(mem, size, NULL, &f, &err));
    double dv[4];
    uint16_t hv[4];
    int64_t lv[3];
    int8_t bv[3];
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_F64, dv, sizeof dv, CAIRN_READ_VERIFY, &err));
    CHECK(dv[0] == 1.0 && dv[1] == -2.5 && dv[2] == 65504.0 && dv[3] == (double)1e-8f);
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_F16, hv, sizeof hv, 0, &err));
    CHECK(hv[0] == 0x3C00 && hv[1] == 0xC100 && hv[2] == 0x7BFF && hv[3] == 0x0000);
    CHECK_OK(cairn_tensor_read(f, 1, CAIRN_I64, lv, sizeof lv, 0, &err));
    CHECK(lv[0] == -32768 && lv[1] == 0 && lv[2] == 32767);
    CHECK_ST(cairn_tensor_read(f, 1, CAIRN_I8, bv, sizeof bv, 0, &err), CAIRN_E_DTYPE);
    CHECK(strstr(err.message, "I16") && strstr(err.message, "I8"));
    cairn_file_close(f);
    free(mem);
}

/* Several threads read and verify the same open file at once. */
static cairn_file *shared_file;
static void *reader_thread(void *arg)
{
    long bad = 0;
    cairn_error err;
    float buf[1000];
    for (int rep = 0; rep < 200; rep++) {
        for (uint64_t i = 0; i < cairn_file_count(shared_file); i++) {
            if (cairn_tensor_read(shared_file, i, CAIRN_F32, buf, sizeof buf, CAIRN_READ_VERIFY,
                                  &err) != CAIRN_OK ||
                buf[7] != (float)(i * 1000 + 7))
                bad++;
        }
    }
    return (void *)bad;
}

static void test_concurrent_reads(void)
{
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path_of("threads.cairn"), NULL, &w, &err));
    for (int t = 0; t < 16; t++) {
        float v[1000];
        for (int i = 0; i < 1000; i++)
            v[i] = (float)(t * 1000 + i);
        char name[16];
        uint64_t d = 1000;
        snprintf(name, sizeof name, "t%02d", t);
        CHECK_OK(cairn_writer_add(w, name, CAIRN_F32, 1, &d, v, &err));
    }
    CHECK_OK(cairn_writer_commit(w, &err));
    for (int mode = 0; mode < 2; mode++) {
        cairn_open_opts opts = {.struct_size = sizeof opts, .flags = mode ? CAIRN_OPEN_NO_MMAP : 0, .format = CAIRN_FORMAT_AUTO};
        CHECK_OK(cairn_file_open(path_of("threads.cairn"), &opts, &shared_file, &err));
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&th[i], NULL, reader_thread, NULL);
        for (int i = 0; i < 4; i++) {
            void *bad;
            pthread_join(th[i], &bad);
            CHECK(bad == NULL);
        }
        cairn_file_close(shared_file);
    }
}

static void test_bad_arguments(void)
{
    cairn_writer *w;
    cairn_error err;
    float x = 0;
    uint64_t dims[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    cairn_write_opts opts = {.struct_size = sizeof opts, .format = CAIRN_FORMAT_NATIVE, .alignment = 48};
    CHECK_ST(cairn_writer_open_memory(&opts, &w, &err), CAIRN_E_ARG);
    CHECK(w == NULL);
    opts.alignment = 4096;
    CHECK_OK(cairn_writer_open_memory(&opts, &w, &err));
    CHECK_ST(cairn_writer_add(w, "r9", CAIRN_F32, 9, dims, &x, &err), CAIRN_E_LIMIT);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&opts, &w, &err));
    CHECK_ST(cairn_writer_add(w, "bad", (cairn_dtype)99, 0, NULL, &x, &err), CAIRN_E_ARG);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&opts, &w, &err));
    uint64_t huge[2] = {UINT64_C(1) << 40, UINT64_C(1) << 40};
    CHECK_ST(cairn_writer_add(w, "huge", CAIRN_F32, 2, huge, &x, &err), CAIRN_E_LIMIT);
    cairn_writer_abort(w);
    CHECK_ST(cairn_writer_open_path(path_of("no/such/dir/x.cairn"), NULL, &w, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "no/such/dir") != NULL);
    cairn_file *f;
    CHECK_ST(cairn_file_open(path_of("missing.cairn"), NULL, &f, &err), CAIRN_E_IO);
    CHECK(f == NULL && strstr(err.message, "missing.cairn"));
    CHECK_ST(cairn_file_open(dir, NULL, &f, &err), CAIRN_E_IO);
    CHECK_ST(cairn_file_open_memory("hello world, not a model", 24, NULL, &f, &err), CAIRN_E_FORMAT);
    CHECK(strcmp(cairn_strerror(CAIRN_E_CHECKSUM), "checksum mismatch") == 0);

    /* page alignment on request */
    CHECK_OK(cairn_writer_open_path(path_of("page.cairn"), &opts, &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 0, NULL, &x, &err));
    CHECK_OK(cairn_writer_add(w, "b", CAIRN_F32, 0, NULL, &x, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK_OK(cairn_file_open(path_of("page.cairn"), NULL, &f, &err));
    cairn_tensor_info t;
    CHECK_OK(cairn_tensor_info_at(f, 1, &t, &err));
    CHECK(t.alignment == 4096 && t.offset % 4096 == 0);
    const void *view;
    CHECK_OK(cairn_tensor_data(f, 1, &view, &err));
    CHECK((uintptr_t)view % 4096 == 0);
    cairn_file_close(f);
}

int main(void)
{
    dir = tu_tmpdir("test_native");
    test_every_dtype_and_shape();
    test_big_tensor();
    test_names();
    test_zero_tensors();
    test_many_tensors();
    test_alias_and_metadata();
    test_conversion_on_read();
    test_concurrent_reads();
    test_bad_arguments();
    TEST_MAIN_END();
}
