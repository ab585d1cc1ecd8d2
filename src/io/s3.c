/*
 * s3.c -- S3 requests over libcurl (s3.h; the contract is docs/STORAGE.md).
 *
 * libcurl does HTTP, TLS and the SigV4 signature (CURLOPT_AWS_SIGV4); this
 * file builds URLs and headers, follows curl 7.88's three rules (explicit
 * x-amz-content-sha256, "uploads=", sorted queries), retries, and reads the
 * few XML answers through s3_xml.h.
 *
 * curl_global_init is process-wide and, before curl 7.84, not thread-safe.
 * It is called once through pthread_once the first time a handle is opened,
 * and curl_global_cleanup is never called: a library cannot know whether its
 * host (or another library in it) still uses curl, and the process exit
 * releases what init took. That is the one process-wide effect of this file;
 * every setting lives in the handle.
 */
#include "io/s3.h"
#include "common/buf.h"
#include "io/s3_xml.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 16
#define ERROR_BODY_MAX 4096
#define LIST_BODY_MAX ((size_t)16 << 20)
#define TOKEN_HEX 32

struct cairn__s3 {
    cairn__s3_config cfg;
    char *scheme;   /* "http" or "https" */
    char *hostport; /* "127.0.0.1:9000" */
    char sigv4[128];
    struct curl_slist *connect_to; /* the test hook's CONNECT_TO list, or NULL */
    int https;
    pthread_mutex_t mu;
    CURL *idle[POOL_MAX];
    unsigned n_idle;
    atomic_uint_fast64_t requests;
};

struct cairn__s3_upload {
    cairn__s3 *s;
    char *bucket, *key, *id;
    char token[TOKEN_HEX + 1];
    pthread_mutex_t mu;
    char **etags; /* etags[i] of part i + 1 */
    unsigned cap;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_ok;
static void global_init(void)
{
    global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK && sodium_init() >= 0;
}

/* ------------------------------------------------------------ one request */

typedef struct req {
    const char *op;     /* "GET", "PUT", ... for messages */
    const char *method; /* HTTP method */
    const char *bucket, *key; /* key "" for bucket-level requests */
    const char *query;  /* sorted and encoded, without '?', or NULL */
    const char *headers[6];
    const void *body; /* request body (PUT / POST): body[0..body_len), */
    size_t body_len;
    int has_body;
    int body_fd;         /* then, when body_fd_len > 0, bytes [0, body_fd_len) of this file */
    uint64_t body_fd_len;
    int head; /* HEAD: no response body */
    /* Response body destinations (success statuses only). */
    char *dst; /* exact-range target */
    size_t dst_cap;
    cairn__buf *out; /* XML answers */
    size_t out_max;
    /* Response state. */
    long status;
    size_t dst_len, body_read;
    int overflow;
    char errbody[ERROR_BODY_MAX];
    size_t errlen;
    uint64_t range_start, range_end, range_total; /* Content-Range */
    int has_range, has_length;
    uint64_t content_length;
    char etag[130];
    char writer[TOKEN_HEX + 1];
    int64_t date; /* the server's Date header (Unix seconds), -1 if none */
    int retried; /* more than one attempt was made */
} req;

static int64_t utc_seconds(int y, int mo, int d, int h, int mi, int sec)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

/* An HTTP date ("Fri, 04 Dec 2026 18:16:42 GMT"), read without the locale. */
static int64_t http_date(const char *v)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char mon[4];
    int d, y, h, mi, sec;
    const char *comma = strchr(v, ',');
    if (!comma || sscanf(comma + 1, " %2d %3s %4d %2d:%2d:%2d", &d, mon, &y, &h, &mi, &sec) != 6)
        return -1;
    const char *m = strstr(months, mon);
    if (!m || strlen(mon) != 3 || (m - months) % 3)
        return -1;
    return utc_seconds(y, (int)(m - months) / 3 + 1, d, h, mi, sec);
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    req *r = ud;
    size_t len = size * n;
    char h[512];
    size_t hl = len < sizeof h - 1 ? len : sizeof h - 1;
    memcpy(h, line, hl);
    h[hl] = '\0';
    while (hl && (h[hl - 1] == '\r' || h[hl - 1] == '\n'))
        h[--hl] = '\0';
    if (strncmp(h, "HTTP/", 5) == 0) {
        const char *sp = strchr(h, ' ');
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->has_range = r->has_length = 0;
        r->etag[0] = r->writer[0] = '\0';
        r->date = -1;
        return len;
    }
    char *colon = strchr(h, ':');
    if (!colon)
        return len;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ')
        v++;
    unsigned long long a, b, t;
    if (strcasecmp(h, "content-range") == 0) {
        if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3 && a <= b && b < t) {
            r->range_start = a;
            r->range_end = b;
            r->range_total = t;
            r->has_range = 1;
        } else if (sscanf(v, "bytes */%llu", &t) == 1) {
            r->range_total = t;
            r->has_range = 2;
        }
    } else if (strcasecmp(h, "content-length") == 0) {
        char *end;
        r->content_length = strtoull(v, &end, 10);
        r->has_length = *v >= '0' && *v <= '9' && *end == '\0';
    } else if (strcasecmp(h, "etag") == 0 && strlen(v) < sizeof r->etag) {
        strcpy(r->etag, v);
    } else if (strcasecmp(h, "date") == 0) {
        r->date = http_date(v);
    } else if (strcasecmp(h, "x-amz-meta-cairn-writer") == 0 && strlen(v) == TOKEN_HEX) {
        strcpy(r->writer, v);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    req *r = ud;
    size_t len = size * n;
    r->body_read += len;
    if (r->status < 200 || r->status >= 300) {
        size_t room = sizeof r->errbody - 1 - r->errlen;
        size_t k = len < room ? len : room;
        memcpy(r->errbody + r->errlen, p, k);
        r->errlen += k;
        r->errbody[r->errlen] = '\0';
        return len;
    }
    if (r->dst) {
        if (len > r->dst_cap - r->dst_len) {
            r->overflow = 1;
            return 0; /* more bytes than asked for: stop (CURLE_WRITE_ERROR) */
        }
        memcpy(r->dst + r->dst_len, p, len);
        r->dst_len += len;
        return len;
    }
    if (r->out) {
        if (len > r->out_max - r->out->len) {
            r->overflow = 1;
            return 0;
        }
        cairn__buf_put(r->out, p, len);
        return r->out->oom ? 0 : len;
    }
    return len;
}

