/*
 * sink.h -- where a writer's bytes go: a file (written under a temporary,
 * published by the commit protocol of commit.h), a growable memory buffer,
 * or a remote back end (object storage, e.g. a multipart upload that
 * becomes visible only when completed).
 *
 * Appends are sequential; pad, patch, extend and place serve formats whose
 * header depends on what follows (a hole, then payloads placed in it).
 * io/ knows no format: formats reach the sink through cairn_writer's `sink`
 * (format/format.h).
 */
#ifndef CAIRN_IO_SINK_H
#define CAIRN_IO_SINK_H

#include "io/commit.h"

typedef struct cairn__sink cairn__sink;

/* A remote back end. Every call gets the sink; `state` is its own.
 * write: append at s->pos (already counted by the caller after success);
 * pwrite: bytes at an offset already inside [0, s->pos) (patch/place);
 * extend: the object will be `size` bytes, zeros where nothing is placed;
 * commit: make the object visible atomically (flags: CAIRN__COMMIT_*);
 * discard: abandon it, leaving nothing visible; frees the state. */
typedef struct cairn__sink_backend {
    const char *scheme;
    cairn_status (*write)(cairn__sink *s, const void *data, size_t len, cairn_error *err);
    cairn_status (*pwrite)(cairn__sink *s, uint64_t offset, const void *data, size_t len,
                           cairn_error *err);
    cairn_status (*extend)(cairn__sink *s, uint64_t size, cairn_error *err);
    cairn_status (*commit)(cairn__sink *s, unsigned flags, cairn_error *err);
    void (*discard)(cairn__sink *s);
} cairn__sink_backend;

struct cairn__sink {
    const char *path;      /* target, for messages ("<memory>"); borrowed from the owner */
    cairn__commit_file file; /* file sinks: file.fd >= 0 */
    uint8_t *mem;          /* memory sinks */
    size_t mem_len, mem_cap;
    uint64_t pos;          /* bytes written so far, counting those still in wbuf */
    uint8_t *wbuf;         /* file sinks: small writes gathered into one write() */
    size_t wlen;           /* bytes in wbuf, not yet in the file */
    size_t wcap;           /* its size: grows from 4 KiB, so a tiny file allocates little */
    const cairn__sink_backend *backend; /* remote sinks */
    void *backend_state;
};

/* A memory sink (the default state of a zeroed sink with file.fd = -1). */
void cairn__sink_init_memory(cairn__sink *s, const char *path);
/* A file sink for `path` (borrowed): a temporary in its directory. */
cairn_status cairn__sink_open_file(cairn__sink *s, const char *path, cairn_error *err);
/* 1 for memory sinks. */
static inline int cairn__sink_is_memory(const cairn__sink *s)
{
    return s->file.fd < 0 && !s->backend;
}
/* 1 for file sinks (a descriptor a format may hand to copy_file_range). */
static inline int cairn__sink_fd(const cairn__sink *s) { return s->file.fd; }

/* Appends bytes (write loop with EINTR handling, memory growth, or the back end). */
cairn_status cairn__sink_write(cairn__sink *s, const void *data, size_t len, cairn_error *err);
/* Writes the bytes gathered from small writes and padding (file sinks
 * gather up to 64 KiB, so a small file costs one write()). Call before
 * touching the descriptor directly. */
cairn_status cairn__sink_flush(cairn__sink *s, cairn_error *err);
/* Appends zero bytes until pos is a multiple of `alignment` (a power of two).
 * For file sinks the zeros are gathered with the next bytes. */
cairn_status cairn__sink_pad(cairn__sink *s, uint64_t alignment, cairn_error *err);
/* Overwrites bytes already written at [offset, offset + len). */
cairn_status cairn__sink_patch(cairn__sink *s, uint64_t offset, const void *data, size_t len,
                               cairn_error *err);
/* Makes the output exactly `size` bytes (>= pos): zeros after what was
 * written (a hole in a file). Payloads then go in with cairn__sink_place. */
cairn_status cairn__sink_extend(cairn__sink *s, uint64_t size, cairn_error *err);
/* Writes `name`'s bytes at [offset, offset + len) inside the size set by
 * cairn__sink_extend. */
cairn_status cairn__sink_place(cairn__sink *s, uint64_t offset, const void *data, size_t len,
                               const char *name, cairn_error *err);

/* Publishes a file or remote sink as its target (flags: CAIRN__COMMIT_*).
 * The sink is closed afterwards, whatever the result. */
cairn_status cairn__sink_commit(cairn__sink *s, unsigned flags, cairn_error *err);
/* Hands a memory sink's bytes over (at least one byte allocated, so never
 * NULL on success); the sink no longer owns them. */
cairn_status cairn__sink_take_memory(cairn__sink *s, void **data, size_t *size, cairn_error *err);
/* Abandons whatever was written: nothing appears at the target. Safe twice. */
void cairn__sink_discard(cairn__sink *s);

#endif
