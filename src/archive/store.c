/* store.c -- the public face of object-store keys and file identities
 * (include/cairn/store.h): thin checks over io/remote.h and the native
 * trailer, for clients that build multi-file archives (libcairn_mpi). */
#include "archive/archive.h"
#include "io/remote.h"

#include <string.h>

#define TRAILER_SIZE 128
#define TRAILER_INDEX_HASH 80 /* docs/FORMAT.md §3 */

int cairn_path_is_url(const char *path) { return path && cairn__remote_is_url(path); }

static cairn_status need_url(const char *what, const char *url, cairn_error *err)
{
    if (!url || !cairn__remote_is_url(url))
        return cairn__fail(err, CAIRN_E_ARG, "%s: '%s' is not an object URL (s3://bucket/key)",
                           what, url ? url : "(null)");
    return CAIRN_OK;
}

cairn_status cairn_store_list(const char *prefix_url, cairn_store_list_fn fn, void *ctx,
                              cairn_error *err)
{
    CAIRN_TRY(need_url("cairn_store_list", prefix_url, err));
    if (!fn)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_store_list: NULL callback");
    return cairn__remote_list(prefix_url, fn, ctx, err);
}

cairn_status cairn_store_remove(const char *url, cairn_error *err)
{
    CAIRN_TRY(need_url("cairn_store_remove", url, err));
    return cairn__remote_remove(url, err);
}

cairn_status cairn_store_abort_stale(const char *prefix_url, const char *name_prefix,
                                     uint64_t older_seconds, unsigned *aborted,
                                     cairn_error *err)
{
    if (aborted)
        *aborted = 0;
    CAIRN_TRY(need_url("cairn_store_abort_stale", prefix_url, err));
    return cairn__remote_gc(prefix_url, name_prefix ? name_prefix : "", older_seconds, aborted,
                            err);
}

cairn_status cairn_file_get_id(const cairn_file *f, cairn_file_id *out, cairn_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!f || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_get_id: NULL argument");
    if (f->ops->format != CAIRN_FORMAT_NATIVE || f->ops == &cairn__dist_reader ||
        f->src.size < TRAILER_SIZE)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: only a native file has an identity "
                           "(size and index hash)", f->path);
    uint8_t hash[8];
    CAIRN_TRY(cairn__file_read(f, f->src.size - TRAILER_SIZE + TRAILER_INDEX_HASH, hash, 8, err));
    out->size = f->src.size;
    out->index_hash = cairn__le64(hash);
    return CAIRN_OK;
}