/* A request body: memory, then (fd_len > 0) the start of a file, read
 * with pread so that a retry can rewind to any offset. */
typedef struct upload_src {
    const char *p;
    size_t len;
    int fd;
    uint64_t fd_len, off;
} upload_src;

static size_t on_read(char *dst, size_t size, size_t n, void *ud)
{
    upload_src *u = ud;
    uint64_t total = u->len + u->fd_len, left = total - u->off;
    size_t k = size * n;
    if (k > left)
        k = (size_t)left;
    if (u->off < u->len) {
        if (k > u->len - u->off)
            k = (size_t)(u->len - u->off);
        memcpy(dst, u->p + u->off, k);
    } else if (k > 0) {
        ssize_t got;
        do
            got = pread(u->fd, dst, k, (off_t)(u->off - u->len));
        while (got < 0 && errno == EINTR);
        if (got <= 0)
            return CURL_READFUNC_ABORT; /* the spool file failed: the request fails */
        k = (size_t)got;
    }
    u->off += k;
    return k;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    upload_src *u = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > u->len + u->fd_len)
        return CURL_SEEKFUNC_FAIL;
    u->off = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Percent-encodes s (every byte but A-Z a-z 0-9 - . _ ~, and '/' when
 * keep_slash) with uppercase hex, as SigV4's canonical form wants. */
static void put_encoded(cairn__buf *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            cairn__buf_put(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            cairn__buf_put(b, e, 3);
        }
    }
}

static void put_str(cairn__buf *b, const char *s) { cairn__buf_put(b, s, strlen(s)); }

static char *request_url(const cairn__s3 *s, const req *r)
{
    cairn__buf b = {0};
    put_str(&b, s->scheme);
    put_str(&b, "://");
    if (!s->cfg.path_style && r->bucket) {
        put_str(&b, r->bucket);
        put_str(&b, ".");
    }
    put_str(&b, s->hostport);
    put_str(&b, "/");
    if (s->cfg.path_style && r->bucket) {
        put_str(&b, r->bucket);
        if (*r->key)
            put_str(&b, "/");
    }
    put_encoded(&b, r->key, 1);
    if (r->query) {
        put_str(&b, "?");
        put_str(&b, r->query);
    }
    cairn__buf_put(&b, "", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* The SHA-256 of a request's body (memory, then the file part) in hex;
 * -1 when the file cannot be read. */
static int body_sha256_hex(const req *r, char out[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    if (r->has_body && r->body_len)
        crypto_hash_sha256_update(&h, r->body, r->body_len);
    if (r->has_body && r->body_fd_len) {
        enum { CHUNK = 1 << 20 };
        unsigned char *buf = malloc(CHUNK);
        if (!buf)
            return -1;
        for (uint64_t at = 0; at < r->body_fd_len;) {
            size_t want = r->body_fd_len - at < CHUNK ? (size_t)(r->body_fd_len - at) : CHUNK;
            ssize_t got = pread(r->body_fd, buf, want, (off_t)at);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                free(buf);
                return -1;
            }
            crypto_hash_sha256_update(&h, buf, (size_t)got);
            at += (uint64_t)got;
        }
        free(buf);
    }
    crypto_hash_sha256_final(&h, d);
    sodium_bin2hex(out, 65, d, sizeof d);
    return 0;
}

static CURL *take(cairn__s3 *s)
{
    CURL *e = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->n_idle)
        e = s->idle[--s->n_idle];
    pthread_mutex_unlock(&s->mu);
    return e ? e : curl_easy_init();
}

static void give(cairn__s3 *s, CURL *e)
{
    curl_easy_reset(e); /* keeps its live connections for the next request */
    pthread_mutex_lock(&s->mu);
    if (s->n_idle < POOL_MAX) {
        s->idle[s->n_idle++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (e)
        curl_easy_cleanup(e);
}

static int retryable(CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_OK:
        return status == 500 || status == 502 || status == 503 || status == 504 || status == 429 ||
               status == 408;
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static void backoff(const cairn__s3 *s, int attempt)
{
    uint64_t cap = s->cfg.base_delay_ms;
    for (int i = 0; i < attempt && cap < s->cfg.max_delay_ms; i++)
        cap *= 2;
    if (cap > s->cfg.max_delay_ms)
        cap = s->cfg.max_delay_ms;
    if (cap == 0)
        return;
    uint32_t ms = randombytes_uniform((uint32_t)cap);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One attempt. Returns the curl code; the response lands in r. */
static CURLcode attempt_once(cairn__s3 *s, req *r, const char *url, struct curl_slist *hdrs,
                             char *curl_msg)
{
    CURL *e = take(s);
    if (!e)
        return CURLE_OUT_OF_MEMORY;
    upload_src src = {r->body, r->body_len, r->body_fd, r->body_fd_len, 0};
    r->status = 0;
    r->dst_len = r->body_read = r->errlen = 0;
    r->overflow = r->has_range = r->has_length = 0;
    r->etag[0] = r->writer[0] = r->errbody[0] = '\0';
    r->date = -1;
    if (r->out)
        r->out->len = 0;
    curl_msg[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->cfg.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)s->cfg.stall_seconds);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->cfg.ca_bundle)
        curl_easy_setopt(e, CURLOPT_CAINFO, s->cfg.ca_bundle);
    if (s->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, s->connect_to);
    if (s->cfg.access_key) {
        curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s->sigv4);
        curl_easy_setopt(e, CURLOPT_USERNAME, s->cfg.access_key);
        curl_easy_setopt(e, CURLOPT_PASSWORD, s->cfg.secret_key);
    }
    if (r->head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, &src);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, &src);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(r->body_len + r->body_fd_len));
        /* curl asks "Expect: 100-continue" for bodies over 1 MiB and waits
         * up to a second for the answer; a server that never sends one
         * would cost that per part. 100 ms bounds it. */
        curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 100L);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    atomic_fetch_add(&s->requests, 1);
    CURLcode rc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (code)
        r->status = code;
    give(s, e);
    return rc;
}

