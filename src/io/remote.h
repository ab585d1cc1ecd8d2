/*
 * remote.h -- sources and sinks on object storage (docs/STORAGE.md).
 *
 * cairn__source_open_file and cairn__sink_open_file hand a path that is a
 * remote URL ("s3://bucket/key") to these, so every caller of the file
 * source and sink (cairn_file_open, the writers, signing, checkpoints, the
 * CLI) accepts URLs without knowing about them. Each source or sink gets its
 * own S3 handle, configured from the environment when it is opened.
 */
#ifndef CAIRN_IO_REMOTE_H
#define CAIRN_IO_REMOTE_H

#include "io/sink.h"
#include "io/source.h"

/* 1 when `path` names a remote object ("s3://..."). */
int cairn__remote_is_url(const char *path);

/* A lazy source over the object at `url`: one ranged GET for its size and
 * tail, then ranged GETs per read (see s3_source.c). `url` is copied. */
cairn_status cairn__remote_source_open(cairn__source *s, const char *url, cairn_error *err);

/* A sink that streams to the object at `url` as a multipart upload; the
 * object appears at commit, whole, and nothing is left on discard. */
cairn_status cairn__remote_sink_open(cairn__sink *s, const char *url, cairn_error *err);

/* Lists the keys under `prefix_url` ("s3://bucket/prefix"): fn gets each
 * key's name relative to the prefix and its size. */
typedef int (*cairn__remote_list_fn)(void *ctx, const char *name, uint64_t size);
cairn_status cairn__remote_list(const char *prefix_url, cairn__remote_list_fn fn, void *ctx,
                                cairn_error *err);
/* The size of the object at `url` (HEAD). */
cairn_status cairn__remote_size(const char *url, uint64_t *size, cairn_error *err);
/* Deletes the object at `url` (a missing one is no error). */
cairn_status cairn__remote_remove(const char *url, cairn_error *err);
/* Aborts unfinished multipart uploads under `prefix_url` whose key starts
 * with the prefix + `name_prefix` and that were started at least
 * `older_seconds` ago (by the server's clock); *aborted counts them. */
cairn_status cairn__remote_gc(const char *prefix_url, const char *name_prefix,
                              uint64_t older_seconds, unsigned *aborted, cairn_error *err);

#endif /* CAIRN_IO_REMOTE_H */
