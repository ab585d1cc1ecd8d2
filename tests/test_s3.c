/*
 * test_s3.c -- the S3 client (src/io/s3.c) against a real S3 server on
 * loopback: moto_server with SigV4 enforced, behind the fault-injecting
 * proxy of tests/s3_harness.py. Run by ctest, the program re-executes
 * itself under the harness (which skips, saying why, without moto).
 */
#include "io/s3.h"
#include "io/s3_xml.h"
#include "s3util.h"

#include <pthread.h>

static int count_keys(void *ctx, const char *key, uint64_t size)
{
    (*(int *)ctx)++;
    return 0;
}

/* ------------------------------------------------------------ offline parts */

static void test_url_and_xml(void)
{
    char *b, *k;
    cairn_error err;
    CHECK_EOK(cairn__s3_url_parse("s3://my-bucket/a/b.cairn", 0, &b, &k, &err));
    CHECK(strcmp(b, "my-bucket") == 0 && strcmp(k, "a/b.cairn") == 0);
    free(b);
    free(k);
    CHECK_EOK(cairn__s3_url_parse("s3://my-bucket", 1, &b, &k, &err));
    CHECK(strcmp(k, "") == 0);
    free(b);
    free(k);
    CHECK_E(cairn__s3_url_parse("s3://my-bucket/", 0, &b, &k, &err), CAIRN_E_ARG);
    CHECK(b == NULL && k == NULL);
    CHECK_E(cairn__s3_url_parse("s3://My_Bucket/x", 0, &b, &k, &err), CAIRN_E_ARG);
    CHECK_E(cairn__s3_url_parse("s3://ab/x", 0, &b, &k, &err), CAIRN_E_ARG);
    CHECK_E(cairn__s3_url_parse("s3://abc/x\ty", 0, &b, &k, &err), CAIRN_E_ARG);
    CHECK_E(cairn__s3_url_parse("/tmp/x", 0, &b, &k, &err), CAIRN_E_ARG);
    CHECK(cairn__s3_is_url("s3://a/b") && !cairn__s3_is_url("s3:/a"));

    const char *doc = "<R><Key>a&amp;b&lt;&#x263A;&#65;</Key><Size>42</Size><Bad>x&nope;</Bad>"
                      "<Nul>&#0;</Nul><Lt>a<b</Lt><Big>99999999999999999999</Big><Open>x</R>";
    cairn__xml_span d = {doc, strlen(doc)}, in;
    char *t = cairn__xml_get(d, "Key");
    CHECK(t && strcmp(t, "a&b<\xE2\x98\xBA" "A") == 0);
    free(t);
    CHECK(cairn__xml_get(d, "Bad") == NULL);
    CHECK(cairn__xml_get(d, "Nul") == NULL);
    CHECK(cairn__xml_get(d, "Missing") == NULL);
    size_t pos = 0;
    uint64_t v;
    CHECK(cairn__xml_next(d, &pos, "Size", &in) == 1 && cairn__xml_u64(in, &v) == 0 && v == 42);
    pos = 0;
    CHECK(cairn__xml_next(d, &pos, "Lt", &in) == 1 && cairn__xml_text(in) == NULL);
    pos = 0;
    CHECK(cairn__xml_next(d, &pos, "Big", &in) == 1 && cairn__xml_u64(in, &v) == -1);
    pos = 0;
    CHECK(cairn__xml_next(d, &pos, "Open", &in) == -1);
}