/* The printable "s3://bucket/key" of a request. */
static const char *where(const req *r, char *buf, size_t size)
{
    char shown[160];
    const char *k = cairn__printable(r->key, strlen(r->key), shown, sizeof shown);
    snprintf(buf, size, "s3://%s/%s", r->bucket ? r->bucket : "", k);
    return buf;
}

/* S3's error code from an error body ("NoSuchKey"), printable, or "". */
static void error_code(const req *r, char *out, size_t size)
{
    cairn__xml_span body = {r->errbody, r->errlen};
    char *c = cairn__xml_get(body, "Code");
    out[0] = '\0';
    if (c) {
        cairn__printable(c, strlen(c), out, size);
        free(c);
    }
}

/* Is a refusal about who is asking (CAIRN_E_AUTH)? Every 401 and 403 is
 * (a HEAD's answer has no body, so often no code), except a 403 about the
 * object's storage class; a 400 is when its code is about the credentials. */
static int auth_refusal(long status, const char *code)
{
    static const char *const codes400[] = {"ExpiredToken", "InvalidToken",
                                           "TokenRefreshRequired", "AuthorizationHeaderMalformed",
                                           "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                           "AccessDenied"};
    if (status == 401)
        return 1;
    if (status == 403)
        return strcmp(code, "InvalidObjectState") != 0;
    for (size_t i = 0; status == 400 && i < sizeof codes400 / sizeof codes400[0]; i++)
        if (strcmp(code, codes400[i]) == 0)
            return 1;
    return 0;
}

/* The CAIRN_E_AUTH message: the object, the operation, the HTTP status and
 * S3's code, what the code means, and which identity was refused (the
 * access key ID and where it came from; IDs are not secret, and AWS's own
 * answers carry them). Never the secret, the token or the signature. */
static cairn_status auth_fail(const cairn__s3 *s, const req *r, const char *code, int n,
                              cairn_error *err)
{
    char w[256], id[64], who[300];
    const char *why =
        strcmp(code, "InvalidAccessKeyId") == 0 ? "the server does not know the access key ID"
        : strcmp(code, "SignatureDoesNotMatch") == 0
            ? "the signature does not match: a wrong secret for the key (or a wrong region)"
        : strcmp(code, "ExpiredToken") == 0 ? "the session token has expired"
        : strcmp(code, "InvalidToken") == 0 || strcmp(code, "TokenRefreshRequired") == 0
            ? "the session token is not valid"
        : strcmp(code, "RequestTimeTooSkewed") == 0
            ? "this machine's clock differs too much from the server's"
        : strcmp(code, "AccessDenied") == 0 ? "the identity has no permission for this request"
                                            : "access denied (check the credentials, region and "
                                              "permissions)";
    if (s->cfg.access_key)
        snprintf(who, sizeof who, "access key ID %s from %s%s",
                 cairn__printable(s->cfg.access_key, strlen(s->cfg.access_key), id, sizeof id),
                 s->cfg.key_source[0] ? s->cfg.key_source : "the caller",
                 s->cfg.session_token ? ", with a session token" : "");
    else
        snprintf(who, sizeof who, "no credentials found: the request was anonymous");
    return cairn__fail(err, CAIRN_E_AUTH, "%s: %s: HTTP %ld%s%s%s after %d attempt%s: %s (%s)",
                       where(r, w, sizeof w), r->op, r->status, code[0] ? " (" : "", code,
                       code[0] ? ")" : "", n, n > 1 ? "s" : "", why, who);
}

/* Runs a request with retries. On success (a 2xx) returns CAIRN_OK; else a
 * status and message naming the object, the operation, the last HTTP
 * status and S3's error code. `ok_status` (e.g. 404 for a DELETE) may be
 * accepted by the caller: it is returned as CAIRN_OK with r->status set. */
static cairn_status perform(cairn__s3 *s, req *r, int retry, long ok_status, cairn_error *err)
{
    char w[256], code[64], curl_msg[CURL_ERROR_SIZE];
    char sha_hdr[100];
    struct curl_slist *hdrs = NULL, *t;
    char *url = request_url(s, r), *token_hdr = NULL;
    if (!url)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", where(r, w, sizeof w));
    /* Rule 1: x-amz-content-sha256 always (curl 7.88 does not send it). */
    if (r->has_body && (r->body_len || r->body_fd_len) && (s->https || s->cfg.unsigned_payload)) {
        snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    } else {
        char hex[65];
        if (body_sha256_hex(r, hex) != 0) {
            free(url);
            return cairn__fail(err, CAIRN_E_IO, "%s: cannot read the upload's spool file to "
                               "hash it: %s", where(r, w, sizeof w), strerror(errno));
        }
        snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: %s", hex);
    }
    int oom = !(t = curl_slist_append(hdrs, sha_hdr));
    hdrs = t ? t : hdrs;
    if (!oom && s->cfg.fixed_date[0]) {
        char date_hdr[48];
        snprintf(date_hdr, sizeof date_hdr, "X-Amz-Date: %s", s->cfg.fixed_date);
        if (!(t = curl_slist_append(hdrs, date_hdr)))
            oom = 1;
        hdrs = t ? t : hdrs;
    }
    if (!oom && s->cfg.session_token) {
        size_t n = strlen(s->cfg.session_token) + 32;
        token_hdr = malloc(n);
        if (token_hdr)
            snprintf(token_hdr, n, "x-amz-security-token: %s", s->cfg.session_token);
        if (!token_hdr || !(t = curl_slist_append(hdrs, token_hdr)))
            oom = 1;
        hdrs = t ? t : hdrs;
    }
    for (int i = 0; !oom && i < 6 && r->headers[i]; i++) {
        if (!(t = curl_slist_append(hdrs, r->headers[i])))
            oom = 1;
        hdrs = t ? t : hdrs;
    }
    if (oom) {
        curl_slist_free_all(hdrs);
        free(url);
        free(token_hdr);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", where(r, w, sizeof w));
    }
    if (!global_ok) {
        curl_slist_free_all(hdrs);
        free(url);
        free(token_hdr);
        return cairn__fail(err, CAIRN_E_IO, "%s: libcurl could not be initialized",
                           where(r, w, sizeof w));
    }
    int attempts = retry ? s->cfg.max_attempts : 1, n = 0;
    CURLcode rc = CURLE_OK;
    for (;;) {
        rc = attempt_once(s, r, url, hdrs, curl_msg);
        n++;
        if (rc == CURLE_OK && r->status >= 200 && r->status < 300)
            break;
        if (rc == CURLE_OK && r->status == ok_status)
            break;
        if (r->overflow || n >= attempts || !retryable(rc, r->status))
            break;
        backoff(s, n - 1);
    }
    curl_slist_free_all(hdrs);
    free(url);
    free(token_hdr);
    r->retried = n > 1;
    if (rc == CURLE_OK && ((r->status >= 200 && r->status < 300) || r->status == ok_status))
        return CAIRN_OK;

    where(r, w, sizeof w);
    if (r->overflow && r->out && r->out->oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: %s: out of memory", w, r->op);
    if (r->overflow)
        return cairn__fail(err, CAIRN_E_CORRUPT,
                           "%s: %s: the server sent more bytes than asked for (HTTP %ld)", w, r->op,
                           r->status);
    if (rc != CURLE_OK) {
        if (rc == CURLE_PARTIAL_FILE)
            return cairn__fail(err, CAIRN_E_IO,
                               "%s: %s: body truncated (%zu bytes received) after %d attempt%s, "
                               "last HTTP status %ld",
                               w, r->op, r->body_read, n, n > 1 ? "s" : "", r->status);
        return cairn__fail(err, CAIRN_E_IO, "%s: %s: %s (%s) after %d attempt%s, last HTTP status %ld",
                           w, r->op, curl_easy_strerror(rc), curl_msg, n, n > 1 ? "s" : "",
                           r->status);
    }
    error_code(r, code, sizeof code);
    cairn_status st = CAIRN_E_IO;
    const char *why = "";
    if (r->status == 404) {
        st = CAIRN_E_NOT_FOUND;
        why = strcmp(code, "NoSuchBucket") == 0 ? ": no such bucket"
              : strcmp(code, "NoSuchUpload") == 0 ? ": no such upload"
                                                   : ": no such key";
    } else if (r->status == 412) {
        st = CAIRN_E_EXISTS;
        why = ": the key already exists (create-only write)";
    } else if (auth_refusal(r->status, code)) {
        return auth_fail(s, r, code, n, err);
    } else if (r->status == 416) {
        st = CAIRN_E_CORRUPT;
        why = ": range outside the object";
    } else if (r->status == 501) {
        st = CAIRN_E_UNSUPPORTED;
        why = ": the server does not implement this request";
    }
    return cairn__fail(err, st, "%s: %s: HTTP %ld%s%s%s after %d attempt%s%s", w, r->op,
                       r->status, code[0] ? " (" : "", code, code[0] ? ")" : "", n,
                       n > 1 ? "s" : "", why);
}

/* ------------------------------------------------------------ the handle */

cairn_status cairn__s3_open(cairn__s3 **out, const cairn__s3_config *cfg, cairn_error *err)
{
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (!global_ok)
        return cairn__fail(err, CAIRN_E_IO, "s3: libcurl or libsodium could not be initialized");
    if (!cfg->endpoint || !cfg->region || !*cfg->region)
        return cairn__fail(err, CAIRN_E_ARG, "s3: no endpoint or region");
    if (!cfg->access_key != !cfg->secret_key)
        return cairn__fail(err, CAIRN_E_ARG, "s3: an access key needs its secret, and back");
    if (cfg->max_attempts < 1 || cfg->max_attempts > 20)
        return cairn__fail(err, CAIRN_E_ARG, "s3: max_attempts must be 1..20");
    int https = strncmp(cfg->endpoint, "https://", 8) == 0;
    if (!https && strncmp(cfg->endpoint, "http://", 7) != 0)
        return cairn__fail(err, CAIRN_E_ARG, "s3: the endpoint must start with http:// or https://");
    const char *host = cfg->endpoint + (https ? 8 : 7);
    size_t hl = strcspn(host, "/?#");
    if (hl == 0 || host[hl + strspn(host + hl, "/")] != '\0' || memchr(host, '@', hl))
        return cairn__fail(err, CAIRN_E_ARG,
                           "s3: the endpoint must be scheme://host[:port] (no path, no user)");
    cairn__s3 *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    s->cfg = *cfg;
    s->cfg.endpoint = strdup(cfg->endpoint);
    s->cfg.region = strdup(cfg->region);
    s->cfg.access_key = cfg->access_key ? strdup(cfg->access_key) : NULL;
    s->cfg.secret_key = cfg->secret_key ? strdup(cfg->secret_key) : NULL;
    s->cfg.session_token = cfg->session_token ? strdup(cfg->session_token) : NULL;
    s->cfg.ca_bundle = cfg->ca_bundle ? strdup(cfg->ca_bundle) : NULL;
    s->scheme = strdup(https ? "https" : "http");
    s->hostport = strndup(host, hl);
    s->https = https;
    pthread_mutex_init(&s->mu, NULL);
    const char *service = cfg->service[0] ? cfg->service : "s3";
    int n = snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:%s", cfg->region, service);
    if (cfg->connect_to[0] && !(s->connect_to = curl_slist_append(NULL, cfg->connect_to))) {
        cairn__s3_close(s);
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    }
    if (!s->cfg.endpoint || !s->cfg.region || (cfg->access_key && !s->cfg.access_key) ||
        (cfg->secret_key && !s->cfg.secret_key) || (cfg->session_token && !s->cfg.session_token) ||
        (cfg->ca_bundle && !s->cfg.ca_bundle) || !s->scheme || !s->hostport) {
        cairn__s3_close(s);
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    }
    if (n < 0 || (size_t)n >= sizeof s->sigv4 || strpbrk(cfg->region, ":/ ") ||
        strpbrk(service, ":/ ")) {
        cairn__s3_close(s);
        return cairn__fail(err, CAIRN_E_ARG, "s3: bad region name");
    }
    *out = s;
    return CAIRN_OK;
}

void cairn__s3_close(cairn__s3 *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->n_idle; i++)
        curl_easy_cleanup(s->idle[i]);
    curl_slist_free_all(s->connect_to);
    pthread_mutex_destroy(&s->mu);
    cairn__s3_config_free(&s->cfg);
    free(s->scheme);
    free(s->hostport);
    free(s);
}

uint64_t cairn__s3_requests(const cairn__s3 *s) { return atomic_load(&s->requests); }

uint64_t cairn__s3_multipart_threshold(const cairn__s3 *s) { return s->cfg.multipart_threshold; }

/* ------------------------------------------------------------ objects */

static void req_init(req *r, const char *op, const char *method, const char *bucket,
                     const char *key)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->method = method;
    r->bucket = bucket;
    r->key = key;
}

