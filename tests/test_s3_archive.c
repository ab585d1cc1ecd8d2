/*
 * test_s3_archive.c -- s3:// through the public API: every format written to
 * and read back from moto (SigV4 enforced), lazy opens counted at the proxy,
 * aborted and failing saves that leave nothing, create-only saves racing,
 * and objects that are not (or no longer) cairn-readable.
 */
#include "io/s3.h"
#include "s3util.h"

#include <pthread.h>

static cairn__s3 *direct; /* the internal client, for checks behind the API's back */

static void use_endpoint(const char *url)
{
    setenv("AWS_ENDPOINT_URL", url, 1);
}

/* Three tensors: a small one, one larger than a part (multipart), a scalar. */
#define BIG_COUNT ((size_t)3 << 20) /* float64: 24 MiB */
static float small_data[1000];
static double *big_data;
static int32_t scalar_data = -7;

static cairn_status write_three(const char *url, cairn_format format, int declare, int reverse,
                                unsigned flags, cairn_error *err)
{
    cairn_write_opts o = {.struct_size = sizeof o, .format = format, .flags = flags};
    cairn_writer *w;
    CAIRN_TRY(cairn_writer_open_path(url, &o, &w, err));
    static const uint64_t d_small[2] = {10, 100}, d_big[1] = {BIG_COUNT};
    const cairn_tensor_decl decls[3] = {
        {"small", CAIRN_F32, 2, d_small},
        {"big", CAIRN_F64, 1, d_big},
        {"scalar", CAIRN_I32, 0, NULL},
    };
    cairn_status st = CAIRN_OK;
    if (declare)
        st = cairn_writer_declare(w, decls, 3, err);
    const void *data[3] = {small_data, big_data, &scalar_data};
    for (int i = 0; i < 3 && st == CAIRN_OK; i++) {
        int k = reverse ? 2 - i : i;
        st = cairn_writer_add(w, decls[k].name, decls[k].dtype, decls[k].rank, decls[k].dims,
                              data[k], err);
    }
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    return cairn_writer_commit(w, err);
}

static int find(const cairn_file *f, const char *name, uint64_t *index)
{
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info ti;
        cairn_error err;
        if (cairn_tensor_info_at(f, i, &ti, &err) == CAIRN_OK && strcmp(ti.name, name) == 0) {
            *index = i;
            return 1;
        }
    }
    return 0;
}

static void check_three(const char *url, cairn_format format)
{
    cairn_error err;
    cairn_file *f = NULL;
    CHECK_EOK(cairn_file_open(url, NULL, &f, &err));
    if (!f)
        return;
    cairn_file_info fi;
    CHECK_EOK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == format);
    uint64_t i;
    float s[1000];
    int32_t sc = 0;
    double *b = malloc(BIG_COUNT * sizeof *b);
    CHECK(find(f, "small", &i));
    CHECK_EOK(cairn_tensor_read(f, i, CAIRN_F32, s, sizeof s, 0, &err));
    CHECK(memcmp(s, small_data, sizeof s) == 0);
    CHECK(find(f, "big", &i));
    CHECK_EOK(cairn_tensor_read(f, i, CAIRN_F64, b, BIG_COUNT * sizeof *b, 0, &err));
    CHECK(memcmp(b, big_data, BIG_COUNT * sizeof *b) == 0);
    if (memcmp(b, big_data, BIG_COUNT * sizeof *b) != 0)
        fprintf(stderr, "    in %s\n", url);
    CHECK(find(f, "scalar", &i));
    CHECK_EOK(cairn_tensor_read(f, i, CAIRN_I32, &sc, sizeof sc, 0, &err));
    CHECK(sc == scalar_data);
    free(b);
    cairn_file_close(f);
}

/* Every format written through s3://, by write_three. */
static const struct {
    cairn_format format;
    const char *ext;
    int declare, reverse;
} cases[] = {
    {CAIRN_FORMAT_NATIVE, "cairn", 0, 0},
    {CAIRN_FORMAT_SAFETENSORS, "safetensors", 0, 0},
    {CAIRN_FORMAT_SAFETENSORS, "safetensors", 1, 1}, /* placements out of layout order */
    {CAIRN_FORMAT_GGUF, "gguf", 1, 0},
    {CAIRN_FORMAT_GGUF, "gguf", 0, 1},
    {CAIRN_FORMAT_NPZ, "npz", 0, 0},
    {CAIRN_FORMAT_TORCH, "pt", 0, 0},
    {CAIRN_FORMAT_MXNET, "params", 0, 0},
    {CAIRN_FORMAT_HDF5, "h5", 0, 0},
};