static void test_config(const char *dir)
{
    /* The credentials file and profile, with the environment's keys unset. */
    char creds[4200], conf[4200];
    snprintf(creds, sizeof creds, "%s/credentials", dir);
    snprintf(conf, sizeof conf, "%s/config", dir);
    const char *c = "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n"
                    "[work]\n aws_access_key_id=WORK \naws_secret_access_key= worksecret\r\n"
                    "aws_session_token = tok\n";
    const char *g = "[default]\nregion = eu-west-1\n[profile work]\nregion = ap-south-1\n";
    CHECK(tu_write_file(creds, c, strlen(c)) == 0 && tu_write_file(conf, g, strlen(g)) == 0);
    char *saved[4];
    const char *names[4] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                            "AWS_ENDPOINT_URL"};
    for (int i = 0; i < 4; i++) {
        const char *v = getenv(names[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(names[i]);
    }
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds, 1);
    setenv("AWS_CONFIG_FILE", conf, 1);
    cairn__s3_config cfg;
    cairn_error err;
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    CHECK(cfg.access_key && strcmp(cfg.access_key, "DEF") == 0 && !cfg.session_token);
    CHECK(strcmp(cfg.region, "eu-west-1") == 0 && !cfg.path_style);
    CHECK(strcmp(cfg.endpoint, "https://s3.eu-west-1.amazonaws.com") == 0);
    cairn__s3_config_free(&cfg);
    setenv("AWS_PROFILE", "work", 1);
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    CHECK(strcmp(cfg.access_key, "WORK") == 0 && strcmp(cfg.secret_key, "worksecret") == 0);
    CHECK(cfg.session_token && strcmp(cfg.session_token, "tok") == 0);
    CHECK(strcmp(cfg.region, "ap-south-1") == 0);
    CHECK(strncmp(cfg.key_source, "profile work of ", 16) == 0 && strstr(cfg.key_source, creds));
    cairn__s3_config_free(&cfg);
    /* The environment wins over the file; half a key pair is refused. */
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    CHECK_E(cairn__s3_config_env(&cfg, &err), CAIRN_E_ARG);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    CHECK(strcmp(cfg.access_key, "ENVKEY") == 0 && !cfg.session_token && cfg.path_style);
    CHECK(strcmp(cfg.key_source, "AWS_ACCESS_KEY_ID") == 0);
    cairn__s3_config_free(&cfg);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    CHECK(cfg.session_token && strcmp(cfg.session_token, "envtoken") == 0);
    unsetenv("AWS_SESSION_TOKEN");
    cairn__s3 *s = NULL;
    free(cfg.endpoint);
    cfg.endpoint = strdup("ftp://x");
    CHECK_E(cairn__s3_open(&s, &cfg, &err), CAIRN_E_ARG);
    free(cfg.endpoint);
    cfg.endpoint = strdup("http://host/path");
    CHECK_E(cairn__s3_open(&s, &cfg, &err), CAIRN_E_ARG);
    CHECK(s == NULL);
    cairn__s3_config_free(&cfg);
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    unsetenv("AWS_CONFIG_FILE");
    for (int i = 0; i < 4; i++) {
        if (saved[i])
            setenv(names[i], saved[i], 1);
        else
            unsetenv(names[i]);
        free(saved[i]);
    }
}

/* ------------------------------------------------------------ against moto */

