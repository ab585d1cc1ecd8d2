/*
 * archive.h -- the internal shape of an open file (cairn_file) and of a
 * writer (cairn_writer), and the operations each format provides.
 *
 * Data flows one way: caller buffers -> cairn_writer (format ops) -> sink
 * (file or memory). Reading mirrors it: source (mmap, pread or memory) ->
 * format ops -> a table of tensors -> generic read/convert code in read.c.
 */
#ifndef CAIRN_ARCHIVE_H
#define CAIRN_ARCHIVE_H

#include "internal.h"

/* ------------------------------------------------------------ reading side */

/* Where one tensor's bytes are and how they are laid out. Formats fill
 * `info`; the generic reader (read.c) turns the stored bytes into C-ordered,
 * little-endian elements of info.dtype. */
typedef struct cairn__tensor {
    cairn_tensor_info info;
    int big_endian;    /* stored bytes need a byte swap (npy '>') */
    int fortran_order; /* stored column-major (npy fortran_order) */
    int via_load;      /* the bytes are not [info.offset, +stored_size) of the input
                          (a deflated .npz member): read.c gets them from ops->load */
} cairn__tensor;

typedef struct cairn__reader_ops {
    cairn_format format;
    /* Parses the structure of f (f->src is ready). Sets f->state. */
    cairn_status (*open)(cairn_file *f, cairn_error *err);
    void (*close)(cairn_file *f);
    uint64_t (*count)(const cairn_file *f);
    cairn_status (*tensor_at)(const cairn_file *f, uint64_t index, cairn__tensor *out,
                              cairn_error *err);
    /* Binary search or table lookup; CAIRN_E_NOT_FOUND (with a message) if absent. */
    cairn_status (*find)(const cairn_file *f, const char *name, size_t name_len, uint64_t *index,
                         cairn_error *err);
    cairn_status (*file_info)(const cairn_file *f, cairn_file_info *out, cairn_error *err);
    /* Format-level structure checks for cairn_file_verify (payload checksums
     * are checked by the generic code afterwards). May be NULL. */
    cairn_status (*verify_structure)(const cairn_file *f, cairn_error *err);
    /* Decodes the metadata tree; NULL means "always an empty map". */
    cairn_status (*read_metadata)(const cairn_file *f, cairn_value **out, cairn_error *err);
    /* Optional (NULL for formats whose tensors are plain byte ranges checked
     * by XXH3 info.checksum). For tensors marked via_load: copies the stored
     * elements (info.raw_size bytes, byte order and layout as stored) into
     * dst, checking the format's own checksum if it has one. Thread-safe. */
    cairn_status (*load)(const cairn_file *f, uint64_t index, void *dst, cairn_error *err);
    /* Optional: the format's own checksum (ZIP CRC-32) of tensor `index`.
     * When set, cairn_tensor_verify, cairn_file_verify and CAIRN_READ_VERIFY
     * call it instead of checking info.checksum. */
    cairn_status (*verify_tensor)(const cairn_file *f, uint64_t index, cairn_error *err);
} cairn__reader_ops;

/* The bytes of an input: a read-only mapping, a caller's memory buffer, or
 * (CAIRN_OPEN_NO_MMAP) a file descriptor read with pread. */
typedef struct cairn__source {
    int fd;              /* -1 for memory */
    const uint8_t *base; /* whole input, or NULL when only pread is available */
    uint64_t size;
    int mapped;          /* base came from mmap and must be unmapped */
} cairn__source;

struct cairn_file {
    const cairn__reader_ops *ops;
    char *path;  /* for messages; "<memory>" for memory inputs */
    unsigned flags;
    uint64_t max_inflate; /* cairn_open_opts.max_inflate with its default applied */
    cairn__source src;
    void *state; /* the format's own */
};

/* Copies [offset, offset+len) of the input into dst. The range must have been
 * checked against src.size by the caller; a short read (file shrank) gives
 * CAIRN_E_IO. Thread-safe. */
cairn_status cairn__source_read(const cairn_file *f, uint64_t offset, void *dst, size_t len,
                                cairn_error *err);
/* A pointer into the mapping for [offset, offset+len), or NULL when the input
 * is not mapped. The caller checked the range. */
const uint8_t *cairn__source_ptr(const cairn_file *f, uint64_t offset, uint64_t len);

extern const cairn__reader_ops cairn__native_reader;
extern const cairn__reader_ops cairn__npy_reader;
extern const cairn__reader_ops cairn__safetensors_reader;
extern const cairn__reader_ops cairn__npz_reader;
extern const cairn__reader_ops cairn__gguf_reader;

/* ------------------------------------------------------------ writing side */

typedef struct cairn__writer_ops {
    cairn_format format;
    /* Called once after the sink is ready; writes any header. */
    cairn_status (*begin)(cairn_writer *w, cairn_error *err);
    cairn_status (*add)(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                        const uint64_t *dims, const void *data, cairn_error *err);
    cairn_status (*add_alias)(cairn_writer *w, const char *name, const char *existing,
                              cairn_error *err);
    /* Takes ownership of `tree` (a deep copy made by the caller of the op). */
    cairn_status (*set_metadata)(cairn_writer *w, cairn_value *tree, cairn_error *err);
    /* Writes whatever follows the payloads (index, trailer). */
    cairn_status (*finish)(cairn_writer *w, cairn_error *err);
    void (*destroy)(cairn_writer *w);
} cairn__writer_ops;

struct cairn_writer {
    const cairn__writer_ops *ops;
    unsigned flags;
    uint64_t alignment; /* default payload alignment */
    int failed;         /* any error makes the writer unusable */
    /* sink */
    int fd;             /* -1 for memory */
    char *path;         /* target path (file), or "<memory>" */
    char *tmp_path;     /* temporary file being written */
    uint8_t *mem;       /* memory sink */
    size_t mem_len, mem_cap;
    uint64_t pos;       /* bytes written so far */
    cairn_value *meta;  /* set by cairn_writer_set_metadata; handed to the format at commit */
    cairn_value *objects; /* cairn_writer_append_object's list, merged into meta at commit */
    void *state;        /* the format's own */
};

/* Appends bytes to the sink (write loop with EINTR handling, or memory growth). */
cairn_status cairn__sink_write(cairn_writer *w, const void *data, size_t len, cairn_error *err);
/* Appends zero bytes until pos is a multiple of `alignment` (a power of two). */
cairn_status cairn__sink_pad(cairn_writer *w, uint64_t alignment, cairn_error *err);

extern const cairn__writer_ops cairn__native_writer;
extern const cairn__writer_ops cairn__npy_writer;
extern const cairn__writer_ops cairn__safetensors_writer;
extern const cairn__writer_ops cairn__npz_writer;
extern const cairn__writer_ops cairn__gguf_writer;

#endif /* CAIRN_ARCHIVE_H */