static void test_formats(void)
{
    use_endpoint(moto_url);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char url[256];
        cairn_error err;
        snprintf(url, sizeof url, "s3://%s/fmt/%zu/model.%s", bucket, c, cases[c].ext);
        CHECK_EOK(write_three(url, cases[c].format, cases[c].declare, cases[c].reverse, 0, &err));
        check_three(url, cases[c].format);
    }
    /* Native with compression: the header's minor version is patched at
     * the end, after part 1 was uploaded, so part 1 is sent again. */
    {
        char u[256];
        cairn_error err;
        snprintf(u, sizeof u, "s3://%s/fmt/zstd.cairn", bucket);
        cairn_write_opts o = {.struct_size = sizeof o, .codec = CAIRN_CODEC_ZSTD};
        cairn_writer *w;
        static float zeros[1 << 18];
        uint64_t dz[1] = {1 << 18}, db[1] = {BIG_COUNT};
        CHECK_EOK(cairn_writer_open_path(u, &o, &w, &err));
        CHECK_EOK(cairn_writer_add(w, "big", CAIRN_F64, 1, db, big_data, &err));
        CHECK_EOK(cairn_writer_add(w, "zeros", CAIRN_F32, 1, dz, zeros, &err));
        CHECK_EOK(cairn_writer_commit(w, &err));
        cairn_file *f = NULL;
        CHECK_EOK(cairn_file_open(u, NULL, &f, &err));
        cairn_file_info fi;
        CHECK(f && cairn_file_get_info(f, &fi, &err) == CAIRN_OK);
        CHECK(fi.version_minor == 1 && fi.compressed_tensors >= 1);
        CHECK(f && cairn_file_verify(f, &err) == CAIRN_OK);
        cairn_file_close(f);
    }
    /* npy: one tensor. */
    char url[256];
    cairn_error err;
    snprintf(url, sizeof url, "s3://%s/fmt/one.npy", bucket);
    cairn_writer *w;
    uint64_t d[1] = {BIG_COUNT};
    CHECK_EOK(cairn_writer_open_path(url, NULL, &w, &err));
    CHECK_EOK(cairn_writer_add(w, "x", CAIRN_F64, 1, d, big_data, &err));
    CHECK_EOK(cairn_writer_commit(w, &err));
    cairn_file *f = NULL;
    CHECK_EOK(cairn_file_open(url, NULL, &f, &err));
    double *b = malloc(BIG_COUNT * sizeof *b);
    if (f) {
        CHECK_EOK(cairn_tensor_read(f, 0, CAIRN_F64, b, BIG_COUNT * sizeof *b, 0, &err));
        CHECK(memcmp(b, big_data, BIG_COUNT * sizeof *b) == 0);
    }
    free(b);
    cairn_file_close(f);
    CHECK_UPLOADS(direct, "fmt/", 0);
}

/* A native file of 64 tensors of 256 KiB: opening it lazily costs the
 * tail GET (size + trailer + index) and the header GET, nothing else; one
 * tensor costs one more ranged GET of exactly its bytes. */
