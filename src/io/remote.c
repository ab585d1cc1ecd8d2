/* remote.c -- remote URLs for the rest of io/ and for policy code that
 * lists and removes objects (remote.h). Only s3:// exists today. */
#include "io/remote.h"
#include "io/s3.h"

#include <stdio.h>
#include <stdlib.h>

int cairn__remote_is_url(const char *path) { return cairn__s3_is_url(path); }

typedef struct list_ctx {
    size_t skip; /* the prefix's length: names are relative to it */
    cairn__remote_list_fn fn;
    void *ctx;
} list_ctx;

static int list_one(void *ctx, const char *key, uint64_t size)
{
    list_ctx *l = ctx;
    return l->fn(l->ctx, key + l->skip, size);
}

cairn_status cairn__remote_list(const char *prefix_url, cairn__remote_list_fn fn, void *ctx,
                                cairn_error *err)
{
    cairn__s3 *s;
    char *bucket, *prefix;
    CAIRN_TRY(cairn__s3_open_url(prefix_url, 1, &s, &bucket, &prefix, err));
    list_ctx l = {strlen(prefix), fn, ctx};
    cairn_status st = cairn__s3_list(s, bucket, prefix, list_one, &l, err);
    cairn__s3_close(s);
    free(bucket);
    free(prefix);
    return st;
}

cairn_status cairn__remote_size(const char *url, uint64_t *size, cairn_error *err)
{
    cairn__s3 *s;
    char *bucket, *key;
    CAIRN_TRY(cairn__s3_open_url(url, 0, &s, &bucket, &key, err));
    cairn_status st = cairn__s3_head(s, bucket, key, size, err);
    cairn__s3_close(s);
    free(bucket);
    free(key);
    return st;
}

cairn_status cairn__remote_remove(const char *url, cairn_error *err)
{
    cairn__s3 *s;
    char *bucket, *key;
    CAIRN_TRY(cairn__s3_open_url(url, 0, &s, &bucket, &key, err));
    cairn_status st = cairn__s3_delete(s, bucket, key, err);
    cairn__s3_close(s);
    free(bucket);
    free(key);
    return st;
}

cairn_status cairn__remote_gc(const char *prefix_url, const char *name_prefix,
                              uint64_t older_seconds, unsigned *aborted, cairn_error *err)
{
    cairn__s3 *s;
    char *bucket, *prefix;
    CAIRN_TRY(cairn__s3_open_url(prefix_url, 1, &s, &bucket, &prefix, err));
    size_t n = strlen(prefix) + strlen(name_prefix) + 1;
    char *full = malloc(n);
    cairn_status st;
    if (!full) {
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", prefix_url);
    } else {
        snprintf(full, n, "%s%s", prefix, name_prefix);
        st = cairn__s3_uploads_gc(s, bucket, full, older_seconds, aborted, err);
    }
    free(full);
    cairn__s3_close(s);
    free(bucket);
    free(prefix);
    return st;
}
