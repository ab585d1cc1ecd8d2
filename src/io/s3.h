/*
 * s3.h -- a small S3 client over libcurl (internal; docs/STORAGE.md is the
 * contract: URLs, where settings come from, retries, what is sent when).
 *
 * A cairn__s3 is one configured endpoint + identity. It holds no secrets in
 * messages, has no process-global state of its own, and may be used from any
 * number of threads at once (each request takes its own curl handle from a
 * small mutex-guarded pool, so connections are reused).
 *
 * Every call names the object in its error: "s3://bucket/key: GET: HTTP 503
 * (SlowDown) after 5 attempts". Statuses: CAIRN_E_NOT_FOUND (404),
 * CAIRN_E_EXISTS (412 on a create-only write), CAIRN_E_AUTH (401, 403, and
 * 400 with a token or signature code: who is asking was refused; the message
 * names the access key ID and where it came from, never the secret),
 * CAIRN_E_CORRUPT (a response that breaks the protocol), CAIRN_E_UNSUPPORTED
 * (501: a server without that request, e.g. s3rver's ListMultipartUploads), CAIRN_E_IO
 * (everything else, after retries).
 */
#ifndef CAIRN_IO_S3_H
#define CAIRN_IO_S3_H

#include "common/internal.h"

#include <stddef.h>
#include <stdint.h>

/* Settings of one handle. cairn__s3_config_env fills it from the
 * environment and ~/.aws (docs/STORAGE.md); tests may change fields before
 * cairn__s3_open copies them. Strings are owned by the config
 * (cairn__s3_config_free). */
typedef struct cairn__s3_config {
    char *endpoint;      /* "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com" */
    char *region;        /* "us-east-1" */
    char *access_key;    /* NULL: anonymous, unsigned requests */
    char *secret_key;
    char *session_token; /* NULL when none */
    char key_source[160]; /* where access_key came from, for messages ("AWS_ACCESS_KEY_ID") */
    char *ca_bundle;     /* NULL: libcurl's default */
    int path_style;      /* 1: ENDPOINT/BUCKET/KEY; 0: virtual-hosted BUCKET.HOST/KEY */
    int max_attempts;    /* 1..20 */
    unsigned base_delay_ms, max_delay_ms; /* backoff: full jitter in [0, min(max, base*2^n)) */
    unsigned connect_timeout_ms;
    unsigned stall_seconds; /* a transfer with no byte for this long is dropped (and retried) */
    int unsigned_payload;   /* bodies as UNSIGNED-PAYLOAD over plain HTTP too (a trusted
                               network such as loopback); over HTTPS they always are */
    uint64_t multipart_threshold; /* uploads of at most this many bytes are sent by one PUT
                                     (staged in a $TMPDIR file past the first part); larger
                                     ones by a multipart upload. 8 MiB..5 GiB */
    /* Test hooks, empty in use (tests/test_s3_sigv4.c checks the signed
     * requests against AWS's published SigV4 examples with them): a fixed
     * x-amz-date ("20130524T000000Z", sent as a header, which libcurl then
     * signs with instead of its clock), a service other than "s3", and a
     * libcurl CONNECT_TO entry ("::127.0.0.1:PORT": every connection goes
     * there, the Host header and the signature keep the endpoint's name). */
    char fixed_date[20];
    char service[32];
    char connect_to[128];
} cairn__s3_config;

cairn_status cairn__s3_config_env(cairn__s3_config *cfg, cairn_error *err);
void cairn__s3_config_free(cairn__s3_config *cfg);

typedef struct cairn__s3 cairn__s3;

/* Copies cfg. Fails with CAIRN_E_ARG on a bad endpoint or half-given keys. */
cairn_status cairn__s3_open(cairn__s3 **out, const cairn__s3_config *cfg, cairn_error *err);
void cairn__s3_close(cairn__s3 *s); /* NULL is a no-op */

/* "s3://bucket/key" -> bucket and key (malloc'ed; free both). A URL
 * without a key (or with an empty one) is allowed only when allow_prefix
 * is set, and then gives key "". */
int cairn__s3_is_url(const char *path);
cairn_status cairn__s3_url_parse(const char *url, int allow_prefix, char **bucket, char **key,
                                 cairn_error *err);

/* A handle configured from the environment (cairn__s3_config_env) plus the
 * bucket and key of `url`: what every remote source and sink starts with.
 * On failure every out-parameter is NULL. */
cairn_status cairn__s3_open_url(const char *url, int allow_prefix, cairn__s3 **s, char **bucket,
                                char **key, cairn_error *err);

/* Flags of the write calls. */
enum {
    CAIRN__S3_CREATE_ONLY = 1 /* If-None-Match: *: fail with CAIRN_E_EXISTS if the key exists */
};

/* Object size (HEAD). */
cairn_status cairn__s3_head(cairn__s3 *s, const char *bucket, const char *key, uint64_t *size,
                            cairn_error *err);