static void test_lazy_open(void)
{
    char url[256];
    cairn_error err;
    snprintf(url, sizeof url, "s3://%s/lazy/m.cairn", bucket);
    use_endpoint(moto_url);
    cairn_writer *w;
    CHECK_EOK(cairn_writer_open_path(url, NULL, &w, &err));
    size_t n = 64 << 10; /* floats per tensor */
    float *t = malloc(n * sizeof *t);
    for (int k = 0; k < 64; k++) {
        char name[32];
        for (size_t i = 0; i < n; i++)
            t[i] = (float)(k * 1000003 + i);
        snprintf(name, sizeof name, "layer%02d.weight", k);
        uint64_t d[1] = {n};
        CHECK_EOK(cairn_writer_add(w, name, CAIRN_F32, 1, d, t, &err));
    }
    CHECK_EOK(cairn_writer_commit(w, &err));

    use_endpoint(proxy_url);
    proxy("/__proxy/reset");
    cairn_file *f = NULL;
    CHECK_EOK(cairn_file_open(url, NULL, &f, &err));
    long open_gets = proxy_count("GET");
    /* s3rver answers the tail's suffix range wrongly: a HEAD and a GET more. */
    long extra = server_has("suffix ranges") ? 0 : 1;
    CHECK(proxy_count(NULL) == open_gets + extra && open_gets >= 1 && open_gets <= 2 + extra);
    CHECK(f && cairn_file_count(f) == 64);
    uint64_t i;
    if (f && find(f, "layer37.weight", &i)) {
        CHECK_EOK(cairn_tensor_read(f, i, CAIRN_F32, t, n * sizeof *t, 0, &err));
        CHECK(t[0] == (float)(37 * 1000003) && t[n - 1] == (float)(37 * 1000003 + n - 1));
        CHECK(proxy_count("GET") == open_gets + 1 && proxy_count(NULL) == open_gets + extra + 1);
    } else {
        CHECK(0);
    }
    fprintf(stderr, "lazy open: %ld requests; one tensor: 1 more\n", open_gets);
    cairn_file_close(f);
    /* A small object is one PUT, no multipart calls. */
    proxy("/__proxy/reset");
    snprintf(url, sizeof url, "s3://%s/lazy/small.cairn", bucket);
    CHECK_EOK(cairn_writer_open_path(url, NULL, &w, &err));
    uint64_t d[1] = {100};
    CHECK_EOK(cairn_writer_add(w, "x", CAIRN_F32, 1, d, t, &err));
    CHECK_EOK(cairn_writer_commit(w, &err));
    CHECK(proxy_count("PUT") == 1 && proxy_count(NULL) == 1);
    free(t);
    use_endpoint(moto_url);
}

/* A scan: every tensor of f read in file order by 4 threads. */
typedef struct scanner {
    cairn_file *f;
    size_t n;           /* floats per tensor */
    _Atomic int next;   /* the next tensor index */
    _Atomic int bad, failed;
    cairn_error err;    /* one failure's message */
} scanner;

static void *scan_worker(void *arg)
{
    scanner *sc = arg;
    float *t = malloc(sc->n * sizeof *t);
    for (int k; (k = sc->next++) < 64;) {
        cairn_error err;
        if (cairn_tensor_read(sc->f, (uint64_t)k, CAIRN_F32, t, sc->n * sizeof *t, 0, &err) !=
            CAIRN_OK) {
            sc->err = err;
            sc->failed++;
            continue;
        }
        /* layerKK.weight is index KK (name order): k * 1000003 + i. */
        for (size_t i = 0; i < sc->n; i += 997)
            if (t[i] != (float)(k * 1000003 + i))
                sc->bad++;
        if (t[sc->n - 1] != (float)(k * 1000003 + sc->n - 1))
            sc->bad++;
    }
    free(t);
    return NULL;
}

static void scan(cairn_file *f, size_t n, scanner *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->f = f;
    sc->n = n;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, scan_worker, sc);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
}

/* Reading every tensor of a remote file in order takes a few large
 * requests (spans), not one per tensor; the bytes are right, also when the
 * connection fails under the scan. */
static void test_scan(void)
{
    char url[256];
    cairn_error err;
    snprintf(url, sizeof url, "s3://%s/lazy/m.cairn", bucket); /* test_lazy_open's */
    size_t n = 64 << 10;
    use_endpoint(proxy_url);
    for (int round = 0; round < 3; round++) {
        cairn_file *f = NULL;
        proxy("/__proxy/reset");
        CHECK_EOK(cairn_file_open(url, NULL, &f, &err));
        if (!f)
            return;
        long before = proxy_count(NULL);
        if (round == 2) /* dropped connections, 503s and truncated bodies under the scan */
            proxy("/__proxy/fault?mode=random&count=1000&p=0.3&seed=11&modes=drop,503,truncate");
        scanner sc;
        scan(f, n, &sc);
        long gets = proxy_count(NULL) - before;
        proxy("/__proxy/reset");
        CHECK(sc.bad == 0);
        if (round < 2) {
            /* 64 tensors of 256 KiB (16 MiB): 64 requests one by one. */
            fprintf(stderr, "scan of 64 tensors: %ld requests\n", gets);
            CHECK(sc.failed == 0 && gets <= 8);
        } else {
            fprintf(stderr, "scan under faults: %d of 64 reads failed (%s)\n", sc.failed,
                    sc.failed ? sc.err.message : "");
            CHECK(sc.failed == 0 || strstr(sc.err.message, "lazy/m.cairn"));
        }
        cairn_file_close(f);
    }
    use_endpoint(moto_url);
}