cairn_status cairn__s3_head(cairn__s3 *s, const char *bucket, const char *key, uint64_t *size,
                            cairn_error *err)
{
    req r;
    req_init(&r, "HEAD", "HEAD", bucket, key);
    r.head = 1;
    CAIRN_TRY(perform(s, &r, 1, 0, err));
    if (!r.has_length) {
        char w[256];
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: HEAD: no Content-Length in the answer",
                           where(&r, w, sizeof w));
    }
    *size = r.content_length;
    return CAIRN_OK;
}

cairn_status cairn__s3_get(cairn__s3 *s, const char *bucket, const char *key, uint64_t off,
                           size_t len, void *dst, cairn_error *err)
{
    if (len == 0)
        return CAIRN_OK;
    uint64_t last;
    char range[80], w[256];
    if (cairn__add_overflow(off, (uint64_t)len - 1, &last))
        return cairn__fail(err, CAIRN_E_ARG, "s3: range overflows");
    snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)last);
    req r;
    req_init(&r, "GET", "GET", bucket, key);
    r.headers[0] = range;
    r.dst = dst;
    r.dst_cap = len;
    cairn_status st = perform(s, &r, 1, 0, err);
    if (st == CAIRN_E_CORRUPT && r.status == 416)
        return cairn__fail(err, CAIRN_E_CORRUPT,
                           "%s: bytes %llu..%llu lie past the end of the object (truncated?)",
                           where(&r, w, sizeof w), (unsigned long long)off,
                           (unsigned long long)last + 1);
    CAIRN_TRY(st);
    int range_ok = r.status == 206 ? r.has_range == 1 && r.range_start == off && r.range_end == last
                                   : off == 0 && r.dst_len == len;
    if (!range_ok || r.dst_len != len)
        return cairn__fail(err, CAIRN_E_CORRUPT,
                           "%s: GET bytes %llu..%llu: got %zu bytes (HTTP %ld); the object is "
                           "shorter than expected (truncated?)",
                           where(&r, w, sizeof w), (unsigned long long)off,
                           (unsigned long long)last + 1, r.dst_len, r.status);
    return CAIRN_OK;
}

