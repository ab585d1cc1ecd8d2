/*
 * test_s3_sigv4.c -- the requests the S3 client signs, checked against AWS's
 * published Signature V4 examples, with no S3 server (so it runs whichever
 * server the other S3 tests have, s3rver included, which checks no signature).
 *
 * libcurl computes the signature (CURLOPT_AWS_SIGV4); the client composes
 * what is signed: the URL (host, bucket, key encoding), the query (sorted,
 * "uploads="), the headers it adds (x-amz-content-sha256, Range, the session
 * token, If-None-Match, metadata) and the payload hash. The client sends its
 * requests to a loopback listener here (the config's connect_to hook) with a
 * fixed date (its fixed_date hook: libcurl signs with a given X-Amz-Date), and
 * the test checks:
 *
 * 1. A reference SigV4 computation in this file (libsodium's HMAC-SHA256 and
 *    SHA-256, the algorithm as AWS documents it) reproduces AWS's published
 *    vectors: get-vanilla, get-vanilla-query-order-key-case, post-vanilla,
 *    post-x-www-form-urlencoded and post-sts-header-before of the AWS SigV4
 *    test suite (credentials AKIDEXAMPLE, service "service", us-east-1,
 *    20150830T123600Z; https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html,
 *    also in awslabs/aws-c-auth tests/aws-signing-test-suite/v4/), and the
 *    "GET Object" example of the Amazon S3 API Reference
 *    (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
 * 2. The client's own GET of that S3 example sends exactly the published
 *    SignedHeaders and Signature.
 * 3. Every other request the client makes (HEAD, PUT with the payload's hash
 *    and UNSIGNED-PAYLOAD, create-only PUT, ListObjectsV2 of an encoded
 *    prefix, the multipart calls, DELETE, a session token, keys with '+',
 *    space and UTF-8) is in canonical form as sent (sorted query, every
 *    parameter with '=', uppercase percent-encoding, the payload hash equal
 *    to the body's), signs every header it adds, and carries the signature
 *    the reference computes from the request as received, as a server does
 *    (which sorts the query and gives a valueless parameter its '=': libcurl
 *    7.88 signs the query as given, so an unsorted one fails here as at S3).
 */
#include "io/s3.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/socket.h>

/* ------------------------------------------------------------ reference SigV4 */

static void hex(const unsigned char *d, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, d, n);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char d[32];
    crypto_hash_sha256(d, p, n);
    hex(d, 32, out);
}

static void hmac(const unsigned char *key, size_t klen, const char *msg, unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
    crypto_auth_hmacsha256_final(&st, out);
}

/* The signature (hex) of a canonical request, per AWS's documentation:
 * StringToSign = algorithm, date, scope, hex(SHA-256(canonical request));
 * key = HMAC chain of "AWS4"+secret over day, region, service, "aws4_request". */
static void sign(const char *creq, const char *secret, const char *date, const char *region,
                 const char *service, char out[65])
{
    char scope[128], sts[512], h[65], k0[128];
    unsigned char k[32], sig[32];
    snprintf(scope, sizeof scope, "%.8s/%s/%s/aws4_request", date, region, service);
    sha256_hex(creq, strlen(creq), h);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, h);
    snprintf(k0, sizeof k0, "AWS4%s", secret);
    char day[9];
    snprintf(day, sizeof day, "%.8s", date);
    hmac((const unsigned char *)k0, strlen(k0), day, k);
    hmac(k, 32, region, k);
    hmac(k, 32, service, k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, sig);
    hex(sig, 32, out);
}

/* Published vectors, typed from the sources named at the top: the request
 * in canonical pieces and the Signature of its published Authorization. */
typedef struct vector {
    const char *name, *method, *path, *query;
    const char *headers; /* canonical "name:value\n" lines */
    const char *signed_headers, *body;
    const char *secret, *date, *region, *service;
    const char *signature;
} vector;

#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_HOST "host:example.amazonaws.com\n"
#define SUITE_DATE "x-amz-date:20150830T123600Z\n"
#define SUITE_AT SUITE_SECRET, "20150830T123600Z", "us-east-1", "service"
#define STS_TOKEN                                                                           \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXm" \
    "xfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy" \
    "0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64l" \
    "IZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