static void test_round_trip(void)
{
    cairn__s3 *s = open_s3(1, 5);
    cairn_error err;
    size_t n = 3 << 20;
    uint8_t *data = malloc(n), *back = malloc(n);
    fill(data, n, 1);
    proxy("/__proxy/reset");
    CHECK_EOK(cairn__s3_put(s, bucket, "rt/obj one+€.bin", data, n, 0, &err));
    uint64_t size = 0;
    CHECK_EOK(cairn__s3_head(s, bucket, "rt/obj one+€.bin", &size, &err));
    CHECK(size == n);
    /* Ranged reads: start, middle, end, one byte. */
    const uint64_t offs[][2] = {{0, 100}, {12345, 1 << 20}, {n - 777, 777}, {n - 1, 1}, {0, n}};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memset(back, 0, n);
        CHECK_EOK(cairn__s3_get(s, bucket, "rt/obj one+€.bin", offs[i][0], offs[i][1], back, &err));
        CHECK(memcmp(back, data + offs[i][0], offs[i][1]) == 0);
    }
    /* The tail in one request: size + last bytes; a tail longer than the object. */
    size_t got;
    CHECK_EOK(cairn__s3_get_tail(s, bucket, "rt/obj one+€.bin", 4096, back, &got, &size, &err));
    CHECK(got == 4096 && size == n && memcmp(back, data + n - 4096, 4096) == 0);
    CHECK_EOK(cairn__s3_put(s, bucket, "rt/small", "abc", 3, 0, &err));
    CHECK_EOK(cairn__s3_get_tail(s, bucket, "rt/small", 64, back, &got, &size, &err));
    CHECK(got == 3 && size == 3 && memcmp(back + 61, "abc", 3) == 0);
    CHECK_EOK(cairn__s3_put(s, bucket, "rt/empty", "", 0, 0, &err));
    CHECK_EOK(cairn__s3_get_tail(s, bucket, "rt/empty", 64, back, &got, &size, &err));
    CHECK(got == 0 && size == 0);
    /* Requests: 3 PUT, 1 HEAD, 8 GET, as counted by the proxy and the handle. */
    if (server_has("suffix ranges")) { /* s3rver's answers cost a HEAD and a GET more */
        CHECK(proxy_count("PUT") == 3 && proxy_count("HEAD") == 1 && proxy_count("GET") == 8);
        CHECK(proxy_count(NULL) == 12 && cairn__s3_requests(s) == 12);
    }

    /* Listing by prefix, and deletes (a missing key deletes fine). */
    int keys = 0;
    CHECK_EOK(cairn__s3_list(s, bucket, "rt/", count_keys, &keys, &err));
    CHECK(keys == 3);
    CHECK_EOK(cairn__s3_delete(s, bucket, "rt/small", &err));
    CHECK_EOK(cairn__s3_delete(s, bucket, "rt/small", &err));
    keys = 0;
    CHECK_EOK(cairn__s3_list(s, bucket, "rt/", count_keys, &keys, &err));
    CHECK(keys == 2);

    /* Missing key, reading past the end of an object (a truncated file). */
    CHECK_E(cairn__s3_head(s, bucket, "rt/none", &size, &err), CAIRN_E_NOT_FOUND);
    CHECK_E(cairn__s3_get(s, bucket, "rt/none", 0, 10, back, &err), CAIRN_E_NOT_FOUND);
    CHECK(strstr(err.message, "s3://cairn-test/rt/none") && strstr(err.message, "404"));
    CHECK_E(cairn__s3_get(s, bucket, "rt/obj one+€.bin", n - 10, 20, back, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "truncated"));
    CHECK_E(cairn__s3_get(s, bucket, "rt/obj one+€.bin", n + 10, 20, back, &err), CAIRN_E_CORRUPT);
    free(data);
    free(back);
    cairn__s3_close(s);
}