/* Reads exactly `len` bytes at `off` into dst (ranged GET). Fewer bytes
 * (the object is shorter, or was truncated on the server) is CAIRN_E_CORRUPT
 * naming the offsets. len 0 is a no-op. */
cairn_status cairn__s3_get(cairn__s3 *s, const char *bucket, const char *key, uint64_t off,
                           size_t len, void *dst, cairn_error *err);

/* One request for the object's size and its last min(len, size) bytes,
 * which land at the END of dst[0..len): *got says how many (the tail starts
 * at dst + len - *got). */
cairn_status cairn__s3_get_tail(cairn__s3 *s, const char *bucket, const char *key, size_t len,
                                void *dst, size_t *got, uint64_t *size, cairn_error *err);

/* Whole-object PUT of data[0..len). */
cairn_status cairn__s3_put(cairn__s3 *s, const char *bucket, const char *key, const void *data,
                           size_t len, unsigned flags, cairn_error *err);
/* Whole-object PUT of head[0..head_len) followed by bytes [0, fd_len) of
 * the file fd (read with pread, so a retry re-sends them; fd < 0: none). */
cairn_status cairn__s3_put_file(cairn__s3 *s, const char *bucket, const char *key,
                                const void *head, size_t head_len, int fd, uint64_t fd_len,
                                unsigned flags, cairn_error *err);

/* DELETE; deleting a missing key succeeds (S3 semantics). */
cairn_status cairn__s3_delete(cairn__s3 *s, const char *bucket, const char *key, cairn_error *err);

/* ListObjectsV2 of every key starting with prefix (all pages); fn is called
 * once per key in the server's (lexicographic) order; a non-zero return
 * stops the listing, which then returns CAIRN_OK. */
typedef int (*cairn__s3_list_fn)(void *ctx, const char *key, uint64_t size);
cairn_status cairn__s3_list(cairn__s3 *s, const char *bucket, const char *prefix,
                            cairn__s3_list_fn fn, void *ctx, cairn_error *err);

/* Multipart uploads. A cairn__s3_upload carries the key, the upload id,
 * the part ETags and the writer token; parts may be uploaded from several
 * threads at once (distinct part numbers). */
typedef struct cairn__s3_upload cairn__s3_upload;

/* Part numbers are 1..10000; every part but the last must be >= 5 MiB. */
#define CAIRN__S3_MAX_PARTS 10000u
#define CAIRN__S3_MIN_PART ((size_t)5 << 20)

cairn_status cairn__s3_upload_create(cairn__s3 *s, const char *bucket, const char *key,
                                     cairn__s3_upload **out, cairn_error *err);
cairn_status cairn__s3_upload_part(cairn__s3_upload *u, unsigned part_number, const void *data,
                                   size_t len, cairn_error *err);
/* Completes with parts 1..n (each must have been uploaded). The object
 * appears now. With CAIRN__S3_CREATE_ONLY, an existing key is
 * CAIRN_E_EXISTS (and the upload is aborted). Frees u in every case. */
cairn_status cairn__s3_upload_complete(cairn__s3_upload *u, unsigned n, unsigned flags,
                                       cairn_error *err);
/* AbortMultipartUpload (best effort when err is NULL); frees u. NULL no-op. */
cairn_status cairn__s3_upload_abort(cairn__s3_upload *u, cairn_error *err);

/* ListMultipartUploads under prefix (all pages): fn gets key, upload id and
 * age in seconds (from Initiated; 0 if the server's clock is ahead). */
typedef int (*cairn__s3_uploads_fn)(void *ctx, const char *key, const char *upload_id,
                                    uint64_t age_seconds);
cairn_status cairn__s3_uploads_list(cairn__s3 *s, const char *bucket, const char *prefix,
                                    cairn__s3_uploads_fn fn, void *ctx, cairn_error *err);
/* AbortMultipartUpload by id (cleanup of another process's upload). */
cairn_status cairn__s3_upload_abort_id(cairn__s3 *s, const char *bucket, const char *key,
                                       const char *upload_id, cairn_error *err);

/* Aborts every unfinished upload under prefix initiated at least
 * older_seconds ago; *aborted counts them (may be NULL). */
cairn_status cairn__s3_uploads_gc(cairn__s3 *s, const char *bucket, const char *prefix,
                                  uint64_t older_seconds, unsigned *aborted, cairn_error *err);

/* Request counters of the handle (for tests and benchmarks): HTTP
 * requests sent, including retries. */
uint64_t cairn__s3_requests(const cairn__s3 *s);

/* The handle's cfg.multipart_threshold. */
uint64_t cairn__s3_multipart_threshold(const cairn__s3 *s);

/* Limits of cfg.multipart_threshold: one part, and S3's largest PUT. */
#define CAIRN__S3_THRESHOLD_MIN ((uint64_t)8 << 20)
#define CAIRN__S3_THRESHOLD_MAX ((uint64_t)5 << 30)

#endif /* CAIRN_IO_S3_H */
