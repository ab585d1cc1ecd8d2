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

#include "common/internal.h"
#include "common/nameset.h"

/* ------------------------------------------------------------ reading side */

/* Where one tensor's bytes are and how they are laid out. Formats fill
 * `info`; the generic reader (read.c) turns the stored bytes into C-ordered,
 * little-endian elements of info.dtype. */
typedef struct cairn__tensor {
    cairn_tensor_info info;
    int big_endian;    /* stored bytes need a byte swap (npy '>') */
    int fortran_order; /* stored column-major (npy fortran_order) */
    int via_load;      /* the bytes are not [info.offset, +stored_size) of the input
                          (a deflated .npz member, a compressed native tensor):
                          read.c gets them from ops->load_range or ops->load */
} cairn__tensor;

typedef struct cairn__reader_ops {
    cairn_format format;
    /* Parses the structure of f (f->src is ready). Sets f->state. */
    cairn_status (*open)(cairn_file *f, cairn_error *err);
    void (*close)(cairn_file *f);
    uint64_t (*count)(const cairn_file *f);
    /* Only ever called with index < count(f): cairn__tensor_get checks it once
     * for every caller, so formats do not repeat the check. */
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
    /* Optional, for via_load tensors stored little-endian in C order whose
     * bytes can be had in pieces (compressed native tensors): copies raw
     * bytes [lo, hi) of tensor `index` into dst, decoding only what holds
     * them. When set, read.c uses it instead of `load`. Thread-safe. */
    cairn_status (*load_range)(const cairn_file *f, uint64_t index, uint64_t lo, uint64_t hi,
                               void *dst, cairn_error *err);
    /* Optional: the format's own checksum (ZIP CRC-32) of tensor `index`.
     * When set, cairn_tensor_verify, cairn_file_verify and CAIRN_READ_VERIFY
     * call it instead of checking info.checksum. */
    cairn_status (*verify_tensor)(const cairn_file *f, uint64_t index, cairn_error *err);
    /* Optional: for archives whose tensors live in other cairn_files (the
     * shards of a sharded safetensors index). Returns the file holding tensor
     * `index` (in range) and its index there; cairn_tensor_data, _read and
     * _verify then act on that file, so views, reads, checks and their
     * messages are the owner's. f->src then holds no tensor bytes. */
    const cairn_file *(*owner)(const cairn_file *f, uint64_t index, uint64_t *owner_index);
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
    unsigned threads;     /* cairn_open_opts.threads: decoding workers per read (0 = CPUs) */
    int has_public_key;   /* cairn_open_opts.public_key was given: verify on open */
    uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES];
    cairn__source src;
    void *state; /* the format's own */
};

/* The one range check in front of ops->tensor_at: CAIRN_E_NOT_FOUND (naming
 * the file, the index and the count) when index >= count. */
cairn_status cairn__tensor_get(const cairn_file *f, uint64_t index, cairn__tensor *out,
                               cairn_error *err);

/* The invariant every reader's tensors keep (file.c says which); called by
 * cairn__tensor_get, so a reader's mistake is CAIRN_E_CORRUPT, never a
 * wrapped size. */
cairn_status cairn__tensor_check(const cairn_file *f, const cairn__tensor *t, cairn_error *err);

/* ops->find for formats that index their tensors with a cairn__nameset:
 * *index on success, else CAIRN_E_NOT_FOUND naming the file and the name. */
cairn_status cairn__find_by_name(const cairn_file *f, const cairn__nameset *names,
                                 cairn__name_fn name_at, const void *ctx, const char *name,
                                 size_t len, uint64_t *index, cairn_error *err);

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
extern const cairn__reader_ops cairn__safetensors_index_reader;
extern const cairn__reader_ops cairn__torch_reader;  /* torch.save ZIP and legacy files */
extern const cairn__reader_ops cairn__skorch_reader; /* a skorch checkpoint directory */
extern const cairn__reader_ops cairn__mxnet_reader;
extern const cairn__reader_ops cairn__hdf5_reader;
extern const cairn__reader_ops cairn__pickle_reader; /* plain pickle / joblib (inert mode) */
/* 1 when the input starts with PROTO 2..5 or a compressed joblib file's magic. */
int cairn__pickle_sniff(const cairn_file *f);
/* 1 when a ZIP input holds model.weights.h5 (a Keras 3 .keras archive). */
int cairn__keras_sniff(const cairn_file *f);
/* 1 when the input starts with torch's legacy magic-number pickle. */
int cairn__torch_legacy_sniff(const cairn_file *f);
/* 1 when `dir` holds a skorch checkpoint (params.pt, or one PREFIX with both
 * PREFIXparams.pt and PREFIXhistory.json). */
int cairn__skorch_sniff(const char *dir);

/* ------------------------------------------------------------ writing side */

