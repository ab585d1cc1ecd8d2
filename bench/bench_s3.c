/*
 * bench_s3.c -- cairn on s3:// against curl on the same bytes and server.
 *
 * Run under tests/s3_harness.py (bench/run.sh, phase s3), which starts moto
 * with SigV4 enforced and a counting proxy on loopback:
 *   python3 tests/s3_harness.py -- bench_s3 [--mib N] [--tensors N] [--runs N] [--curl PATH]
 *
 * Measures, each as the median of --runs:
 *   upload    cairn_writer (native, N tensors, multipart, parts in flight)
 *             vs `curl -T` of the same bytes as one PUT;
 *   open      a lazy cairn_file_open of the object: requests (counted at the
 *             proxy) and time (direct to the server);
 *   read-all  every tensor read into caller buffers by 4 threads vs
 *             `curl` downloading the object to /dev/null.
 * Both sides sign with SigV4 and send UNSIGNED-PAYLOAD (cairn through
 * CAIRN_S3_UNSIGNED_PAYLOAD=1: loopback), so the ratio is client overhead.
 * moto (Python) is the bottleneck on either side; the ratios are what the
 * targets are about (upload <= 1.10x, open <= 2 requests and <= 5 ms,
 * read-all <= 1.15x).
 *
 * A whole-object PUT and one GET are not the requests cairn makes (it
 * streams multipart parts with bounded memory, and reads tensor by tensor),
 * and moto's cost is per request and per part. So curl also makes cairn's
 * requests, which isolates the client's share:
 *   curl multipart  POST ?uploads=, then the same parts (8 MiB) by one curl
 *                   process, 4 at a time (--parallel), then the complete;
 *   curl ranges     one ranged GET per tensor, 4 at a time (--parallel).
 * The CPU time of the bench process (user + system) is shown per phase.
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <cairn.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bucket, *endpoint, *proxy_url;

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void die(const char *what, const cairn_error *err)
{
    fprintf(stderr, "bench_s3: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

/* Runs argv; returns its exit status (stdout to out_path when given). */
static int run_to(char *const argv[], const char *out_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (out_path && !freopen(out_path, "w", stdout))
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int run(char *const argv[]) { return run_to(argv, NULL); }

/* The text between <tag> and </tag> in a file (static), or "". */
static const char *xml_in_file(const char *path, const char *tag)
{
    static char val[512];
    char buf[65536], open_tag[64], close_tag[64];
    val[0] = '\0';
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    snprintf(open_tag, sizeof open_tag, "<%s>", tag);
    snprintf(close_tag, sizeof close_tag, "</%s>", tag);
    char *a = strstr(buf, open_tag), *b = a ? strstr(a, close_tag) : NULL;
    if (a && b)
        snprintf(val, sizeof val, "%.*s", (int)(b - a - strlen(open_tag)), a + strlen(open_tag));
    return val;
}

/* argv of one curl process: the fixed options, then `extra` (NULL-ended). */
typedef struct argv_buf {
    char **v;
    size_t n, cap;
} argv_buf;

static void arg(argv_buf *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = strdup(s);
    a->v[a->n] = NULL;
}

static void arg_free(argv_buf *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

static void curl_base(argv_buf *a, const char *curl, const char *user)
{
    arg(a, curl);
    arg(a, "-sS");
    arg(a, "--no-progress-meter");
    arg(a, "-f");
    arg(a, "--aws-sigv4");
    arg(a, "aws:amz:us-east-1:s3");
    arg(a, "--user");
    arg(a, user);
    arg(a, "-H");
    arg(a, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
}

/* curl doing cairn's upload requests: create, the parts of `file` in
 * PART-byte pieces (4 at a time, one process), complete. Returns seconds. */
static double curl_multipart(const char *curl, const char *user, const char *obj_url,
                             const char *file, uint64_t size, size_t part, const char *dir)
{
    char out[600], url[1024], body_path[600], etag_path[600];
    snprintf(out, sizeof out, "%s/create.xml", dir);
    snprintf(body_path, sizeof body_path, "%s/complete.xml", dir);
    snprintf(etag_path, sizeof etag_path, "%s/etags.txt", dir);
    unsigned parts = (unsigned)((size + part - 1) / part);
    /* The parts as files (curl -T sends a whole file), made before the clock starts. */
    FILE *in = fopen(file, "rb");
    char *buf = malloc(part);
    for (unsigned i = 0; in && i < parts; i++) {
        char pp[600];
        snprintf(pp, sizeof pp, "%s/part.%u", dir, i + 1);
        size_t n = fread(buf, 1, part, in);
        FILE *o = fopen(pp, "wb");
        if (!o || fwrite(buf, 1, n, o) != n)
            die("curl multipart: part files", NULL);
        fclose(o);
    }
    if (in)
        fclose(in);
    free(buf);

    double t0 = bench_now();
    argv_buf a = {0};
    curl_base(&a, curl, user);
    arg(&a, "-X");
    arg(&a, "POST");
    snprintf(url, sizeof url, "%s?uploads=", obj_url);
    arg(&a, url);
    if (run_to(a.v, out) != 0)
        die("curl multipart: create", NULL);
    arg_free(&a);
    char id[512];
    snprintf(id, sizeof id, "%s", xml_in_file(out, "UploadId"));
    if (!id[0])
        die("curl multipart: no UploadId", NULL);
    curl_base(&a, curl, user);
    arg(&a, "--parallel");
    arg(&a, "--parallel-max");
    arg(&a, "4");
    arg(&a, "-w");
    arg(&a, "%{url} %header{etag}\n");
    for (unsigned i = 0; i < parts; i++) {
        char pp[600];
        snprintf(pp, sizeof pp, "%s/part.%u", dir, i + 1);
        snprintf(url, sizeof url, "%s?partNumber=%u&uploadId=%s", obj_url, i + 1, id);
        arg(&a, "-T");
        arg(&a, pp);
        arg(&a, "-o");
        arg(&a, "/dev/null");
        arg(&a, url);
    }
    if (run_to(a.v, etag_path) != 0)
        die("curl multipart: parts", NULL);
    arg_free(&a);
    /* The complete's body, from the ETags in part order. */
    char **etag = calloc(parts, sizeof *etag);
    FILE *e = fopen(etag_path, "r");
    char line[2048];
    while (e && fgets(line, sizeof line, e)) {
        char *pn = strstr(line, "partNumber="), *sp = strrchr(line, ' ');
        unsigned k = pn ? (unsigned)strtoul(pn + 11, NULL, 10) : 0;
        if (k >= 1 && k <= parts && sp) {
            sp[strcspn(sp, "\r\n")] = '\0';
            free(etag[k - 1]);
            etag[k - 1] = strdup(sp + 1);
        }
    }
    if (e)
        fclose(e);
    FILE *b = fopen(body_path, "w");
    fprintf(b, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < parts; i++) {
        if (!etag[i])
            die("curl multipart: a part without an ETag", NULL);
        fprintf(b, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1, etag[i]);
        free(etag[i]);
    }
    fprintf(b, "</CompleteMultipartUpload>");
    fclose(b);
    free(etag);
    curl_base(&a, curl, user);
    arg(&a, "-o");
    arg(&a, "/dev/null");
    arg(&a, "-H");
    arg(&a, "Content-Type: application/xml");
    arg(&a, "--data-binary");
    char at[620];
    snprintf(at, sizeof at, "@%s", body_path);
    arg(&a, at);
    snprintf(url, sizeof url, "%s?uploadId=%s", obj_url, id);
    arg(&a, url);
    if (run(a.v) != 0)
        die("curl multipart: complete", NULL);
    arg_free(&a);
    double t = bench_now() - t0;
    for (unsigned i = 0; i < parts; i++) {
        char pp[600];
        snprintf(pp, sizeof pp, "%s/part.%u", dir, i + 1);
        unlink(pp);
    }
    unlink(out);
    unlink(body_path);
    unlink(etag_path);
    return t;
}

/* curl doing cairn's read requests: one ranged GET per tensor, 4 at a time. */
static double curl_ranges(const char *curl, const char *user, const char *obj_url,
                          const uint64_t *offs, const uint64_t *lens, size_t n)
{
    argv_buf a = {0};
    curl_base(&a, curl, user);
    arg(&a, "--parallel");
    arg(&a, "--parallel-max");
    arg(&a, "4");
    for (size_t i = 0; i < n; i++) {
        char r[64];
        snprintf(r, sizeof r, "%llu-%llu", (unsigned long long)offs[i],
                 (unsigned long long)(offs[i] + lens[i] - 1));
        arg(&a, "-r");
        arg(&a, r);
        arg(&a, "-o");
        arg(&a, "/dev/null");
        arg(&a, obj_url);
    }
    double t0 = bench_now();
    if (run(a.v) != 0)
        die("curl ranges", NULL);
    double t = bench_now() - t0;
    arg_free(&a);
    return t;
}

static size_t sink_body(char *p, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), k = size * n;
    if (have + k < 4096) {
        memcpy(buf + have, p, k);
        buf[have + k] = '\0';
    }
    return size * n;
}

static long proxy_requests(const char *path)
{
    char url[512], body[4096] = "";
    snprintf(url, sizeof url, "%s%s", proxy_url, path);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_perform(e);
    curl_easy_cleanup(e);
    return strncmp(body, "total ", 6) == 0 ? strtol(body + 6, NULL, 10) : -1;
}

typedef struct model {
    size_t tensors, per; /* floats per tensor */
    float **data;
} model;

static void upload(const model *m, const char *url)
{
    cairn_error err;
    cairn_writer *w;
    if (cairn_writer_open_path(url, NULL, &w, &err) != CAIRN_OK)
        die("open writer", &err);
    for (size_t k = 0; k < m->tensors; k++) {
        char name[32];
        uint64_t d[1] = {m->per};
        snprintf(name, sizeof name, "layer%03zu.weight", k);
        if (cairn_writer_add(w, name, CAIRN_F32, 1, d, m->data[k], &err) != CAIRN_OK)
            die("add", &err);
    }
    if (cairn_writer_commit(w, &err) != CAIRN_OK)
        die("commit", &err);
}

typedef struct reader {
    const cairn_file *f;
    float **dst;
    size_t per, tensors;
    size_t next; /* guarded by mu */
    pthread_mutex_t mu;
    int failed;
} reader;

static void *read_worker(void *arg)
{
    reader *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        size_t k = r->next++;
        pthread_mutex_unlock(&r->mu);
        if (k >= r->tensors)
            return NULL;
        cairn_error err;
        if (cairn_tensor_read(r->f, k, CAIRN_F32, r->dst[k], r->per * sizeof(float), 0, &err) !=
            CAIRN_OK) {
            fprintf(stderr, "bench_s3: read: %s\n", err.message);
            r->failed = 1;
        }
    }
}

static void read_all(const char *url, const model *m, float **dst)
{
    cairn_error err;
    cairn_file *f;
    if (cairn_file_open(url, NULL, &f, &err) != CAIRN_OK)
        die("open", &err);
    reader r = {.f = f, .dst = dst, .per = m->per, .tensors = m->tensors};
    pthread_mutex_init(&r.mu, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, read_worker, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&r.mu);
    cairn_file_close(f);
    if (r.failed)
        exit(1);
}

int main(int argc, char **argv)
{
    size_t mib = 1024, tensors = 256;
    int runs = 3;
    const char *curl = "curl";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--mib") == 0)
            mib = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--tensors") == 0)
            tensors = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--curl") == 0)
            curl = argv[i + 1];
    }
    bucket = getenv("CAIRN_S3_BUCKET");
    endpoint = getenv("AWS_ENDPOINT_URL");
    proxy_url = getenv("CAIRN_S3_PROXY");
    if (!bucket || !endpoint || !proxy_url || !mib || !tensors || runs < 1) {
        fprintf(stderr, "usage: python3 tests/s3_harness.py -- bench_s3 [--mib N] [--tensors N] "
                        "[--runs N] [--curl PATH]\n");
        return 2;
    }
    if (runs > 15)
        runs = 15;
    setenv("CAIRN_S3_UNSIGNED_PAYLOAD", "1", 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    model m = {.tensors = tensors, .per = (mib << 20) / tensors / sizeof(float)};
    m.data = calloc(tensors, sizeof *m.data);
    float **back = calloc(tensors, sizeof *back);
    uint32_t x = 12345;
    for (size_t k = 0; k < tensors; k++) {
        m.data[k] = malloc(m.per * sizeof(float));
        back[k] = malloc(m.per * sizeof(float));
        for (size_t i = 0; i < m.per; i++) {
            x = x * 1664525u + 1013904223u;
            m.data[k][i] = (float)(x >> 8);
        }
    }
    double payload = (double)(m.per * sizeof(float) * tensors);
    char url[512], key_url[512], user[512], tmpfile[] = "/tmp/bench_s3.XXXXXX";
    snprintf(url, sizeof url, "s3://%s/bench/model.cairn", bucket);
    snprintf(key_url, sizeof key_url, "%s/%s/bench/curl.cairn", endpoint, bucket);
    snprintf(user, sizeof user, "%s:%s", getenv("AWS_ACCESS_KEY_ID"),
             getenv("AWS_SECRET_ACCESS_KEY"));

    /* Upload: cairn vs curl -T of the very bytes cairn wrote. The first
     * save makes the object curl needs (and warms both sides); then each run
     * times, in turn, cairn's default multipart upload, cairn with
     * CAIRN_S3_MULTIPART_THRESHOLD=5G (one PUT of a locally staged object),
     * curl -T, and curl sending cairn's multipart requests. */
    double t_up[15], t_put[15], t_curl_up[15], t_open[15], t_read[15], t_curl_get[15];
    double t_curl_mp[15], t_curl_rg[15], cpu_up = 0, cpu_put = 0, cpu_rd = 0;
    upload(&m, url);
    int fd = mkstemp(tmpfile);
    cairn_file *f;
    cairn_error err;
    if (fd < 0 || cairn_file_open(url, NULL, &f, &err) != CAIRN_OK)
        die("open for the curl copy", &err);
    cairn_file_info fi;
    cairn_file_get_info(f, &fi, &err);
    uint64_t *offs = calloc(tensors, sizeof *offs), *lens = calloc(tensors, sizeof *lens);
    for (size_t k = 0; k < tensors; k++) {
        cairn_tensor_info ti;
        if (cairn_tensor_info_at(f, k, &ti, &err) != CAIRN_OK)
            die("tensor info", &err);
        offs[k] = ti.offset;
        lens[k] = ti.stored_size;
    }
    cairn_file_close(f);
    /* The object's bytes, for curl: downloaded once by curl itself. */
    char obj_url[512];
    snprintf(obj_url, sizeof obj_url, "%s/%s/bench/model.cairn", endpoint, bucket);
    char *get_to_file[] = {(char *)curl, "-sS", "-f", "--aws-sigv4", "aws:amz:us-east-1:s3",
                           "--user", user, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-o",
                           tmpfile, obj_url, NULL};
    if (run(get_to_file) != 0)
        die("curl download to a file", NULL);
    char *put[] = {(char *)curl, "-sS", "-f", "-o", "/dev/null", "--aws-sigv4",
                   "aws:amz:us-east-1:s3", "--user", user, "-H",
                   "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", tmpfile, key_url, NULL};
    char *get[] = {(char *)curl, "-sS", "-f", "-o", "/dev/null", "--aws-sigv4",
                   "aws:amz:us-east-1:s3", "--user", user, "-H",
                   "x-amz-content-sha256: UNSIGNED-PAYLOAD", obj_url, NULL};
    char mp_url[512], dir[] = "/tmp/bench_s3_parts.XXXXXX";
    snprintf(mp_url, sizeof mp_url, "%s/%s/bench/curl-mp.cairn", endpoint, bucket);
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    for (int i = 0; i < runs; i++) {
        double c0 = cpu_now(), t0 = bench_now();
        upload(&m, url);
        t_up[i] = bench_now() - t0;
        cpu_up += cpu_now() - c0;
        setenv("CAIRN_S3_MULTIPART_THRESHOLD", "5G", 1);
        c0 = cpu_now();
        t0 = bench_now();
        upload(&m, url);
        t_put[i] = bench_now() - t0;
        cpu_put += cpu_now() - c0;
        unsetenv("CAIRN_S3_MULTIPART_THRESHOLD");
        t0 = bench_now();
        if (run(put) != 0)
            die("curl -T", NULL);
        t_curl_up[i] = bench_now() - t0;
        t_curl_mp[i] = curl_multipart(curl, user, mp_url, tmpfile, fi.file_size,
                                      (size_t)8 << 20, dir);
    }
    rmdir(dir);

    /* Lazy open: requests through the proxy, time direct. */
    char proxied[512];
    snprintf(proxied, sizeof proxied, "%s", proxy_url);
    setenv("AWS_ENDPOINT_URL", proxied, 1);
    proxy_requests("/__proxy/reset");
    if (cairn_file_open(url, NULL, &f, &err) != CAIRN_OK)
        die("open via proxy", &err);
    long open_requests = proxy_requests("/__proxy/stats");
    cairn_file_close(f);
    setenv("AWS_ENDPOINT_URL", endpoint, 1);
    int open_runs = runs * 5 > 15 ? 15 : runs * 5;
    for (int i = 0; i < open_runs; i++) {
        double t0 = bench_now();
        if (cairn_file_open(url, NULL, &f, &err) != CAIRN_OK)
            die("open", &err);
        t_open[i] = bench_now() - t0;
        cairn_file_close(f);
    }

    /* Read everything: cairn (4 threads) vs one curl download. */
    for (int i = 0; i < runs; i++) {
        double c0 = cpu_now(), t0 = bench_now();
        read_all(url, &m, back);
        t_read[i] = bench_now() - t0;
        cpu_rd += cpu_now() - c0;
        t0 = bench_now();
        if (run(get) != 0)
            die("curl download", NULL);
        t_curl_get[i] = bench_now() - t0;
        t_curl_rg[i] = curl_ranges(curl, user, obj_url, offs, lens, tensors);
    }
    free(offs);
    free(lens);
    /* The requests of one read-all, counted at the proxy. */
    setenv("AWS_ENDPOINT_URL", proxied, 1);
    proxy_requests("/__proxy/reset");
    read_all(url, &m, back);
    long read_requests = proxy_requests("/__proxy/stats");
    setenv("AWS_ENDPOINT_URL", endpoint, 1);
    for (size_t k = 0; k < tensors; k++)
        if (memcmp(back[k], m.data[k], m.per * sizeof(float)) != 0)
            die("read-back differs", NULL);
    unlink(tmpfile);

    double up = bench_median_sort(t_up, runs), cup = bench_median_sort(t_curl_up, runs);
    double sput = bench_median_sort(t_put, runs);
    double op = bench_median_sort(t_open, open_runs), rd = bench_median_sort(t_read, runs);
    double cget = bench_median_sort(t_curl_get, runs);
    double cmp = bench_median_sort(t_curl_mp, runs), crg = bench_median_sort(t_curl_rg, runs);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mb = payload / 1e6, obj = (double)fi.file_size / 1e6;
    printf("s3 (moto on loopback, %zu tensors, %.0f MB payload, %.0f MB object, median of %d):\n",
           tensors, mb, obj, runs);
    printf("  upload    cairn (multipart, the default) %.3f s (%.0f MB/s)  curl -T %.3f s "
           "(%.0f MB/s)  ratio %.2fx (target <= 1.10)\n", up, obj / up, cup, obj / cup, up / cup);
    printf("            curl multipart (same 8 MiB parts, 4 at a time) %.3f s: cairn %.2fx; "
           "cairn's CPU %.2f s per upload\n", cmp, up / cmp, cpu_up / runs);
    printf("  upload    one PUT (CAIRN_S3_MULTIPART_THRESHOLD=5G, staged in $TMPDIR) %.3f s "
           "(%.0f MB/s): %.2fx curl -T (target <= 1.10); cairn's CPU %.2f s\n", sput, obj / sput,
           sput / cup, cpu_put / runs);
    printf("  open      %ld requests, %.2f ms (median of %d)  (target <= 2 requests, <= 5 ms)\n",
           open_requests, op * 1e3, open_runs);
    printf("  read-all  cairn %.3f s (%.0f MB/s)  curl %.3f s (%.0f MB/s)  ratio %.2fx "
           "(target <= 1.15)\n", rd, mb / rd, cget, obj / cget, rd / cget);
    printf("            curl ranges (one GET per tensor, 4 at a time) %.3f s: cairn %.2fx; "
           "cairn's CPU %.2f s per read; cairn's requests %ld (open included)\n", crg, rd / crg,
           cpu_rd / runs, read_requests);
    printf("  peak RSS  %.0f MiB (the model and its read-back buffers: %.0f MiB)\n",
           (double)ru.ru_maxrss / 1024.0, 2 * payload / 1048576.0);
    printf("RESULT workload=s3 upload_s=%.4f upload_put_s=%.4f curl_put_s=%.4f "
           "curl_multipart_s=%.4f open_requests=%ld open_ms=%.3f read_s=%.4f curl_get_s=%.4f "
           "curl_ranges_s=%.4f\n",
           up, sput, cup, cmp, open_requests, op * 1e3, rd, cget, crg);
    curl_global_cleanup();
    return 0;
}
