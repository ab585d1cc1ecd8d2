/*
 * archive.h -- what the archive face (open, detect, read, write, composite
 * archives) shares internally beyond the format seam (format/format.h).
 */
#ifndef CAIRN_ARCHIVE_H
#define CAIRN_ARCHIVE_H

#include "format/format.h"
#include "format/registry.h"

/* The one range check in front of ops->tensor_at: CAIRN_E_NOT_FOUND (naming
 * the file, the index and the count) when index >= count. */
cairn_status cairn__tensor_get(const cairn_file *f, uint64_t index, cairn__tensor *out,
                               cairn_error *err);

/* A writer to `path` with no format: the caller appends bytes with
 * cairn__sink_write and finishes with cairn_writer_commit, getting the same
 * temporary file, fsync, rename and directory fsync as every save (signing
 * rewrites files and writes manifests through it). `flags`:
 * CAIRN_WRITE_NO_SYNC or 0. */
cairn_status cairn__writer_open_raw(const char *path, unsigned flags, cairn_writer **out,
                                    cairn_error *err);

/* Composite archives: their tensors live in other cairn_files, opened
 * through the public open (the one accepted loop, ARCHITECTURE.md). */
extern const cairn__reader_ops cairn__safetensors_index_reader;
extern const cairn__reader_ops cairn__skorch_reader; /* a skorch checkpoint directory */
/* 1 when `dir` holds a skorch checkpoint (params.pt, or one PREFIX with both
 * PREFIXparams.pt and PREFIXhistory.json). */
int cairn__skorch_sniff(const char *dir);

#endif /* CAIRN_ARCHIVE_H */
