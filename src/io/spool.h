/*
 * spool.h -- a payload spool for writers whose header must come first but
 * depends on every tensor (safetensors, GGUF): payloads are written to the
 * spool as they arrive, so the caller may reuse its buffer at once, and
 * copied behind the header at commit.
 *
 * Path writers spool to an unlinked temporary file in the target's directory
 * (same file system as the target, so copy_file_range can share extents, and
 * nothing to clean up after a crash); remote writers (object storage)
 * spool to an unlinked file in $TMPDIR (else /tmp); memory writers spool to
 * a growable buffer. Readers spool what they must hand a library as a file
 * (a .keras archive's weights, for libhdf5) to an unlinked file in $TMPDIR.
 */
#ifndef CAIRN_SPOOL_H
#define CAIRN_SPOOL_H

#include "io/sink.h"

typedef struct cairn__spool {
    int fd;       /* the spool file, or -1 for a memory spool */
    uint8_t *mem; /* the memory spool */
    size_t cap;
    uint64_t len; /* bytes spooled so far */
} cairn__spool;

/* Prepares an empty spool for `w`: a file when w writes to a file (w->fd >=
 * 0; O_TMPFILE, else mkstemp + unlink), memory otherwise. On failure the
 * spool is still safe to close. */
cairn_status cairn__spool_open(cairn__spool *s, const cairn__sink *w, cairn_error *err);
/* An empty file spool of a reader's own (no sink): an unnamed file in
 * $TMPDIR, else /tmp, gone with its descriptor whatever happens to the
 * process. `what` (the input) is for messages. */
cairn_status cairn__spool_open_tmp(cairn__spool *s, const char *what, cairn_error *err);
/* Appends `len` bytes to a file spool; `what` is for messages. */
cairn_status cairn__spool_append(cairn__spool *s, const char *what, const void *data, size_t len,
                                 cairn_error *err);
/* Appends `len` bytes; `name` (the tensor) is for messages. */
cairn_status cairn__spool_write(cairn__spool *s, const cairn__sink *w, const void *data,
                                size_t len, const char *name, cairn_error *err);
/* Appends spool bytes [at, at+len) to w's sink: in the kernel when it can
 * (copy_file_range), else by read/write, or from memory. */
cairn_status cairn__spool_copy(const cairn__spool *s, cairn__sink *w, uint64_t at, uint64_t len,
                               cairn_error *err);
/* Releases the file or buffer. Safe after cairn__spool_open, whether or
 * not it succeeded, and on a spool whose fd is -1 (never on a merely zeroed
 * one: fd 0 is a real descriptor). */
void cairn__spool_close(cairn__spool *s);

#endif