/* Refused credentials, by the server itself (a server that checks signatures). */
static void test_wrong_credentials(void)
{
    cairn_error err;
    cairn__s3 *s = NULL;
    uint64_t size;
    /* Wrong secret: CAIRN_E_AUTH naming the object, the HTTP status, S3's
     * code and the access key ID with where it came from; neither the wrong
     * secret nor the right one anywhere in it; not retried. */
    cairn__s3_config cfg;
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    char *right = strdup(cfg.secret_key);
    free(cfg.secret_key);
    cfg.secret_key = strdup("Wrong-Secret-0123456789");
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    CHECK_E(cairn__s3_put(s, bucket, "auth/x", "x", 1, 0, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "s3://cairn-test/auth/x") && strstr(err.message, "HTTP 403"));
    CHECK(strstr(err.message, "(SignatureDoesNotMatch)") && strstr(err.message, "wrong secret"));
    CHECK(strstr(err.message, cfg.access_key) && strstr(err.message, "from AWS_ACCESS_KEY_ID"));
    CHECK(!strstr(err.message, "Wrong-Secret") && !strstr(err.message, right));
    CHECK(cairn__s3_requests(s) == 1); /* not retried */
    CHECK(strcmp(cairn_strerror(CAIRN_E_AUTH), "access denied (credentials or permissions)") == 0);
    /* Reads and listings are refused the same way. */
    uint8_t one;
    CHECK_E(cairn__s3_get(s, bucket, "auth/x", 0, 1, &one, &err), CAIRN_E_AUTH);
    CHECK_E(cairn__s3_list(s, bucket, "auth/", count_keys, &(int){0}, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "ListObjectsV2") && strstr(err.message, "HTTP 403"));
    cairn__s3_close(s);
    /* An unknown key ID: a HEAD's 403 has no body (so no code), a GET's names it. */
    free(cfg.access_key);
    cfg.access_key = strdup("AKIANOSUCHKEY0000000");
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    CHECK_E(cairn__s3_head(s, bucket, "auth/x", &size, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "HTTP 403") && strstr(err.message, "AKIANOSUCHKEY0000000"));
    CHECK_E(cairn__s3_get(s, bucket, "auth/x", 0, 1, &one, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "(InvalidAccessKeyId)") && strstr(err.message, "does not know"));
    CHECK(!strstr(err.message, "Wrong-Secret") && !strstr(err.message, right));
    cairn__s3_close(s);
    /* Credentials from a profile: the message names the profile and the file. */
    free(cfg.access_key);
    cfg.access_key = strdup("AKIANOSUCHKEY0000000");
    snprintf(cfg.key_source, sizeof cfg.key_source, "profile work of /x/credentials");
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    CHECK_E(cairn__s3_get(s, bucket, "auth/x", 0, 1, &one, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "from profile work of /x/credentials"));
    cairn__s3_close(s);
    /* Anonymous requests refused (S3 answers 403 AccessDenied; moto 5.2
     * fails with 500 when auth is on, so the proxy gives S3's answer). */
    free(cfg.access_key);
    free(cfg.secret_key);
    cfg.access_key = cfg.secret_key = NULL;
    free(cfg.endpoint);
    cfg.endpoint = strdup(proxy_url);
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    proxy("/__proxy/fault?mode=error&count=1&status=403&code=AccessDenied");
    CHECK_E(cairn__s3_get(s, bucket, "auth/x", 0, 1, &one, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "anonymous") && strstr(err.message, "AccessDenied"));
    proxy("/__proxy/reset");
    cairn__s3_close(s);
    cairn__s3_config_free(&cfg);
    free(right);
}

static void test_errors(void)
{
    cairn_error err;
    cairn__s3 *s = open_s3(0, 3);
    uint64_t size;
    CHECK_E(cairn__s3_head(s, "no-such-bucket-here", "k", &size, &err), CAIRN_E_NOT_FOUND);
    CHECK_E(cairn__s3_put(s, "no-such-bucket-here", "k", "x", 1, 0, &err), CAIRN_E_NOT_FOUND);
    CHECK(strstr(err.message, "no such bucket") && strstr(err.message, "NoSuchBucket"));
    cairn__s3_close(s);

    if (server_has("auth"))
        test_wrong_credentials();
    uint8_t one;

    /* Codes a server may send, injected by the proxy: token problems come
     * as 400 and are CAIRN_E_AUTH; a 403 about the storage class is not;
     * another 400 stays CAIRN_E_IO. None is retried. */
    static const struct {
        int status;
        const char *code, *says;
        cairn_status st;
    } answers[] = {
        {400, "ExpiredToken", "session token has expired", CAIRN_E_AUTH},
        {400, "InvalidToken", "session token is not valid", CAIRN_E_AUTH},
        {403, "AccessDenied", "no permission", CAIRN_E_AUTH},
        {403, "RequestTimeTooSkewed", "clock", CAIRN_E_AUTH},
        {401, "Unauthorized", "access denied", CAIRN_E_AUTH},
        {403, "InvalidObjectState", "HTTP 403", CAIRN_E_IO},
        {400, "InvalidArgument", "HTTP 400", CAIRN_E_IO},
    };
    s = open_s3(1, 3);
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        char q[160];
        proxy("/__proxy/reset");
        snprintf(q, sizeof q, "/__proxy/fault?mode=error&count=10&status=%d&code=%s",
                 answers[i].status, answers[i].code);
        proxy(q);
        CHECK_E(cairn__s3_get(s, bucket, "auth/x", 0, 1, &one, &err), answers[i].st);
        CHECK(strstr(err.message, answers[i].code) && strstr(err.message, answers[i].says));
        CHECK(proxy_count("GET") == 1);
    }
    proxy("/__proxy/reset");
    cairn__s3_close(s);

    /* Nothing listening: a clear transport error after the retries. */
    cairn__s3_config cfg;
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    free(cfg.endpoint);
    cfg.endpoint = strdup("http://127.0.0.1:1");
    cfg.max_attempts = 2;
    cfg.base_delay_ms = 1;
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    CHECK_E(cairn__s3_head(s, bucket, "k", &size, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "s3://cairn-test/k") && strstr(err.message, "2 attempts"));
    cairn__s3_close(s);
    cairn__s3_config_free(&cfg);
}