static const vector vectors[] = {
    {"get-vanilla", "GET", "/", "", SUITE_HOST SUITE_DATE, "host;x-amz-date", "", SUITE_AT,
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    /* The request's query is "Param2=value2&Param1=value1"; canonical sorts it. */
    {"get-vanilla-query-order-key-case", "GET", "/", "Param1=value1&Param2=value2",
     SUITE_HOST SUITE_DATE, "host;x-amz-date", "", SUITE_AT,
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"post-vanilla", "POST", "/", "", SUITE_HOST SUITE_DATE, "host;x-amz-date", "", SUITE_AT,
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-x-www-form-urlencoded", "POST", "/", "",
     "content-type:application/x-www-form-urlencoded\n" SUITE_HOST SUITE_DATE,
     "content-type;host;x-amz-date", "Param1=value1", SUITE_AT,
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-sts-header-before", "POST", "/", "",
     SUITE_HOST SUITE_DATE "x-amz-security-token:" STS_TOKEN "\n",
     "host;x-amz-date;x-amz-security-token", "", SUITE_AT,
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
    /* Amazon S3 API Reference, "Example: GET Object" (the first 10 bytes of test.txt). */
    {"s3-get-object", "GET", "/test.txt", "",
     "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
     "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
     "x-amz-date:20130524T000000Z\n",
     "host;range;x-amz-content-sha256;x-amz-date", "",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524T000000Z", "us-east-1", "s3",
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
};

static void test_vectors(void)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const vector *v = &vectors[i];
        char body_hash[65], creq[2048], sig[65];
        sha256_hex(v->body, strlen(v->body), body_hash);
        snprintf(creq, sizeof creq, "%s\n%s\n%s\n%s\n%s\n%s", v->method, v->path, v->query,
                 v->headers, v->signed_headers, body_hash);
        sign(creq, v->secret, v->date, v->region, v->service, sig);
        if (strcmp(sig, v->signature) != 0)
            fprintf(stderr, "vector %s: %s, published %s\n", v->name, sig, v->signature);
        CHECK(strcmp(sig, v->signature) == 0);
    }
}

/* ------------------------------------------------------------ the listener */

typedef struct listener {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    char answer[2048]; /* the reply to the next request */
    char *last;        /* the last request, head and body */
    size_t last_len;
    int requests;
} listener;

static void serve_one(listener *l, int c)
{
    size_t cap = 1 << 16, n = 0, head = 0, want = 0;
    char *buf = malloc(cap + 1);
    while (n < cap) {
        ssize_t k = recv(c, buf + n, cap - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
        buf[n] = '\0';
        char *end = head ? NULL : strstr(buf, "\r\n\r\n");
        if (end) {
            head = (size_t)(end - buf) + 4;
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            want = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
        }
        if (head && n >= head + want)
            break;
    }
    pthread_mutex_lock(&l->mu);
    free(l->last);
    l->last = buf;
    l->last_len = n;
    l->requests++;
    send(c, l->answer, strlen(l->answer), MSG_NOSIGNAL);
    pthread_mutex_unlock(&l->mu);
}

static void *serve(void *arg)
{
    listener *l = arg;
    for (;;) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        serve_one(l, c);
        close(c);
    }
}

static void listener_start(listener *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(bind(l->fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(l->fd, 16) == 0);
    getsockname(l->fd, (struct sockaddr *)&a, &al);
    l->port = ntohs(a.sin_port);
    pthread_create(&l->thread, NULL, serve, l);
}

static void listener_stop(listener *l)
{
    shutdown(l->fd, SHUT_RDWR);
    close(l->fd);
    pthread_join(l->thread, NULL);
    free(l->last);
    pthread_mutex_destroy(&l->mu);
}

static void answer(listener *l, const char *status_and_headers, const char *body)
{
    pthread_mutex_lock(&l->mu);
    snprintf(l->answer, sizeof l->answer, "HTTP/1.1 %s\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n%s", status_and_headers, strlen(body), body);
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------ checking a request */

/* The value of header `name` (lowercase) in the head, trimmed, in out; 0 if absent. */
static int header_value(const char *head, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ' || *v == '\t')
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            snprintf(out, size, "%.*s", (int)(e - v), v);
            return 1;
        }
    }
    return 0;
}

/* Canonical already: unreserved bytes, '/' when a path, and %XX uppercase. */
static int encoded_ok(const char *s, size_t n, int path)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == '~' ||
            (path && c == '/'))
            continue;
        if (c != '%' || i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
            !isxdigit((unsigned char)s[i + 2]) || islower((unsigned char)s[i + 1]) ||
            islower((unsigned char)s[i + 2]))
            return 0;
        i += 2;
    }
    return 1;
}