/* The tail by two requests (HEAD, then an explicit range), for a server
 * whose answer to a suffix range was not one: s3rver 3.7 answers
 * "bytes=-N" with bytes 0..N, and an empty object with a 206 it cannot
 * describe. The bytes are checked as any ranged GET's are, so a server that
 * lies fails there with CAIRN_E_CORRUPT. */
static cairn_status tail_by_size(cairn__s3 *s, const char *bucket, const char *key, size_t len,
                                 void *dst, size_t *got, uint64_t *size, cairn_error *err)
{
    uint64_t total;
    cairn__clear(err);
    CAIRN_TRY(cairn__s3_head(s, bucket, key, &total, err));
    size_t n = total < len ? (size_t)total : len;
    CAIRN_TRY(cairn__s3_get(s, bucket, key, total - n, n, (char *)dst + len - n, err));
    *got = n;
    *size = total;
    return CAIRN_OK;
}

cairn_status cairn__s3_get_tail(cairn__s3 *s, const char *bucket, const char *key, size_t len,
                                void *dst, size_t *got, uint64_t *size, cairn_error *err)
{
    char range[64], w[256];
    *got = 0;
    *size = 0;
    if (len == 0)
        return cairn__s3_head(s, bucket, key, size, err);
    snprintf(range, sizeof range, "Range: bytes=-%zu", len);
    req r;
    req_init(&r, "GET (tail)", "GET", bucket, key);
    r.headers[0] = range;
    r.dst = dst;
    r.dst_cap = len;
    cairn_status st = perform(s, &r, 1, 416, err);
    if (st == CAIRN_E_CORRUPT && r.overflow && !(r.out && r.out->oom))
        return tail_by_size(s, bucket, key, len, dst, got, size, err);
    CAIRN_TRY(st);
    if (r.status == 416) {
        /* A suffix range of an empty object: some servers answer 416. */
        if (r.has_range != 2 || r.range_total != 0)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: GET (tail): HTTP 416",
                               where(&r, w, sizeof w));
        return CAIRN_OK;
    }
    uint64_t total = r.status == 206 && r.has_range == 1 ? r.range_total : r.dst_len;
    int ok = r.status == 206 ? r.has_range == 1 && r.range_end + 1 == total &&
                                   r.range_end - r.range_start + 1 == r.dst_len
                             : !r.has_length || r.content_length == r.dst_len;
    if (!ok || r.dst_len > len || (total > len ? r.dst_len != len : r.dst_len != total))
        return tail_by_size(s, bucket, key, len, dst, got, size, err);
    if (r.dst_len < len)
        memmove((char *)dst + len - r.dst_len, dst, r.dst_len);
    *got = r.dst_len;
    *size = total;
    return CAIRN_OK;
}

static void new_token(char out[TOKEN_HEX + 1])
{
    unsigned char b[TOKEN_HEX / 2];
    randombytes_buf(b, sizeof b);
    sodium_bin2hex(out, TOKEN_HEX + 1, b, sizeof b);
}