/* Temporary credentials (an assumed role of moto's STS): the session token
 * goes as x-amz-security-token, among the signed headers; the server
 * accepts it; a wrong token is CAIRN_E_AUTH, and no token is in a message. */
static void test_session_token(void)
{
    const char *sess = getenv("CAIRN_S3_SESSION");
    char id[128], secret[128], token[2048];
    if (!sess || sscanf(sess, "%127s %127s %2047s", id, secret, token) != 3) {
        printf("SKIP session token: the harness gave no temporary credentials\n");
        return;
    }
    cairn_error err;
    cairn__s3_config cfg;
    cairn__s3 *s = NULL;
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    free(cfg.endpoint);
    free(cfg.access_key);
    free(cfg.secret_key);
    cfg.endpoint = strdup(proxy_url);
    cfg.access_key = strdup(id);
    cfg.secret_key = strdup(secret);
    cfg.session_token = strdup(token);
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    proxy("/__proxy/reset");
    CHECK_EOK(cairn__s3_put(s, bucket, "sess/x", "token!", 6, 0, &err));
    char head[4096];
    snprintf(head, sizeof head, "%s", proxy("/__proxy/last"));
    char want[2100];
    snprintf(want, sizeof want, "x-amz-security-token: %s\r\n", token);
    CHECK(strstr(head, want) != NULL);
    const char *signed_hdrs = strstr(head, "SignedHeaders=");
    CHECK(signed_hdrs && strstr(signed_hdrs, "x-amz-security-token") &&
          strstr(signed_hdrs, "x-amz-security-token") < strstr(signed_hdrs, "Signature="));
    char back[6];
    CHECK_EOK(cairn__s3_get(s, bucket, "sess/x", 0, 6, back, &err));
    CHECK(memcmp(back, "token!", 6) == 0);
    cairn__s3_close(s);
    /* The same key with another token: refused, the token in no message. */
    free(cfg.session_token);
    cfg.session_token = strdup("Not-The-Session-Token-1234");
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    CHECK_E(cairn__s3_get(s, bucket, "sess/x", 0, 6, back, &err), CAIRN_E_AUTH);
    CHECK(strstr(err.message, "InvalidToken") && strstr(err.message, "session token"));
    CHECK(strstr(err.message, id) && !strstr(err.message, "Not-The-Session") &&
          !strstr(err.message, token) && !strstr(err.message, secret));
    cairn__s3_close(s);
    /* AWS_SESSION_TOKEN reaches the handle from the environment. */
    cairn__s3_config_free(&cfg);
    char *saved_id = strdup(getenv("AWS_ACCESS_KEY_ID"));
    char *saved = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    setenv("AWS_SESSION_TOKEN", token, 1);
    setenv("AWS_ACCESS_KEY_ID", id, 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    CHECK_EOK(cairn__s3_config_env(&cfg, &err));
    CHECK(cfg.session_token && strcmp(cfg.session_token, token) == 0);
    CHECK_EOK(cairn__s3_open(&s, &cfg, &err));
    CHECK_EOK(cairn__s3_get(s, bucket, "sess/x", 0, 6, back, &err));
    cairn__s3_close(s);
    cairn__s3_config_free(&cfg);
    unsetenv("AWS_SESSION_TOKEN");
    setenv("AWS_ACCESS_KEY_ID", saved_id, 1);
    setenv("AWS_SECRET_ACCESS_KEY", saved, 1);
    free(saved_id);
    free(saved);
    proxy("/__proxy/reset");
}

static void test_faults(void)
{
    cairn_error err;
    cairn__s3 *s = open_s3(1, 4);
    size_t n = 256 << 10;
    uint8_t *data = malloc(n), *back = malloc(n);
    fill(data, n, 2);
    CHECK_EOK(cairn__s3_put(s, bucket, "f/obj", data, n, 0, &err));
    static const char *modes[] = {"503", "429", "drop", "truncate", "stall", "lose"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char q[128];
        proxy("/__proxy/reset");
        snprintf(q, sizeof q, "/__proxy/fault?mode=%s&count=2&method=GET&secs=2", modes[i]);
        proxy(q);
        memset(back, 0, n);
        CHECK_EOK(cairn__s3_get(s, bucket, "f/obj", 1000, n - 1000, back, &err));
        CHECK(memcmp(back, data + 1000, n - 1000) == 0);
        CHECK(proxy_count("GET") == 3); /* two faults, then the answer */
    }
    /* Persistent 503: gives up after 4 attempts, naming the key and the status. */
    proxy("/__proxy/reset");
    proxy("/__proxy/fault?mode=503&count=100&method=GET");
    CHECK_E(cairn__s3_get(s, bucket, "f/obj", 0, 10, back, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "s3://cairn-test/f/obj") && strstr(err.message, "HTTP 503") &&
          strstr(err.message, "SlowDown") && strstr(err.message, "4 attempts"));
    CHECK(proxy_count("GET") == 4);
    /* Persistent truncation: a clear error, never a short success. */
    proxy("/__proxy/reset");
    proxy("/__proxy/fault?mode=truncate&count=100&method=GET");
    CHECK_E(cairn__s3_get(s, bucket, "f/obj", 0, n, back, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "truncated") && strstr(err.message, "f/obj"));
    /* A create-only PUT whose answer was lost: the retry sees 412, and the
     * writer token says the object is ours. */
    if (server_has("conditional")) {
        proxy("/__proxy/reset");
        proxy("/__proxy/fault?mode=lose&count=1&method=PUT");
        CHECK_EOK(cairn__s3_put(s, bucket, "f/once", data, 1000, CAIRN__S3_CREATE_ONLY, &err));
        CHECK(proxy_count("PUT") == 2);
        CHECK_E(cairn__s3_put(s, bucket, "f/once", data, 1000, CAIRN__S3_CREATE_ONLY, &err),
                CAIRN_E_EXISTS);
        CHECK(strstr(err.message, "already exists") && strstr(err.message, "f/once"));
    }

    /* Random faults on every request type during reads and multipart
     * writes: each operation succeeds whole or fails cleanly; afterwards no
     * upload is left. */
    cairn__s3 *t = open_s3(1, 8);
    proxy("/__proxy/reset");
    proxy("/__proxy/fault?mode=random&count=100000&p=0.25&seed=7&secs=1.5");
    size_t part = CAIRN__S3_MIN_PART;
    uint8_t *big = malloc(part + 1000);
    fill(big, part + 1000, 3);
    int ok_reads = 0, ok_writes = 0;
    for (int i = 0; i < 12; i++) {
        if (cairn__s3_get(t, bucket, "f/obj", (uint64_t)i * 1000, 20000, back, &err) == CAIRN_OK) {
            CHECK(memcmp(back, data + i * 1000, 20000) == 0);
            ok_reads++;
        }
    }
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "f/mp%d", i);
        cairn__s3_upload *u = NULL;
        if (cairn__s3_upload_create(t, bucket, key, &u, &err) != CAIRN_OK)
            continue;
        if (cairn__s3_upload_part(u, 1, big, part, &err) != CAIRN_OK ||
            cairn__s3_upload_part(u, 2, big + part, 1000, &err) != CAIRN_OK) {
            cairn__s3_upload_abort(u, NULL);
            continue;
        }
        if (cairn__s3_upload_complete(u, 2, CAIRN__S3_CREATE_ONLY, &err) == CAIRN_OK)
            ok_writes++;
    }
    proxy("/__proxy/reset");
    CHECK(ok_reads >= 10); /* 8 attempts at p = 0.25 */
    for (int i = 0; i < 3; i++) {
        char key[32];
        uint64_t size = 0;
        snprintf(key, sizeof key, "f/mp%d", i);
        cairn_status st = cairn__s3_head(s, bucket, key, &size, &err);
        CHECK(st == CAIRN_E_NOT_FOUND || (st == CAIRN_OK && size == part + 1000));
        if (st == CAIRN_OK) {
            uint8_t *b2 = malloc(part + 1000);
            CHECK_EOK(cairn__s3_get(s, bucket, key, 0, part + 1000, b2, &err));
            CHECK(memcmp(b2, big, part + 1000) == 0);
            free(b2);
        }
    }
    fprintf(stderr, "random faults: %d/12 reads, %d/3 multipart writes succeeded\n", ok_reads,
            ok_writes);
    /* Aborts that failed under faults leave uploads; the cleanup removes them. */
    unsigned aborted = 0;
    if (server_has("uploads"))
        CHECK_EOK(cairn__s3_uploads_gc(s, bucket, "f/", 0, &aborted, &err));
    CHECK_UPLOADS(s, "f/", 0);
    free(big);
    free(data);
    free(back);
    cairn__s3_close(t);
    cairn__s3_close(s);
}