/* Sorted by name, every parameter name=value, each part canonically encoded. */
static int query_canonical(const char *q)
{
    char prev[256] = "";
    int first = 1;
    while (*q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (!eq || !encoded_ok(q, (size_t)(eq - q), 0) ||
            !encoded_ok(eq + 1, (size_t)(end - eq - 1), 0))
            return 0;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - q), q);
        if (!first && strcmp(prev, name) >= 0)
            return 0;
        snprintf(prev, sizeof prev, "%s", name);
        first = 0;
        q = amp ? amp + 1 : end;
    }
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The canonical query as a server computes it from the one received:
 * parameters sorted, each with its '=' (encoding is taken as sent). */
static void query_canonicalize(const char *q, char *out, size_t size)
{
    char copy[2048], *parts[64], *save = NULL;
    size_t n = 0, o = 0;
    snprintf(copy, sizeof copy, "%s", q);
    for (char *p = strtok_r(copy, "&", &save); p && n < 64; p = strtok_r(NULL, "&", &save))
        parts[n++] = p;
    qsort(parts, n, sizeof parts[0], by_name);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, size - o, "%s%s%s", i ? "&" : "", parts[i],
                              strchr(parts[i], '=') ? "" : "=");
}

/* Checks the last request the listener got, as described at the top;
 * returns its Signature (static) for callers that compare it further. */
static const char *check_request(listener *l, const char *secret, const char *date,
                                 const char *what)
{
    static char sig_sent[65];
    sig_sent[0] = '\0';
    pthread_mutex_lock(&l->mu);
    char *req = l->last ? strdup(l->last) : NULL;
    size_t len = l->last_len;
    pthread_mutex_unlock(&l->mu);
    CHECK(req != NULL);
    if (!req)
        return sig_sent;
    char *head_end = strstr(req, "\r\n\r\n");
    const char *body = head_end ? head_end + 4 : "";
    size_t body_len = head_end ? len - (size_t)(body - req) : 0;
    char method[16], target[2048], auth[4096], sh[512];
    CHECK(sscanf(req, "%15s %2047s", method, target) == 2);
    CHECK(header_value(req, "authorization", auth, sizeof auth));
    char *q = strchr(target, '?');
    const char *query = q ? q + 1 : "";
    if (q)
        *q = '\0';
    int ok_form = encoded_ok(target, strlen(target), 1) && query_canonical(query);
    if (!ok_form)
        fprintf(stderr, "%s: not canonical as sent: %s?%s\n", what, target, query);
    CHECK(ok_form);

    /* Credential, SignedHeaders and Signature of the Authorization header. */
    char cred[256] = "", region[64] = "", service[64] = "";
    const char *c = strstr(auth, "Credential="), *s = strstr(auth, "SignedHeaders="),
               *g = strstr(auth, "Signature=");
    CHECK(strncmp(auth, "AWS4-HMAC-SHA256 ", 17) == 0 && c && s && g);
    if (!c || !s || !g) {
        free(req);
        return sig_sent;
    }
    sscanf(c + 11, "%255[^,]", cred);
    sscanf(s + 14, "%511[^,]", sh);
    snprintf(sig_sent, sizeof sig_sent, "%.64s", g + 10);
    char *p1 = strchr(cred, '/'), *p2 = p1 ? strchr(p1 + 1, '/') : NULL,
         *p3 = p2 ? strchr(p2 + 1, '/') : NULL;
    CHECK(p3 != NULL);
    if (p3) {
        snprintf(region, sizeof region, "%.*s", (int)(p3 - p2 - 1), p2 + 1);
        snprintf(service, sizeof service, "%.*s", (int)(strcspn(p3 + 1, "/")), p3 + 1);
        CHECK(strncmp(p1 + 1, date, 8) == 0);
    }

    /* Every header the client adds is signed, host and the date too. */
    static const char *const must[] = {"host", "x-amz-date", "x-amz-content-sha256"};
    char padded[520];
    snprintf(padded, sizeof padded, ";%s;", sh);
    for (size_t i = 0; i < 3; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, ";%s;", must[i]);
        CHECK(strstr(padded, pat) != NULL);
    }
    for (const char *p = strstr(req, "\r\n"); p && p < head_end; p = strstr(p + 2, "\r\n")) {
        char name[128];
        if (sscanf(p + 2, "%127[^:\r\n]:", name) != 1)
            continue;
        for (char *t = name; *t; t++)
            *t = (char)tolower((unsigned char)*t);
        int ours = strncmp(name, "x-amz-", 6) == 0 || strcmp(name, "range") == 0 ||
                   strcmp(name, "if-none-match") == 0 || strcmp(name, "content-type") == 0;
        char pat[140];
        snprintf(pat, sizeof pat, ";%s;", name);
        if (ours && !strstr(padded, pat))
            fprintf(stderr, "%s: header %s is sent unsigned\n", what, name);
        CHECK(!ours || strstr(padded, pat));
    }

    /* The payload hash sent is the body's (or UNSIGNED-PAYLOAD). */
    char payload[80], body_hash[65];
    CHECK(header_value(req, "x-amz-content-sha256", payload, sizeof payload));
    sha256_hex(body, body_len, body_hash);
    CHECK(strcmp(payload, "UNSIGNED-PAYLOAD") == 0 || strcmp(payload, body_hash) == 0);

    /* The reference signature of the request as received. */
    char creq[16384], cq[2048];
    query_canonicalize(query, cq, sizeof cq);
    size_t o = (size_t)snprintf(creq, sizeof creq, "%s\n%s\n%s\n", method, target, cq);
    char list[512];
    snprintf(list, sizeof list, "%s", sh);
    for (char *save = NULL, *name = strtok_r(list, ";", &save); name;
         name = strtok_r(NULL, ";", &save)) {
        char v[4096] = "";
        CHECK(header_value(req, name, v, sizeof v));
        o += (size_t)snprintf(creq + o, sizeof creq - o, "%s:%s\n", name, v);
    }
    snprintf(creq + o, sizeof creq - o, "\n%s\n%s", sh, payload);
    char want[65];
    sign(creq, secret, date, region, service, want);
    if (strcmp(want, sig_sent) != 0)
        fprintf(stderr, "%s: signature %s, reference %s over\n%s\n", what, sig_sent, want, creq);
    CHECK(strcmp(want, sig_sent) == 0);
    free(req);
    return sig_sent;
}

