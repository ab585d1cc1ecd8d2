/*
 * source.h -- the bytes of an input, whatever holds them: a read-only
 * mapping of a file, a file read with pread (CAIRN_OPEN_NO_MMAP, or a
 * mapping that failed), a caller's memory buffer, or a remote back end
 * (object storage) that serves byte ranges.
 *
 * io/ knows no format: a source is a size and a way to copy byte ranges.
 * Formats reach it through cairn_file's `src` (format/format.h).
 */
#ifndef CAIRN_IO_SOURCE_H
#define CAIRN_IO_SOURCE_H

#include "common/internal.h"

typedef struct cairn__source cairn__source;

/* A back end that is neither a local file nor memory (io/ implements one per
 * storage service). `read` copies [offset, offset+len) (already checked
 * against size) into dst and must be thread-safe; `close` releases state. */
typedef struct cairn__source_backend {
    const char *scheme; /* "s3", for messages */
    cairn_status (*read)(const cairn__source *s, uint64_t offset, void *dst, size_t len,
                         cairn_error *err);
    void (*close)(cairn__source *s);
} cairn__source_backend;

struct cairn__source {
    const char *path;    /* for messages; borrowed from the owner (cairn_file) */
    int fd;              /* -1 for memory and remote sources */
    const uint8_t *base; /* whole input, or NULL when only reads are available */
    uint64_t size;
    int mapped;          /* base came from mmap and must be unmapped */
    int owned;           /* base is a heap copy of a small file and must be freed */
    const cairn__source_backend *backend; /* remote sources only */
    void *backend_state;
};

/* Files up to this size are read whole at open rather than mapped. */
#define CAIRN__SOURCE_SMALL (32u << 10)

/* What cairn__source_open_file found at `path`. */
typedef enum cairn__source_kind {
    CAIRN__SOURCE_FILE,      /* a regular file: the source is open */
    CAIRN__SOURCE_DIRECTORY  /* a directory: nothing is open; the caller decides */
} cairn__source_kind;

/* Opens a regular file for reading. The type is checked before anything can
 * block (io/open_read.h), so a FIFO, a socket or a device is refused at once
 * instead of hanging the reader.
 * Maps it unless `no_mmap` (a failed mmap falls back to pread); a file of
 * at most CAIRN__SOURCE_SMALL bytes is read into memory instead, which costs
 * less than a mapping, its page faults and its unmapping (the descriptor
 * stays open all the same). `path` is
 * borrowed and must outlive the source. A directory is reported, not
 * opened. */
cairn_status cairn__source_open_file(cairn__source *s, const char *path, int no_mmap,
                                     cairn__source_kind *kind, cairn_error *err);
/* A source over caller memory (borrowed; `data` may be NULL when size is 0). */
void cairn__source_init_memory(cairn__source *s, const char *path, const void *data,
                               uint64_t size);
/* Releases the mapping, descriptor or back end. Safe on a zeroed source whose
 * fd is -1, and twice. */
void cairn__source_close(cairn__source *s);

/* Copies [offset, offset+len) into dst: CAIRN_E_CORRUPT naming the source
 * when the range runs past its end, CAIRN_E_IO when the file shrank or a
 * read failed. Thread-safe. */
cairn_status cairn__source_read(const cairn__source *s, uint64_t offset, void *dst, size_t len,
                                cairn_error *err);
/* The same for small scattered reads (the headers of many archive members):
 * through pread when the file has a descriptor, even when it is mapped, so
 * that a scan of every member's header leaves no pages of the file in the
 * process's resident set (each would cost a page of memory per member). */
cairn_status cairn__source_read_cold(const cairn__source *s, uint64_t offset, void *dst,
                                     size_t len, cairn_error *err);
/* A hint that [offset, offset+len) will not be read again soon: a mapped
 * source drops the whole pages of that range from the process's resident
 * set (they are read again from the page cache if they are touched). A
 * reader that has parsed a large part of a file (a pickle of a hundred
 * thousand tensors) says so, so that those pages do not count against its
 * memory until it closes. No effect on other sources. */
void cairn__source_forget(const cairn__source *s, uint64_t offset, uint64_t len);
/* A pointer into the mapping for [offset, offset+len), or NULL when the
 * source is not mapped. The caller checked the range. */
static inline const uint8_t *cairn__source_ptr(const cairn__source *s, uint64_t offset,
                                               uint64_t len)
{
    (void)len;
    return s->base ? s->base + offset : NULL;
}

/* 1 for a local file (fd or mapping) that other files may be opened beside. */
static inline int cairn__source_is_local(const cairn__source *s) { return s->backend == NULL; }

#endif