static void test_multipart(void)
{
    cairn_error err;
    cairn__s3 *s = open_s3(0, 5);
    size_t part = CAIRN__S3_MIN_PART, n = 2 * part + 12345;
    uint8_t *data = malloc(n), *back = malloc(n);
    fill(data, n, 4);
    cairn__s3_upload *u = NULL;
    CHECK_EOK(cairn__s3_upload_create(s, bucket, "mp/a", &u, &err));
    /* Parts out of order; the object is invisible until complete. */
    CHECK_EOK(cairn__s3_upload_part(u, 3, data + 2 * part, n - 2 * part, &err));
    CHECK_EOK(cairn__s3_upload_part(u, 1, data, part, &err));
    CHECK_EOK(cairn__s3_upload_part(u, 2, data + part, part, &err));
    uint64_t size;
    CHECK_E(cairn__s3_head(s, bucket, "mp/a", &size, &err), CAIRN_E_NOT_FOUND);
    CHECK_UPLOADS(s, "mp/", 1);
    CHECK_EOK(cairn__s3_upload_complete(u, 3, CAIRN__S3_CREATE_ONLY, &err));
    CHECK_EOK(cairn__s3_get(s, bucket, "mp/a", 0, n, back, &err));
    CHECK(memcmp(back, data, n) == 0);
    CHECK_UPLOADS(s, "mp/", 0);
    if (!server_has("uploads")) {
        free(data);
        free(back);
        cairn__s3_close(s);
        return;
    }

    /* Abort leaves no upload and no object. */
    CHECK_EOK(cairn__s3_upload_create(s, bucket, "mp/b", &u, &err));
    CHECK_EOK(cairn__s3_upload_part(u, 1, data, part, &err));
    CHECK_EOK(cairn__s3_upload_abort(u, &err));
    CHECK(uploads_under(s, "mp/") == 0);
    CHECK_E(cairn__s3_head(s, bucket, "mp/b", &size, &err), CAIRN_E_NOT_FOUND);

    /* Create-only complete onto an existing key: EXISTS, upload aborted. */
    CHECK_EOK(cairn__s3_upload_create(s, bucket, "mp/a", &u, &err));
    CHECK_EOK(cairn__s3_upload_part(u, 1, "new", 3, &err));
    CHECK_E(cairn__s3_upload_complete(u, 1, CAIRN__S3_CREATE_ONLY, &err), CAIRN_E_EXISTS);
    CHECK(uploads_under(s, "mp/") == 0);
    CHECK_EOK(cairn__s3_get(s, bucket, "mp/a", 0, n, back, &err));
    CHECK(memcmp(back, data, n) == 0);
    /* Complete with a part missing: refused, upload aborted. */
    CHECK_EOK(cairn__s3_upload_create(s, bucket, "mp/c", &u, &err));
    CHECK_EOK(cairn__s3_upload_part(u, 2, data, 10, &err));
    CHECK_E(cairn__s3_upload_complete(u, 2, 0, &err), CAIRN_E_STATE);
    CHECK(uploads_under(s, "mp/") == 0);

    /* Orphans of a "killed" writer: gc aborts those old enough only.
     * (moto dates every upload 2010-11-10, so "old enough" is a century.) */
    cairn__s3_upload *o1 = NULL, *o2 = NULL;
    CHECK_EOK(cairn__s3_upload_create(s, bucket, "mp/o1", &o1, &err));
    CHECK_EOK(cairn__s3_upload_create(s, bucket, "mp/o2", &o2, &err));
    unsigned aborted = 99;
    CHECK_EOK(cairn__s3_uploads_gc(s, bucket, "mp/", 100ull * 365 * 86400, &aborted, &err));
    CHECK(aborted == 0 && uploads_under(s, "mp/") == 2);
    CHECK_EOK(cairn__s3_uploads_gc(s, bucket, "mp/", 0, &aborted, &err));
    CHECK(aborted == 2 && uploads_under(s, "mp/") == 0);
    /* Their handles are stale now; aborting them again is harmless. */
    CHECK_EOK(cairn__s3_upload_abort(o1, &err));
    CHECK_EOK(cairn__s3_upload_abort(o2, &err));
    free(data);
    free(back);
    cairn__s3_close(s);
}