/* ------------------------------------------------------------ the client's requests */

#define S3_ID "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_DATE "20130524T000000Z"

static cairn__s3 *client(listener *l, const char *token, int unsigned_payload)
{
    cairn__s3_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.endpoint = strdup("http://s3.amazonaws.com");
    cfg.region = strdup("us-east-1");
    cfg.access_key = strdup(S3_ID);
    cfg.secret_key = strdup(S3_SECRET);
    cfg.session_token = token ? strdup(token) : NULL;
    cfg.path_style = 0; /* examplebucket.s3.amazonaws.com, as in the S3 example */
    cfg.max_attempts = 1;
    cfg.connect_timeout_ms = 5000;
    cfg.stall_seconds = 5;
    cfg.unsigned_payload = unsigned_payload;
    snprintf(cfg.fixed_date, sizeof cfg.fixed_date, "%s", S3_DATE);
    snprintf(cfg.connect_to, sizeof cfg.connect_to, "::127.0.0.1:%d", l->port);
    cairn__s3 *s = NULL;
    cairn_error err;
    CHECK_OK(cairn__s3_open(&s, &cfg, &err));
    cairn__s3_config_free(&cfg);
    return s;
}

static int no_key(void *ctx, const char *key, uint64_t size) { return 0; }

static void test_client(void)
{
    listener l;
    listener_start(&l);
    cairn_error err;
    char buf[16];
    cairn__s3 *s = client(&l, NULL, 0);

    /* The S3 example itself: the same SignedHeaders and Signature. */
    answer(&l, "206 Partial Content\r\nContent-Range: bytes 0-9/100", "0123456789");
    CHECK_OK(cairn__s3_get(s, "examplebucket", "test.txt", 0, 10, buf, &err));
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    const char *sig = check_request(&l, S3_SECRET, S3_DATE, "GET Object example");
    CHECK(strcmp(sig, vectors[5].signature) == 0);
    char auth[1024] = "";
    header_value(l.last, "authorization", auth, sizeof auth);
    CHECK(strstr(auth, "Credential=" S3_ID "/20130524/us-east-1/s3/aws4_request"));
    CHECK(strstr(auth, "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"));

    /* Every other request, keys with '+', space and UTF-8 among them. */
    static const char *const keys[] = {"test.txt", "dir/a+b c.cairn", "mod\xc3\xa8le/\xe2\x82\xac"};
    for (size_t i = 0; i < 3; i++) {
        uint64_t size = 0;
        answer(&l, "200 OK\r\nETag: \"e1\"", "");
        CHECK_OK(cairn__s3_put(s, "examplebucket", keys[i], "Welcome to Amazon S3.", 21, 0, &err));
        check_request(&l, S3_SECRET, S3_DATE, "PUT");
        answer(&l, "200 OK\r\nETag: \"e1\"", "");
        CHECK_OK(cairn__s3_put(s, "examplebucket", keys[i], "x", 1, CAIRN__S3_CREATE_ONLY, &err));
        check_request(&l, S3_SECRET, S3_DATE, "PUT If-None-Match");
        answer(&l, "200 OK", "");
        CHECK_OK(cairn__s3_delete(s, "examplebucket", keys[i], &err));
        check_request(&l, S3_SECRET, S3_DATE, "DELETE");
        pthread_mutex_lock(&l.mu);
        snprintf(l.answer, sizeof l.answer,
                 "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 21\r\n\r\n");
        pthread_mutex_unlock(&l.mu);
        CHECK_OK(cairn__s3_head(s, "examplebucket", keys[i], &size, &err));
        CHECK(size == 21);
        check_request(&l, S3_SECRET, S3_DATE, "HEAD");
    }
    answer(&l, "200 OK", "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
    CHECK_OK(cairn__s3_list(s, "examplebucket", "run 1/a+b/\xc3\xa9", no_key, NULL, &err));
    check_request(&l, S3_SECRET, S3_DATE, "ListObjectsV2");
    CHECK(strstr(l.last, "?list-type=2&prefix=run%201%2Fa%2Bb%2F%C3%A9 "));

    /* Multipart: "uploads=", sorted partNumber/uploadId, the XML body hashed. */
    cairn__s3_upload *u = NULL;
    answer(&l, "200 OK", "<InitiateMultipartUploadResult><UploadId>Up+/id=1</UploadId>"
                         "</InitiateMultipartUploadResult>");
    CHECK_OK(cairn__s3_upload_create(s, "examplebucket", "big file.cairn", &u, &err));
    check_request(&l, S3_SECRET, S3_DATE, "CreateMultipartUpload");
    CHECK(strstr(l.last, "?uploads= "));
    answer(&l, "200 OK\r\nETag: \"p1\"", "");
    CHECK_OK(cairn__s3_upload_part(u, 1, "part one", 8, &err));
    check_request(&l, S3_SECRET, S3_DATE, "UploadPart");
    CHECK(strstr(l.last, "?partNumber=1&uploadId=Up%2B%2Fid%3D1 "));
    answer(&l, "200 OK", "<CompleteMultipartUploadResult></CompleteMultipartUploadResult>");
    CHECK_OK(cairn__s3_upload_complete(u, 1, CAIRN__S3_CREATE_ONLY, &err));
    check_request(&l, S3_SECRET, S3_DATE, "CompleteMultipartUpload");
    answer(&l, "204 No Content", "");
    CHECK_OK(cairn__s3_upload_abort_id(s, "examplebucket", "k", "Up+/id=1", &err));
    check_request(&l, S3_SECRET, S3_DATE, "AbortMultipartUpload");
    cairn__s3_close(s);

    /* UNSIGNED-PAYLOAD (trusted network, or HTTPS) is signed as such. */
    s = client(&l, NULL, 1);
    answer(&l, "200 OK\r\nETag: \"e1\"", "");
    CHECK_OK(cairn__s3_put(s, "examplebucket", "u", "unsigned body", 13, 0, &err));
    check_request(&l, S3_SECRET, S3_DATE, "PUT unsigned");
    char v[80];
    CHECK(header_value(l.last, "x-amz-content-sha256", v, sizeof v) &&
          strcmp(v, "UNSIGNED-PAYLOAD") == 0);
    cairn__s3_close(s);

    /* A session token: sent as x-amz-security-token, signed (the check
     * above fails on any unsigned x-amz- header). */
    s = client(&l, STS_TOKEN, 0);
    answer(&l, "206 Partial Content\r\nContent-Range: bytes 0-9/100", "0123456789");
    CHECK_OK(cairn__s3_get(s, "examplebucket", "test.txt", 0, 10, buf, &err));
    check_request(&l, S3_SECRET, S3_DATE, "GET with a session token");
    CHECK(header_value(l.last, "x-amz-security-token", v, sizeof v) &&
          strncmp(v, "AQoDYXdzEPT", 11) == 0);
    cairn__s3_close(s);
    listener_stop(&l);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_vectors();
    test_client();
    TEST_MAIN_END();
}