/* After a retried create-only write was refused (412, or NoSuchUpload for
 * a complete): did our own first attempt win? It did when the object's
 * writer token is ours. */
static int we_won(cairn__s3 *s, const char *bucket, const char *key, const char *token)
{
    req r;
    req_init(&r, "HEAD", "HEAD", bucket, key);
    r.head = 1;
    return perform(s, &r, 1, 0, NULL) == CAIRN_OK && strcmp(r.writer, token) == 0;
}

cairn_status cairn__s3_put_file(cairn__s3 *s, const char *bucket, const char *key,
                                const void *head, size_t head_len, int fd, uint64_t fd_len,
                                unsigned flags, cairn_error *err)
{
    char token[TOKEN_HEX + 1], meta[80];
    new_token(token);
    snprintf(meta, sizeof meta, "x-amz-meta-cairn-writer: %s", token);
    req r;
    req_init(&r, "PUT", "PUT", bucket, key);
    r.body = head;
    r.body_len = head_len;
    r.body_fd = fd;
    r.body_fd_len = fd < 0 ? 0 : fd_len;
    r.has_body = 1;
    r.headers[0] = meta;
    if (flags & CAIRN__S3_CREATE_ONLY)
        r.headers[1] = "If-None-Match: *";
    cairn_status st = perform(s, &r, 1, 0, err);
    if (st == CAIRN_E_EXISTS && r.retried && we_won(s, bucket, key, token)) {
        cairn__clear(err);
        return CAIRN_OK;
    }
    return st;
}

cairn_status cairn__s3_put(cairn__s3 *s, const char *bucket, const char *key, const void *data,
                           size_t len, unsigned flags, cairn_error *err)
{
    return cairn__s3_put_file(s, bucket, key, data, len, -1, 0, flags, err);
}

cairn_status cairn__s3_delete(cairn__s3 *s, const char *bucket, const char *key, cairn_error *err)
{
    req r;
    req_init(&r, "DELETE", "DELETE", bucket, key);
    return perform(s, &r, 1, 404, err);
}

/* Appends "&name=value" (value encoded) to a query being built. */
static void query_param(cairn__buf *q, const char *name, const char *value)
{
    if (q->len)
        put_str(q, "&");
    put_str(q, name);
    put_str(q, "=");
    put_encoded(q, value, 0);
}

static cairn_status malformed(const req *r, const char *what, cairn_error *err)
{
    char w[256];
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: %s: malformed XML answer (%s)",
                       where(r, w, sizeof w), r->op, what);
}

/* Runs a listing request (GET on the bucket with query q) into body. */
static cairn_status list_page(cairn__s3 *s, const char *op, const char *bucket, cairn__buf *q,
                              cairn__buf *body, req *r, cairn_error *err)
{
    cairn__buf_put(q, "", 1);
    if (q->oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "s3://%s: %s: out of memory", bucket, op);
    req_init(r, op, "GET", bucket, "");
    r->query = q->p;
    r->out = body;
    r->out_max = LIST_BODY_MAX;
    cairn_status st = perform(s, r, 1, 0, err);
    q->len = 0;
    return st;
}

/* After a listing page's entries: malformed if an entry was left open;
 * else *more says whether another page follows (never after a stop). */
static cairn_status page_more(const req *r, cairn__xml_span doc, int found, int stop,
                              const char *unclosed, int *more, cairn_error *err)
{
    *more = 0;
    if (stop)
        return CAIRN_OK;
    if (found < 0)
        return malformed(r, unclosed, err);
    char *trunc = cairn__xml_get(doc, "IsTruncated");
    *more = trunc && strcmp(trunc, "true") == 0;
    free(trunc);
    return CAIRN_OK;
}

cairn_status cairn__s3_list(cairn__s3 *s, const char *bucket, const char *prefix,
                            cairn__s3_list_fn fn, void *ctx, cairn_error *err)
{
    cairn__buf q = {0}, body = {0};
    char *cont = NULL;
    cairn_status st = CAIRN_OK;
    int stop = 0;
    while (!stop) {
        req r;
        /* Sorted: continuation-token < list-type < prefix. */
        if (cont)
            query_param(&q, "continuation-token", cont);
        query_param(&q, "list-type", "2");
        query_param(&q, "prefix", prefix);
        free(cont);
        cont = NULL;
        if ((st = list_page(s, "ListObjectsV2", bucket, &q, &body, &r, err)) != CAIRN_OK)
            break;
        cairn__xml_span doc = {body.p, body.len}, c;
        size_t pos = 0;
        int found;
        while (!stop && (found = cairn__xml_next(doc, &pos, "Contents", &c)) == 1) {
            char *key = cairn__xml_get(c, "Key");
            size_t p2 = 0;
            cairn__xml_span sz;
            uint64_t size;
            if (!key || cairn__xml_next(c, &p2, "Size", &sz) != 1 || cairn__xml_u64(sz, &size)) {
                free(key);
                st = malformed(&r, "Contents without a valid Key and Size", err);
                goto done;
            }
            stop = fn(ctx, key, size) != 0;
            free(key);
        }
        int more;
        if ((st = page_more(&r, doc, found, stop, "unclosed Contents", &more, err)) != CAIRN_OK ||
            !more)
            break;
        cont = cairn__xml_get(doc, "NextContinuationToken");
        if (!cont || !*cont) {
            st = malformed(&r, "IsTruncated without NextContinuationToken", err);
            break;
        }
    }
done:
    free(cont);
    free(q.p);
    free(body.p);
    return st;
}

/* ------------------------------------------------------------ multipart */