/* An aborted save, and a save whose upload fails, leave no object and no
 * upload; the previous object stays. */
static void test_abort_and_failure(void)
{
    char url[256];
    cairn_error err;
    snprintf(url, sizeof url, "s3://%s/abort/m.cairn", bucket);
    use_endpoint(moto_url);
    cairn_writer *w;
    uint64_t d[1] = {BIG_COUNT};
    CHECK_EOK(cairn_writer_open_path(url, NULL, &w, &err));
    CHECK_EOK(cairn_writer_add(w, "big", CAIRN_F64, 1, d, big_data, &err));
    CHECK_UPLOADS(direct, "abort/", 1); /* parts went out already */
    cairn_writer_abort(w);
    CHECK_UPLOADS(direct, "abort/", 0);
    uint64_t size;
    CHECK_E(cairn__s3_head(direct, bucket, "abort/m.cairn", &size, &err), CAIRN_E_NOT_FOUND);

    /* An earlier object, then a save that fails at every part upload. */
    CHECK_EOK(write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err));
    use_endpoint(proxy_url);
    setenv("AWS_MAX_ATTEMPTS", "2", 1);
    proxy("/__proxy/reset");
    proxy("/__proxy/fault?mode=503&count=1000&method=PUT");
    CHECK_E(write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "abort/m.cairn") && strstr(err.message, "503"));
    proxy("/__proxy/reset");
    unsetenv("AWS_MAX_ATTEMPTS");
    use_endpoint(moto_url);
    check_three(url, CAIRN_FORMAT_NATIVE);
    CHECK_UPLOADS(direct, "abort/", 0);

    /* Random faults on every request (no stalls: they only cost time):
     * each save either completes whole or leaves the earlier object. */
    use_endpoint(proxy_url);
    setenv("AWS_MAX_ATTEMPTS", "3", 1);
    proxy("/__proxy/fault?mode=random&count=100000&p=0.15&seed=11&modes=drop,503,429,truncate,lose");
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        scalar_data = 100 + i;
        cairn_status st = write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err);
        ok += st == CAIRN_OK;
        if (st != CAIRN_OK)
            CHECK(strstr(err.message, "abort/m.cairn") != NULL);
        /* Read back directly: the object is the last complete save's. */
        use_endpoint(moto_url);
        cairn_file *f = NULL;
        CHECK_EOK(cairn_file_open(url, NULL, &f, &err));
        uint64_t k;
        int32_t v = 0;
        if (f && find(f, "scalar", &k))
            CHECK_EOK(cairn_tensor_read(f, k, CAIRN_I32, &v, sizeof v, 0, &err));
        CHECK(st == CAIRN_OK ? v == 100 + i : v != 100 + i);
        cairn_file_close(f);
        use_endpoint(proxy_url);
    }
    proxy("/__proxy/reset");
    unsetenv("AWS_MAX_ATTEMPTS");
    use_endpoint(moto_url);
    fprintf(stderr, "random faults: %d/4 saves completed\n", ok);
    scalar_data = -7;
    /* An abort lost to a fault leaves an upload behind; the cleanup ends it. */
    unsigned aborted;
    if (server_has("uploads"))
        CHECK_EOK(cairn__s3_uploads_gc(direct, bucket, "abort/", 0, &aborted, &err));
    CHECK_UPLOADS(direct, "abort/", 0);
}

/* CAIRN_S3_MULTIPART_THRESHOLD: within it a save is one PUT (parts past
 * the first staged in a local file), beyond it the staged parts become a
 * multipart upload; bad values are refused by name. */