typedef struct cairn__writer_ops {
    cairn_format format;
    /* Called once after the sink is ready; writes any header. */
    cairn_status (*begin)(cairn_writer *w, cairn_error *err);
    cairn_status (*add)(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                        const uint64_t *dims, const void *data, cairn_error *err);
    /* Optional (formats that compress): `add` with a codec, level and filter
     * already checked by writer.c. Formats without it refuse codecs. */
    cairn_status (*add_coded)(cairn_writer *w, const char *name, cairn_dtype dtype,
                              uint32_t rank, const uint64_t *dims, const void *data,
                              uint32_t codec, int32_t level, uint32_t filter, cairn_error *err);
    cairn_status (*add_alias)(cairn_writer *w, const char *name, const char *existing,
                              cairn_error *err);
    /* Optional (formats whose header depends on every tensor): called once by
     * cairn_writer_declare, before any add and after any metadata, with decls
     * writer.c has checked (names valid and unique, dtypes valid, ranks and
     * sizes in range). The format checks its own rules, lays the file out and
     * may write its header; every later add is of a declared tensor with its
     * declared dtype and dims, at most once (writer.c checks), and metadata
     * no longer changes. Formats without it just have their adds checked. */
    cairn_status (*declare)(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
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
    /* compression defaults of the save (cairn_write_opts, checked) */
    uint32_t codec, filter;
    int32_t level;
    uint64_t chunk_size;
    unsigned threads;
    int failed;         /* any error makes the writer unusable */
    /* sink */
    int fd;             /* -1 for memory */
    char *path;         /* target path (file), or "<memory>" */
    char *tmp_path;     /* temporary file being written */
    uint8_t *mem;       /* memory sink */
    size_t mem_len, mem_cap;
    uint64_t pos;       /* bytes written so far, counting pending_pad */
    uint64_t pending_pad; /* zero bytes not yet written: sent with the next write (file sink) */
    cairn_value *meta;  /* set by cairn_writer_set_metadata; handed to the format at commit */
    cairn_value *objects; /* cairn_writer_append_object's list, merged into meta at commit */
    void *state;        /* the format's own */
    int started;        /* a tensor or alias was added: too late for cairn_writer_declare */
    struct cairn__plan *plan; /* cairn_writer_declare's tensors (writer.c), or NULL */
};

/* Appends bytes to the sink (write loop with EINTR handling, or memory growth). */
cairn_status cairn__sink_write(cairn_writer *w, const void *data, size_t len, cairn_error *err);
/* Writes any padding held back by cairn__sink_pad. Call before touching
 * w->fd directly (copy_file_range, fchmod is fine). */
cairn_status cairn__sink_flush(cairn_writer *w, cairn_error *err);
/* Appends zero bytes until pos is a multiple of `alignment` (a power of two).
 * For file sinks small padding is held back and written together with the
 * next bytes. */
cairn_status cairn__sink_pad(cairn_writer *w, uint64_t alignment, cairn_error *err);
/* Overwrites bytes already written at [offset, offset + len) (a header field
 * whose value is known only at the end). */
cairn_status cairn__sink_patch(cairn_writer *w, uint64_t offset, const void *data, size_t len,
                               cairn_error *err);
/* Makes the output exactly `size` bytes (>= pos): zeros after what was
 * written (a hole in a file sink). For laid-out saves (ops->declare): the
 * header is written, the sink is extended to the final size, and payloads
 * go to their places with cairn__sink_place; nothing is appended after. */
cairn_status cairn__sink_extend(cairn_writer *w, uint64_t size, cairn_error *err);
/* Writes tensor `name`'s bytes at [offset, offset + len), inside the size
 * set by cairn__sink_extend (pwrite, or a copy into the memory sink). */
cairn_status cairn__sink_place(cairn_writer *w, uint64_t offset, const void *data, size_t len,
                               const char *name, cairn_error *err);
/* A writer to `path` with no format: the caller appends bytes with
 * cairn__sink_write and finishes with cairn_writer_commit, getting the same
 * temporary file, fsync, rename and directory fsync as every save (signing
 * rewrites files and writes manifests through it). `flags`:
 * CAIRN_WRITE_NO_SYNC or 0. */
cairn_status cairn__writer_open_raw(const char *path, unsigned flags, cairn_writer **out,
                                    cairn_error *err);

extern const cairn__writer_ops cairn__native_writer;
extern const cairn__writer_ops cairn__npy_writer;
extern const cairn__writer_ops cairn__safetensors_writer;
extern const cairn__writer_ops cairn__npz_writer;
extern const cairn__writer_ops cairn__gguf_writer;
extern const cairn__writer_ops cairn__torch_writer;
extern const cairn__writer_ops cairn__mxnet_writer;
extern const cairn__writer_ops cairn__hdf5_writer;

#endif /* CAIRN_ARCHIVE_H */