static void upload_free(cairn__s3_upload *u)
{
    if (!u)
        return;
    for (unsigned i = 0; i < u->cap; i++)
        free(u->etags[i]);
    free(u->etags);
    free(u->bucket);
    free(u->key);
    free(u->id);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

cairn_status cairn__s3_upload_create(cairn__s3 *s, const char *bucket, const char *key,
                                     cairn__s3_upload **out, cairn_error *err)
{
    *out = NULL;
    cairn__s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    pthread_mutex_init(&u->mu, NULL);
    u->s = s;
    u->bucket = strdup(bucket);
    u->key = strdup(key);
    new_token(u->token);
    char meta[80];
    snprintf(meta, sizeof meta, "x-amz-meta-cairn-writer: %s", u->token);
    cairn__buf body = {0};
    req r;
    req_init(&r, "CreateMultipartUpload", "POST", bucket, key);
    r.query = "uploads="; /* rule 2: a valueless parameter is written "uploads=" */
    r.headers[0] = meta;
    r.headers[1] = "Content-Type: application/octet-stream";
    r.has_body = 1;
    r.out = &body;
    r.out_max = 64 * 1024;
    cairn_status st = !u->bucket || !u->key ? cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory")
                                            : perform(s, &r, 1, 0, err);
    if (st == CAIRN_OK) {
        u->id = cairn__xml_get((cairn__xml_span){body.p, body.len}, "UploadId");
        if (!u->id || !*u->id)
            st = malformed(&r, "no UploadId", err);
    }
    free(body.p);
    if (st != CAIRN_OK) {
        upload_free(u);
        return st;
    }
    *out = u;
    return CAIRN_OK;
}

/* "partNumber=N&uploadId=ID" or "uploadId=ID" (sorted), malloc'ed. */
static char *upload_query(const cairn__s3_upload *u, unsigned part)
{
    cairn__buf q = {0};
    if (part) {
        char n[16];
        snprintf(n, sizeof n, "%u", part);
        query_param(&q, "partNumber", n);
    }
    query_param(&q, "uploadId", u->id);
    cairn__buf_put(&q, "", 1);
    if (q.oom) {
        free(q.p);
        return NULL;
    }
    return q.p;
}

cairn_status cairn__s3_upload_part(cairn__s3_upload *u, unsigned part_number, const void *data,
                                   size_t len, cairn_error *err)
{
    if (part_number < 1 || part_number > CAIRN__S3_MAX_PARTS)
        return cairn__fail(err, CAIRN_E_LIMIT, "s3://%s/%s: part number %u outside 1..%u",
                           u->bucket, u->key, part_number, CAIRN__S3_MAX_PARTS);
    char *q = upload_query(u, part_number);
    if (!q)
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    req r;
    req_init(&r, "UploadPart", "PUT", u->bucket, u->key);
    r.query = q;
    r.body = data;
    r.body_len = len;
    r.has_body = 1;
    cairn_status st = perform(u->s, &r, 1, 0, err);
    free(q);
    CAIRN_TRY(st);
    char w[256];
    if (!r.etag[0])
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: UploadPart %u: no ETag in the answer",
                           where(&r, w, sizeof w), part_number);
    char *etag = strdup(r.etag);
    if (!etag)
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    pthread_mutex_lock(&u->mu);
    if (part_number > u->cap) {
        unsigned cap = u->cap ? u->cap : 16;
        while (cap < part_number)
            cap *= 2;
        if (cap > CAIRN__S3_MAX_PARTS)
            cap = CAIRN__S3_MAX_PARTS;
        char **grown = realloc(u->etags, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&u->mu);
            free(etag);
            return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
        }
        memset(grown + u->cap, 0, (cap - u->cap) * sizeof *grown);
        u->etags = grown;
        u->cap = cap;
    }
    free(u->etags[part_number - 1]);
    u->etags[part_number - 1] = etag;
    pthread_mutex_unlock(&u->mu);
    return CAIRN_OK;
}

static void buf_put_cb(void *ctx, const char *p, size_t n) { cairn__buf_put(ctx, p, n); }

cairn_status cairn__s3_upload_abort(cairn__s3_upload *u, cairn_error *err)
{
    if (!u)
        return CAIRN_OK;
    cairn_status st = cairn__s3_upload_abort_id(u->s, u->bucket, u->key, u->id, err);
    upload_free(u);
    return st;
}