static void test_multipart_threshold(void)
{
    static const size_t some[] = {0, 2, 3, 5}; /* native, safetensors placed, gguf, npz */
    cairn_error err;
    char url[256];
    /* Plain HTTP without CAIRN_S3_UNSIGNED_PAYLOAD: the signed payload hash
     * covers part 1 and the staged file. */
    setenv("CAIRN_S3_MULTIPART_THRESHOLD", "64MiB", 1);
    use_endpoint(proxy_url);
    for (size_t i = 0; i < sizeof some / sizeof *some; i++) {
        size_t c = some[i];
        snprintf(url, sizeof url, "s3://%s/thr/%zu/model.%s", bucket, i, cases[c].ext);
        proxy("/__proxy/reset");
        CHECK_EOK(write_three(url, cases[c].format, cases[c].declare, cases[c].reverse, 0, &err));
        /* 24 MiB and more in one request: no multipart create, no parts. */
        CHECK(proxy_count("PUT") == 1 && proxy_count("POST") == 0);
        check_three(url, cases[c].format);
    }
    /* Compressed native: the header patched at the end, in memory. */
    {
        cairn_write_opts o = {.struct_size = sizeof o, .codec = CAIRN_CODEC_ZSTD};
        cairn_writer *w;
        uint64_t db[1] = {BIG_COUNT};
        snprintf(url, sizeof url, "s3://%s/thr/zstd.cairn", bucket);
        proxy("/__proxy/reset");
        CHECK_EOK(cairn_writer_open_path(url, &o, &w, &err));
        CHECK_EOK(cairn_writer_add(w, "big", CAIRN_F64, 1, db, big_data, &err));
        CHECK_EOK(cairn_writer_commit(w, &err));
        CHECK(proxy_count("PUT") == 1);
        cairn_file *f = NULL;
        CHECK_EOK(cairn_file_open(url, NULL, &f, &err));
        CHECK(f && cairn_file_verify(f, &err) == CAIRN_OK);
        cairn_file_close(f);
    }
    /* A failing PUT (every attempt 503) leaves the earlier object. */
    snprintf(url, sizeof url, "s3://%s/thr/0/model.cairn", bucket);
    setenv("AWS_MAX_ATTEMPTS", "2", 1);
    scalar_data = 41;
    proxy("/__proxy/fault?mode=503&count=1000&method=PUT");
    CHECK_E(write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "thr/0/model.cairn") && strstr(err.message, "503"));
    proxy("/__proxy/reset");
    unsetenv("AWS_MAX_ATTEMPTS");
    scalar_data = -7;
    check_three(url, CAIRN_FORMAT_NATIVE);

    /* Outgrowing the threshold: the staged parts go up as parts 2, 3... */
    setenv("CAIRN_S3_MULTIPART_THRESHOLD", "16M", 1);
    snprintf(url, sizeof url, "s3://%s/thr/grown.cairn", bucket);
    proxy("/__proxy/reset");
    CHECK_EOK(write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err));
    CHECK(proxy_count("PUT") >= 4 && proxy_count("POST") == 2); /* create + complete */
    check_three(url, CAIRN_FORMAT_NATIVE);
    CHECK_UPLOADS(direct, "thr/", 0);

    static const char *bad[] = {"4M", "6G", "8X", "-1", "M", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("CAIRN_S3_MULTIPART_THRESHOLD", bad[i], 1);
        CHECK_E(write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err), CAIRN_E_ARG);
        CHECK(strstr(err.message, "CAIRN_S3_MULTIPART_THRESHOLD") != NULL);
    }
    unsetenv("CAIRN_S3_MULTIPART_THRESHOLD");
    use_endpoint(moto_url);
}

typedef struct racer {
    char url[256];
    cairn_status st;
    pthread_barrier_t *go;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    cairn_error err;
    pthread_barrier_wait(r->go);
    r->st = write_three(r->url, CAIRN_FORMAT_NATIVE, 0, 0, CAIRN_WRITE_NO_REPLACE, &err);
    return NULL;
}

/* Two create-only saves of one key: exactly one wins. */
static void test_no_replace_race(void)
{
    use_endpoint(moto_url);
    for (int round = 0; round < 3; round++) {
        pthread_barrier_t go;
        racer r[2];
        for (int i = 0; i < 2; i++) {
            snprintf(r[i].url, sizeof r[i].url, "s3://%s/race/%d.cairn", bucket, round);
            r[i].go = &go;
        }
        run_two(race, &r[0], &r[1], &go);
        CHECK((r[0].st == CAIRN_OK) + (r[1].st == CAIRN_OK) == 1);
        CHECK((r[0].st == CAIRN_E_EXISTS) + (r[1].st == CAIRN_E_EXISTS) == 1);
        check_three(r[0].url, CAIRN_FORMAT_NATIVE);
    }
    CHECK_UPLOADS(direct, "race/", 0);
}

