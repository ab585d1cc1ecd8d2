/*
 * cairn/store.h -- object-store keys and file identities, for clients that
 * build archives of several files on the public API (libcairn_mpi's
 * distributed checkpoints on an s3:// prefix, docs/DISTRIBUTED.md).
 *
 * Part of the public API: included by cairn.h (include that), kept in a
 * file of its own so that the core API in cairn.h reads on its own.
 */
#ifndef CAIRN_H
#include "../cairn.h" /* the core first: it includes this file after itself */
#elif !defined(CAIRN_STORE_H)
#define CAIRN_STORE_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------ file identities */

/* What names one native file among all others with the same index: its
 * size in bytes and its trailer's index_hash (docs/FORMAT.md §3; the XXH3
 * of the index, which holds every tensor's name, shape, offset and
 * checksum). A distributed checkpoint's manifest records one per rank file
 * (docs/FORMAT.md §20), and a reader refuses a rank file whose identity
 * differs. */
typedef struct cairn_file_id {
    uint64_t size;
    uint64_t index_hash;
} cairn_file_id;

/* cairn_writer_commit, and on success *out is the identity of the file or
 * object just committed, known without reading anything back (an s3://
 * object is not fetched again). Only native saves have one: any other
 * format is CAIRN_E_UNSUPPORTED before anything is committed (the writer
 * is freed either way, as by cairn_writer_commit). */
CAIRN_API cairn_status cairn_writer_commit_id(cairn_writer *w, cairn_file_id *out,
                                              cairn_error *err);
/* The identity of an open native file (no I/O: the trailer was read at
 * open, for an s3:// object in the open's one GET). CAIRN_E_UNSUPPORTED
 * for other formats and for directories opened as one archive. */
CAIRN_API cairn_status cairn_file_get_id(const cairn_file *f, cairn_file_id *out,
                                         cairn_error *err);

/* --------------------------------------------------------- object stores */

/* 1 when `path` is an object URL ("s3://bucket/key", docs/STORAGE.md),
 * else 0. Every function taking a path takes such URLs; the calls below
 * take only them (CAIRN_E_ARG for a local path: a client lists and removes
 * local files itself). */
CAIRN_API int cairn_path_is_url(const char *path);

/* Called once per key by cairn_store_list: `name` is the key relative to
 * the listed prefix (borrowed for the call), `size` its bytes. A non-zero
 * return stops the listing (cairn_store_list then returns CAIRN_OK). */
typedef int (*cairn_store_list_fn)(void *ctx, const char *name, uint64_t size);

/* Lists every object whose key starts with the prefix of `prefix_url`
 * ("s3://bucket/run/": keys under "run/", at any depth; write the trailing
 * '/' to list a "directory" and not also "run-2/..."), in key order, by
 * ListObjectsV2 pages of 1,000. Objects only: unfinished multipart uploads
 * are not listed. */
CAIRN_API cairn_status cairn_store_list(const char *prefix_url, cairn_store_list_fn fn,
                                        void *ctx, cairn_error *err);
/* Deletes the object at `url`; a missing object is no error. */
CAIRN_API cairn_status cairn_store_remove(const char *url, cairn_error *err);
/* Aborts the unfinished multipart uploads (the leftovers of killed
 * writers) whose key starts with the prefix of `prefix_url` followed by
 * `name_prefix` and that were started at least `older_seconds` ago by the
 * server's clock; *aborted (may be NULL) counts them. CAIRN_E_UNSUPPORTED
 * when the server has no ListMultipartUploads (s3rver). */
CAIRN_API cairn_status cairn_store_abort_stale(const char *prefix_url, const char *name_prefix,
                                               uint64_t older_seconds, unsigned *aborted,
                                               cairn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_STORE_H */