cairn_status cairn__s3_upload_complete(cairn__s3_upload *u, unsigned n, unsigned flags,
                                       cairn_error *err)
{
    if (n < 1 || n > u->cap) {
        cairn__fail(err, CAIRN_E_STATE, "s3://%s/%s: complete with %u parts, %u uploaded",
                    u->bucket, u->key, n, u->cap);
        cairn__s3_upload_abort(u, NULL);
        return CAIRN_E_STATE;
    }
    cairn__buf x = {0}, resp = {0};
    put_str(&x, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < n; i++) {
        if (!u->etags[i]) {
            free(x.p);
            cairn__fail(err, CAIRN_E_STATE, "s3://%s/%s: part %u was never uploaded", u->bucket,
                        u->key, i + 1);
            cairn__s3_upload_abort(u, NULL);
            return CAIRN_E_STATE;
        }
        char num[48];
        snprintf(num, sizeof num, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
        put_str(&x, num);
        cairn__xml_escape(u->etags[i], buf_put_cb, &x);
        put_str(&x, "</ETag></Part>");
    }
    put_str(&x, "</CompleteMultipartUpload>");
    char *q = upload_query(u, 0);
    cairn_status st;
    req r;
    req_init(&r, "CompleteMultipartUpload", "POST", u->bucket, u->key);
    if (x.oom || !q) {
        st = cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    } else {
        r.query = q;
        r.body = x.p;
        r.body_len = x.len;
        r.has_body = 1;
        r.headers[0] = "Content-Type: application/xml";
        if (flags & CAIRN__S3_CREATE_ONLY)
            r.headers[1] = "If-None-Match: *";
        r.out = &resp;
        r.out_max = 64 * 1024;
        st = perform(u->s, &r, 1, 0, err);
        /* A retried complete whose first attempt went through sees 412 or
         * NoSuchUpload: the token tells whether the object is ours. */
        if ((st == CAIRN_E_EXISTS || st == CAIRN_E_NOT_FOUND) && r.retried &&
            we_won(u->s, u->bucket, u->key, u->token)) {
            cairn__clear(err);
            st = CAIRN_OK;
            resp.len = 0;
        }
        /* S3 may answer 200 and put the failure in the body. */
        cairn__xml_span body = {resp.p, resp.len};
        size_t pos = 0;
        cairn__xml_span e;
        if (st == CAIRN_OK && resp.len && cairn__xml_next(body, &pos, "Error", &e) != 0) {
            char code[64];
            char *c = cairn__xml_get(e, "Code");
            cairn__printable(c ? c : "?", c ? strlen(c) : 1, code, sizeof code);
            free(c);
            st = cairn__fail(err, CAIRN_E_IO, "s3://%s/%s: CompleteMultipartUpload: error %s",
                             u->bucket, u->key, code);
        }
    }
    free(q);
    free(x.p);
    free(resp.p);
    if (st != CAIRN_OK) {
        cairn__s3_upload_abort(u, NULL);
        return st;
    }
    upload_free(u);
    return CAIRN_OK;
}

cairn_status cairn__s3_upload_abort_id(cairn__s3 *s, const char *bucket, const char *key,
                                       const char *upload_id, cairn_error *err)
{
    cairn__buf q = {0};
    query_param(&q, "uploadId", upload_id);
    cairn__buf_put(&q, "", 1);
    if (q.oom) {
        free(q.p);
        return cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    }
    req r;
    req_init(&r, "AbortMultipartUpload", "DELETE", bucket, key);
    r.query = q.p;
    cairn_status st = perform(s, &r, 1, 404, err);
    free(q.p);
    return st;
}

static int64_t parse_iso8601(const char *t)
{
    int y, mo, d, h, mi, sec;
    if (sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return -1;
    return utc_seconds(y, mo, d, h, mi, sec);
}

cairn_status cairn__s3_uploads_list(cairn__s3 *s, const char *bucket, const char *prefix,
                                    cairn__s3_uploads_fn fn, void *ctx, cairn_error *err)
{
    cairn__buf q = {0}, body = {0};
    char *key_marker = NULL, *id_marker = NULL;
    cairn_status st = CAIRN_OK;
    int stop = 0;
    while (!stop) {
        req r;
        /* Sorted: key-marker < prefix < upload-id-marker < uploads. */
        if (key_marker)
            query_param(&q, "key-marker", key_marker);
        query_param(&q, "prefix", prefix);
        if (id_marker)
            query_param(&q, "upload-id-marker", id_marker);
        query_param(&q, "uploads", "");
        free(key_marker);
        free(id_marker);
        key_marker = id_marker = NULL;
        if ((st = list_page(s, "ListMultipartUploads", bucket, &q, &body, &r, err)) != CAIRN_OK)
            break;
        /* Ages by the server's clock (its Date header), so a skewed client
         * clock cannot make a live upload look stale. */
        int64_t now = r.date >= 0 ? r.date : (int64_t)time(NULL);
        cairn__xml_span doc = {body.p, body.len}, up;
        size_t pos = 0;
        int found;
        while (!stop && (found = cairn__xml_next(doc, &pos, "Upload", &up)) == 1) {
            char *key = cairn__xml_get(up, "Key"), *id = cairn__xml_get(up, "UploadId");
            char *init = cairn__xml_get(up, "Initiated");
            int64_t t = init ? parse_iso8601(init) : -1;
            if (key && id && *id && t >= 0)
                stop = fn(ctx, key, id, now > t ? (uint64_t)(now - t) : 0) != 0;
            free(init);
            free(key);
            free(id);
            if (t < 0 && !stop) {
                st = malformed(&r, "Upload without a valid Key, UploadId and Initiated", err);
                goto done;
            }
        }
        int more;
        if ((st = page_more(&r, doc, found, stop, "unclosed Upload", &more, err)) != CAIRN_OK ||
            !more)
            break;
        key_marker = cairn__xml_get(doc, "NextKeyMarker");
        id_marker = cairn__xml_get(doc, "NextUploadIdMarker");
        if (!key_marker || !id_marker) {
            st = malformed(&r, "IsTruncated without next markers", err);
            break;
        }
    }
done:
    free(key_marker);
    free(id_marker);
    free(q.p);
    free(body.p);
    return st;
}

typedef struct gc_ctx {
    uint64_t older;
    unsigned n, cap;
    char **keys, **ids;
    int oom;
} gc_ctx;

static int gc_collect(void *ctx, const char *key, const char *upload_id, uint64_t age)
{
    gc_ctx *g = ctx;
    if (age < g->older)
        return 0;
    if (g->n == g->cap) {
        unsigned cap = g->cap ? g->cap * 2 : 16;
        char **k = realloc(g->keys, cap * sizeof *k);
        if (k)
            g->keys = k;
        char **i = realloc(g->ids, cap * sizeof *i);
        if (i)
            g->ids = i;
        if (!k || !i) {
            g->oom = 1;
            return 1;
        }
        g->cap = cap;
    }
    g->keys[g->n] = strdup(key);
    g->ids[g->n] = strdup(upload_id);
    if (!g->keys[g->n] || !g->ids[g->n]) {
        free(g->keys[g->n]);
        free(g->ids[g->n]);
        g->oom = 1;
        return 1;
    }
    g->n++;
    return 0;
}

cairn_status cairn__s3_uploads_gc(cairn__s3 *s, const char *bucket, const char *prefix,
                                  uint64_t older_seconds, unsigned *aborted, cairn_error *err)
{
    gc_ctx g = {older_seconds, 0, 0, NULL, NULL, 0};
    if (aborted)
        *aborted = 0;
    /* Collect first, abort after: aborting while paging would move the markers. */
    cairn_status st = cairn__s3_uploads_list(s, bucket, prefix, gc_collect, &g, err);
    if (st == CAIRN_OK && g.oom)
        st = cairn__fail(err, CAIRN_E_NOMEM, "s3: out of memory");
    for (unsigned i = 0; i < g.n; i++) {
        if (st == CAIRN_OK) {
            st = cairn__s3_upload_abort_id(s, bucket, g.keys[i], g.ids[i], err);
            if (st == CAIRN_OK && aborted)
                (*aborted)++;
        }
        free(g.keys[i]);
        free(g.ids[i]);
    }
    free(g.keys);
    free(g.ids);
    return st;
}