typedef struct racer {
    cairn__s3 *s;
    int multipart;
    const char *key;
    char payload[16];
    cairn_status st;
    pthread_barrier_t *go;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    cairn_error err;
    pthread_barrier_wait(r->go);
    if (!r->multipart) {
        r->st = cairn__s3_put(r->s, bucket, r->key, r->payload, sizeof r->payload,
                              CAIRN__S3_CREATE_ONLY, &err);
        return NULL;
    }
    cairn__s3_upload *u = NULL;
    r->st = cairn__s3_upload_create(r->s, bucket, r->key, &u, &err);
    if (r->st == CAIRN_OK)
        r->st = cairn__s3_upload_part(u, 1, r->payload, sizeof r->payload, &err);
    if (r->st == CAIRN_OK)
        r->st = cairn__s3_upload_complete(u, 1, CAIRN__S3_CREATE_ONLY, &err);
    else
        cairn__s3_upload_abort(u, NULL);
    return NULL;
}

/* Two writers, one key, create-only: exactly one wins, the other gets
 * CAIRN_E_EXISTS; the object is the winner's. */
static void test_race(void)
{
    cairn__s3 *s = open_s3(0, 5);
    for (int round = 0; round < 6; round++) {
        char key[32];
        snprintf(key, sizeof key, "race/%d", round);
        pthread_barrier_t go;
        racer r[2];
        for (int i = 0; i < 2; i++) {
            memset(&r[i], 0, sizeof r[i]);
            r[i].s = s;
            r[i].multipart = round % 2;
            r[i].key = key;
            r[i].go = &go;
            memset(r[i].payload, 'A' + i, sizeof r[i].payload);
        }
        run_two(race, &r[0], &r[1], &go);
        int wins = (r[0].st == CAIRN_OK) + (r[1].st == CAIRN_OK);
        int lost = (r[0].st == CAIRN_E_EXISTS) + (r[1].st == CAIRN_E_EXISTS);
        CHECK(wins == 1 && lost == 1);
        char back[16];
        cairn_error err;
        CHECK_EOK(cairn__s3_get(s, bucket, key, 0, sizeof back, back, &err));
        int winner = r[0].st == CAIRN_OK ? 0 : 1;
        CHECK(memcmp(back, r[winner].payload, sizeof back) == 0);
    }
    CHECK(uploads_under(s, "race/") == 0);
    cairn__s3_close(s);
}

int main(int argc, char **argv)
{
    if (!s3_test_setup(argv[0]))
        return 77;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_url_and_xml();
    test_config(tu_tmpdir("test_s3"));
    test_round_trip();
    test_errors();
    test_session_token();
    test_multipart();
    if (server_has("conditional"))
        test_race();
    test_faults();
    curl_global_cleanup();
    TEST_MAIN_END();
}