/* Objects cairn cannot read: a clear error, no crash. */
static void test_bad_objects(void)
{
    char url[256];
    cairn_error err;
    use_endpoint(moto_url);
    snprintf(url, sizeof url, "s3://%s/bad/m.cairn", bucket);
    CHECK_EOK(write_three(url, CAIRN_FORMAT_NATIVE, 0, 0, 0, &err));
    uint64_t size;
    CHECK_EOK(cairn__s3_head(direct, bucket, "bad/m.cairn", &size, &err));
    uint8_t *whole = malloc(size);
    CHECK_EOK(cairn__s3_get(direct, bucket, "bad/m.cairn", 0, size, whole, &err));
    /* Truncated on the server (the writer's bytes, short of the end). */
    CHECK_EOK(cairn__s3_put(direct, bucket, "bad/short.cairn", whole, size - 1000, 0, &err));
    cairn_file *f = NULL;
    snprintf(url, sizeof url, "s3://%s/bad/short.cairn", bucket);
    cairn_status st = cairn_file_open(url, NULL, &f, &err);
    CHECK(st == CAIRN_E_CORRUPT || st == CAIRN_E_FORMAT);
    CHECK(f == NULL && strstr(err.message, "bad/short.cairn"));
    /* Not a cairn-readable object at all. */
    CHECK_EOK(cairn__s3_put(direct, bucket, "bad/text.cairn", "hello, world\n", 13, 0, &err));
    snprintf(url, sizeof url, "s3://%s/bad/text.cairn", bucket);
    CHECK_E(cairn_file_open(url, NULL, &f, &err), CAIRN_E_FORMAT);
    /* Missing key, missing bucket, bad URL, wrong secret. */
    snprintf(url, sizeof url, "s3://%s/bad/none.cairn", bucket);
    CHECK_E(cairn_file_open(url, NULL, &f, &err), CAIRN_E_NOT_FOUND);
    CHECK_E(cairn_file_open("s3://no-such-bucket-x/k.cairn", NULL, &f, &err), CAIRN_E_NOT_FOUND);
    CHECK(strstr(err.message, "no such bucket"));
    CHECK_E(cairn_file_open("s3://Bad_Bucket/k", NULL, &f, &err), CAIRN_E_ARG);
    snprintf(url, sizeof url, "s3://%s/bad/m.cairn", bucket);
    if (server_has("auth")) {
        char *saved = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
        setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-123", 1);
        CHECK_E(cairn_file_open(url, NULL, &f, &err), CAIRN_E_AUTH);
        CHECK(strstr(err.message, "403") && strstr(err.message, "SignatureDoesNotMatch") &&
              strstr(err.message, "bad/m.cairn") && !strstr(err.message, "not-the-secret") &&
              !strstr(err.message, saved));
        cairn_writer *w;
        CHECK_EOK(cairn_writer_open_path(url, NULL, &w, &err));
        uint64_t d[1] = {4};
        CHECK_EOK(cairn_writer_add(w, "x", CAIRN_F32, 1, d, small_data, &err));
        CHECK_E(cairn_writer_commit(w, &err), CAIRN_E_AUTH); /* small: the one PUT is refused */
        CHECK(strstr(err.message, "403") && !strstr(err.message, "not-the-secret"));
        setenv("AWS_SECRET_ACCESS_KEY", saved, 1);
        free(saved);
    }
    free(whole);
    check_three(url, CAIRN_FORMAT_NATIVE);
}

int main(int argc, char **argv)
{
    if (!s3_test_setup(argv[0]))
        return 77;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < 1000; i++)
        small_data[i] = (float)i * 0.5f;
    big_data = malloc(BIG_COUNT * sizeof *big_data);
    uint64_t seed = 5;
    for (size_t i = 0; i < BIG_COUNT; i++)
        big_data[i] = (double)(tu_rand(&seed) >> 11) / 9007199254740992.0;
    direct = open_s3(0, 5);
    test_formats();
    test_lazy_open();
    test_scan();
    test_abort_and_failure();
    test_multipart_threshold();
    if (server_has("conditional"))
        test_no_replace_race();
    test_bad_objects();
    cairn__s3_close(direct);
    free(big_data);
    curl_global_cleanup();
    TEST_MAIN_END();
}
