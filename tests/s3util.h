/*
 * s3util.h -- what the S3 tests share: running under tests/s3_harness.py
 * (moto with SigV4 enforced + the fault-injecting proxy), talking to the
 * proxy, and checks that print the call's error message.
 */
#ifndef CAIRN_TEST_S3UTIL_H
#define CAIRN_TEST_S3UTIL_H

#include "io/s3.h"
#include "testutil.h"

#include <curl/curl.h>
#include <pthread.h>

/* testutil's checks, plus the error message of the call on failure (every
 * call here reports into a local `err`). */
#define CHECK_E(expr, expected)                                       \
    do {                                                              \
        int tu_before_ = tu_failures;                                 \
        CHECK_ST(expr, expected);                                     \
        if (tu_failures != tu_before_)                                \
            fprintf(stderr, "    message: %s\n", err.message);        \
    } while (0)
#define CHECK_EOK(expr) CHECK_E(expr, CAIRN_OK)

static const char *bucket;
static char proxy_url[256];
static char moto_url[256];

/* ------------------------------------------------------------ helpers */

static inline size_t collect(char *p, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), k = size * n;
    if (have + k >= 4096)
        k = 4095 - have;
    memcpy(buf + have, p, k);
    buf[have + k] = '\0';
    return size * n;
}

/* GET proxy_url + path; the answer's body (static). */
static const char *proxy(const char *path)
{
    static char body[4096];
    char url[512];
    body[0] = '\0';
    snprintf(url, sizeof url, "%s%s", proxy_url, path);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    CHECK(curl_easy_perform(e) == CURLE_OK);
    curl_easy_cleanup(e);
    return body;
}

/* Requests the proxy saw since the last reset (method NULL: all). */
static inline long proxy_count(const char *method)
{
    const char *s = proxy("/__proxy/stats");
    char pat[32];
    snprintf(pat, sizeof pat, "%s ", method ? method : "total");
    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, pat, strlen(pat)) == 0)
            return strtol(p + strlen(pat), NULL, 10);
    return 0;
}

static inline void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = tu_rand(&seed);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* A handle on moto directly (via=0) or through the proxy (via=1). */
static cairn__s3 *open_s3(int via, int attempts)
{
    cairn__s3_config cfg;
    cairn_error err;
    cairn__s3 *s = NULL;
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    if (via) {
        free(cfg.endpoint);
        cfg.endpoint = strdup(proxy_url);
    }
    cfg.max_attempts = attempts;
    cfg.base_delay_ms = 5;
    cfg.max_delay_ms = 40;
    cfg.stall_seconds = 1;
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    cairn__s3_config_free(&cfg);
    return s;
}

static inline int count_uploads(void *ctx, const char *key, const char *id, uint64_t age)
{
    (*(int *)ctx)++;
    return 0;
}

static inline int uploads_under(cairn__s3 *s, const char *prefix)
{
    int n = 0;
    cairn_error err;
    CHECK_EOK(cairn__s3_uploads_list(s, bucket, prefix, count_uploads, &n, &err));
    return n;
}

/* Runs fn(a) and fn(b) on two threads at once and waits for both; each
 * starts with pthread_barrier_wait(go), so they are released together. */
static inline void run_two(void *(*fn)(void *), void *a, void *b, pthread_barrier_t *go)
{
    pthread_t t[2];
    pthread_barrier_init(go, NULL, 2);
    pthread_create(&t[0], NULL, fn, a);
    pthread_create(&t[1], NULL, fn, b);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pthread_barrier_destroy(go);
}

/* Whether the harness's server does what S3 does for `what`; when not, the
 * caller leaves those checks out (s3_test_setup has said which). moto does
 * everything the tests need. s3rver 3.7 checks no signature ("auth"),
 * ignores If-None-Match on writes ("conditional"), has neither
 * ListMultipartUploads nor AbortMultipartUpload ("uploads"), and no STS. */
static inline int server_has(const char *what)
{
    const char *server = getenv("CAIRN_S3_SERVER");
    (void)what;
    return !server || strcmp(server, "s3rver") != 0;
}

/* The number of unfinished uploads under prefix is n (where the server can list them). */
#define CHECK_UPLOADS(s, prefix, n)                  \
    do {                                             \
        if (server_has("uploads"))                   \
            CHECK(uploads_under(s, prefix) == (n));  \
    } while (0)

/* Returns 1 when running under the harness (bucket, proxy_url and
 * moto_url set); otherwise re-executes `self` under it (and does not
 * return) or returns 0 after printing why the test is skipped. */
static inline int s3_test_setup(const char *self)
{
    bucket = getenv("CAIRN_S3_BUCKET");
    if (bucket) {
        snprintf(proxy_url, sizeof proxy_url, "%s", getenv("CAIRN_S3_PROXY"));
        snprintf(moto_url, sizeof moto_url, "%s", getenv("AWS_ENDPOINT_URL"));
        if (!server_has("all"))
            printf("SKIP on s3rver: wrong-credential, create-only (If-None-Match), "
                   "suffix-range request count, unfinished-upload (list, abort) and STS "
                   "checks; s3rver 3.7 has none of them\n");
        return 1;
    }
    const char *src = getenv("CAIRN_SOURCE_DIR"), *py = getenv("CAIRN_PYTHON");
    char harness[4096];
    if (!src) {
        printf("SKIP: CAIRN_SOURCE_DIR unset (run through ctest)\n");
        return 0;
    }
    snprintf(harness, sizeof harness, "%s/tests/s3_harness.py", src);
    execl(py && *py ? py : "/usr/bin/python3", "python3", harness, "--timeout", "400", "--", self,
          (char *)NULL);
    perror("exec s3_harness.py");
    exit(1);
}

#endif /* CAIRN_TEST_S3UTIL_H */
