/*
 * format.h -- the seam between the archive face (src/archive/) and the
 * formats (src/format/<family>/): the internal shape of an open file
 * (cairn_file) and of a writer (cairn_writer), and the operations each
 * format provides. A format sees this header, io/, codec/, container/ and
 * common/, never the dispatch (file.c, writer.c).
 *
 * Data flows one way: caller buffers -> cairn_writer (format ops) -> sink
 * (io/sink.h). Reading mirrors it: source (io/source.h) -> format ops -> a
 * table of tensors -> generic read/convert code in archive/read.c.
 *
 * The formats themselves are listed once, in registry.c (format/registry.h).
 */
#ifndef CAIRN_FORMAT_H
#define CAIRN_FORMAT_H

#include "common/internal.h"
#include "common/nameset.h"
#include "common/pool.h"
#include "io/sink.h"
#include "io/source.h"

#include <stddef.h>

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

/* Checks every byte of a file (cairn_file_verify), handed to a format that
 * wants to say where damage is. */
typedef cairn_status (*cairn__verify_all_fn)(const cairn_file *f, cairn_error *err);

typedef struct cairn__reader_ops {
    cairn_format format;
    /* Parses the structure of f (f->src is ready). Sets f->state. */
    cairn_status (*open)(cairn_file *f, cairn_error *err);
    /* close, count, tensor_at, find and file_info may be NULL when f->state
     * starts with a cairn__tensor_table (below): the table's generic ops
     * serve. The face calls them through cairn__reader_count & co. */
    void (*close)(cairn_file *f);
    uint64_t (*count)(const cairn_file *f);
    /* tensor_at and every later op taking an `index` (load, load_range,
     * verify_tensor, owner, read_box) are only ever called with
     * index < count(f): the face checks it once for every caller
     * (cairn__tensor_get), so formats do not repeat the check. */
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
    /* Optional (formats with a signature block): checks f's signature with
     * `public_key` (CAIRN_E_UNSIGNED, CAIRN_E_SIGNATURE, ...); verify_all
     * may be called to say where damage is. */
    cairn_status (*verify_signature)(const cairn_file *f, const uint8_t *public_key,
                                     cairn__verify_all_fn verify_all, cairn_error *err);
    /* Optional: writes a signed copy of f (which verified) to `out`. */
    cairn_status (*sign)(const cairn_file *f, const uint8_t *secret_key, cairn__sink *out,
                         cairn_error *err);
    /* Optional: cairn_tensor_read_box for archives that assemble tensors
     * from pieces (distributed checkpoint directories). Called with the
     * arguments checked (box in bounds, dst of the box's size as dtype). */
    cairn_status (*read_box)(const cairn_file *f, uint64_t index, const uint64_t *offset,
                             const uint64_t *extent, cairn_dtype dtype, void *dst,
                             unsigned flags, cairn_error *err);
} cairn__reader_ops;

struct cairn_file {
    const cairn__reader_ops *ops;
    char *path;  /* for messages; "<memory>" for memory inputs */
    unsigned flags;
    uint64_t max_inflate; /* cairn_open_opts.max_inflate with its default applied */
    unsigned threads;     /* cairn_open_opts.threads: decoding workers per read (0 = CPUs) */
    /* The CPU count for threads == 0, asked of the system on the first read
     * that can use workers and kept (0: not asked yet): sysconf reads a
     * sysfs file, too slow to repeat on every read of a small tensor. */
    _Atomic unsigned cpus;
    int has_public_key;   /* cairn_open_opts.public_key was given: verify on open */
    uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES];
    cairn__source src; /* io/source.h; src.path is `path` */
    void *state; /* the format's own */
};

/* ------------------------------------------------- packed tensor records */

/* Tensor records kept compactly for readers of files with many tensors: a
 * cairn__tensor is 192 bytes, a packed record its name (inline, with its
 * NUL) and the fields that are not zero as varints -- about 20 bytes more
 * than the name for a typical tensor -- followed by `tail` bytes of the
 * format's own (copied in and out; no alignment). Records live in 64 KiB
 * blocks that never move: a name handed out stays valid until the store is
 * freed. Index i is the i-th record added. */
typedef struct cairn__packed {
    uint8_t **blocks;
    size_t nblocks, blocks_cap;
    size_t used;  /* bytes used in the last block */
    uint64_t *at; /* per record: block << 32 | offset in it */
    uint64_t count, cap;
    size_t tail;
} cairn__packed;

void cairn__packed_init(cairn__packed *p, size_t tail);
/* Appends t (its name copied) and `tail` (p->tail bytes; NULL when 0).
 * CAIRN_E_NOMEM naming `path`. */
cairn_status cairn__packed_add(cairn__packed *p, const cairn__tensor *t, const void *tail,
                               const char *path, cairn_error *err);
/* Record i < count: the whole record (info.name points into the store), its
 * name only, or its tail (p->tail bytes into out). */
void cairn__packed_get(const cairn__packed *p, uint64_t i, cairn__tensor *out);
const char *cairn__packed_name(const cairn__packed *p, uint64_t i, size_t *len);
void cairn__packed_tail(const cairn__packed *p, uint64_t i, void *out);
void cairn__packed_free(cairn__packed *p);

/* ------------------------------------------------- a reader's tensor table */

/* The tensors most readers find, kept the same way: `count` records
 * `stride` bytes apart, each starting with a cairn__tensor (the format may
 * keep more after it); a way to find a name; and what cairn_file_info
 * reports. A reader whose state struct starts with a cairn__tensor_table
 * (offset 0, so f->state points at it) fills it when it opens and lists
 * leaves those ops NULL in its cairn__reader_ops instead of writing its own. */
typedef struct cairn__tensor_table {
    const void *records;
    size_t stride;
    uint64_t count;
    const cairn__packed *packed; /* instead of records and stride, when set */
    const size_t *order;         /* packed: table index -> record (NULL: the same) */
    /* Finding a name: through `index` (a nameset over record indexes whose
     * names `index_name` gives, with `ctx`), or else by binary search over
     * positions in name order: `sorted_name` gives the name at a position
     * (with `ctx`; NULL = the records' own names), `by_name` maps a position
     * to a record index (NULL = the records are in name order). */
    const cairn__nameset *index;
    cairn__name_fn index_name;
    cairn__sorted_name_fn sorted_name;
    const size_t *by_name;
    const void *ctx;
    const char *hint;      /* said after "no tensor 'x'" (in parentheses), or NULL */
    cairn_file_info info;  /* what file_info reports; tensor_count and file_size are
                              the table's count and the input's size */
    void (*free_state)(void *state); /* frees the whole state (cairn__table_close; NULL
                                        when the format has a close of its own) */
} cairn__tensor_table;

/* States that start with their table say so: CAIRN__TABLE_FIRST(my_reader); */
#define CAIRN__TABLE_FIRST(type) \
    _Static_assert(offsetof(type, table) == 0, #type " must start with its cairn__tensor_table")

/* Setting a table up once the reader has parsed: its records, count and
 * the function that frees the whole state (close calls it), then how names
 * are found (by default the records are in name order), then file_info's
 * answer. */
void cairn__table_init(cairn__tensor_table *t, const void *records, size_t stride,
                       uint64_t count, void (*free_state)(void *state));
/* The same over packed records (count: p->count): table index i is record
 * order[i] (order NULL: record i). */
void cairn__table_init_packed(cairn__tensor_table *t, const cairn__packed *p,
                              const size_t *order, void (*free_state)(void *state));
void cairn__table_index(cairn__tensor_table *t, const cairn__nameset *index,
                        cairn__name_fn name_at, const void *ctx);
void cairn__table_sorted(cairn__tensor_table *t, cairn__sorted_name_fn name_at,
                         const size_t *by_name, const void *ctx);
void cairn__table_info(cairn__tensor_table *t, cairn_format format, uint32_t version_major,
                       uint64_t payload, uint64_t raw, uint64_t alignment, int has_metadata);

/* The generic ops (f->state starts with a cairn__tensor_table). */
uint64_t cairn__table_count(const cairn_file *f);
cairn_status cairn__table_tensor_at(const cairn_file *f, uint64_t index, cairn__tensor *out,
                                    cairn_error *err);
cairn_status cairn__table_find(const cairn_file *f, const char *name, size_t len,
                               uint64_t *index, cairn_error *err);
cairn_status cairn__table_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err);
void cairn__table_close(cairn_file *f);
/* 1 and *index when `name` is in the table, else 0. */
int cairn__table_lookup(const cairn__tensor_table *t, const char *name, size_t len,
                        uint64_t *index);

/* The reader ops as the face calls them: a NULL op is the tensor table's. */
static inline void cairn__reader_close(cairn_file *f)
{
    (f->ops->close ? f->ops->close : cairn__table_close)(f);
}
static inline uint64_t cairn__reader_count(const cairn_file *f)
{
    return (f->ops->count ? f->ops->count : cairn__table_count)(f);
}
static inline cairn_status cairn__reader_tensor_at(const cairn_file *f, uint64_t index,
                                                   cairn__tensor *out, cairn_error *err)
{
    return (f->ops->tensor_at ? f->ops->tensor_at : cairn__table_tensor_at)(f, index, out, err);
}
static inline cairn_status cairn__reader_find(const cairn_file *f, const char *name, size_t len,
                                              uint64_t *index, cairn_error *err)
{
    return (f->ops->find ? f->ops->find : cairn__table_find)(f, name, len, index, err);
}
static inline cairn_status cairn__reader_file_info(const cairn_file *f, cairn_file_info *out,
                                                   cairn_error *err)
{
    return (f->ops->file_info ? f->ops->file_info : cairn__table_file_info)(f, out, err);
}

/* Pieces of readers that are the same in every format. */

/* *out = a deep copy of `tree` (an empty map when NULL), for read_metadata
 * ops whose tree was decoded at open. */
cairn_status cairn__metadata_copy(const cairn_file *f, const cairn_value *tree, cairn_value **out,
                                  cairn_error *err);
/* Decodes f's metadata through its read_metadata op and drops it: the step
 * of verify_structure that says the metadata is sound. Usable as the whole
 * verify_structure op. */
cairn_status cairn__metadata_check(const cairn_file *f, cairn_error *err);
/* 1 when two parses of a file gave one tensor the same name, dtype, shape
 * and byte range (verify_structure reparses: a pread input may change). */
int cairn__tensor_info_same(const cairn_tensor_info *a, const cairn_tensor_info *b);

/* The input's bytes, for formats: io/source.h on f->src. */
static inline cairn_status cairn__file_read(const cairn_file *f, uint64_t offset, void *dst,
                                            size_t len, cairn_error *err)
{
    return cairn__source_read(&f->src, offset, dst, len, err);
}
static inline const uint8_t *cairn__file_ptr(const cairn_file *f, uint64_t offset, uint64_t len)
{
    return cairn__source_ptr(&f->src, offset, len);
}

/* The workers a read of f may use: cairn_open_opts.threads, or the CPUs
 * (asked once per open file). Thread-safe: racing first calls store the
 * same count. */
static inline unsigned cairn__file_threads(const cairn_file *f)
{
    if (f->threads)
        return f->threads;
    unsigned n = atomic_load_explicit(&f->cpus, memory_order_relaxed);
    if (!n) {
        n = cairn__pool_workers(0, CAIRN__POOL_MAX);
        atomic_store_explicit(&((cairn_file *)f)->cpus, n, memory_order_relaxed);
    }
    return n;
}

/* A reader's ops table by the naming convention every format follows: its
 * functions share a prefix (st_, npz_, ...) and PREFIX_open parses. The
 * ops it has beyond the shared ones (see above) follow as designated
 * initializers:
 *
 *     const cairn__reader_ops cairn__npz_reader = CAIRN__READER_OPS(
 *         npz, CAIRN_FORMAT_NPZ, .load = npz_load, .verify_tensor = npz_verify_tensor);
 *
 * The table is then listed once, in registry.c's row of its format. */
#define CAIRN__READER_OPS(prefix, format_code, ...) \
    {.format = (format_code), .open = prefix##_open, __VA_ARGS__}

/* ------------------------------------------------------------ writing side */

typedef struct cairn__writer_ops {
    cairn_format format;
    /* 1 for composite writers (archive/compose_*.c) whose parts are saves of
     * their own: they get no sink and commit in `finish`. */
    int composite;
    /* Called once after the sink is ready; sets w->state up, writes any
     * header. */
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
    /* Formats without add_alias say why (writer.c refuses aliases with
     * CAIRN_E_UNSUPPORTED and these words). */
    const char *no_alias;
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
    /* Formats without set_metadata store no metadata and say why: writer.c
     * accepts an empty map and refuses any other with CAIRN_E_UNSUPPORTED
     * and "metadata: " and these words. */
    const char *no_metadata;
    /* Writes whatever follows the payloads (index, trailer). */
    cairn_status (*finish)(cairn_writer *w, cairn_error *err);
    /* Frees w->state and all it holds; writer.c calls it only with a state
     * (begin set it, even if begin failed half way). */
    void (*destroy)(cairn_writer *w);
} cairn__writer_ops;

/* A writer's ops table by the same convention: PREFIX_begin, PREFIX_add,
 * PREFIX_finish and PREFIX_destroy, then what the writer has of the other
 * ops (add_coded, add_alias or no_alias, declare, set_metadata or
 * no_metadata) as designated initializers. */
#define CAIRN__WRITER_OPS(prefix, format_code, ...)                                 \
    {.format = (format_code), .begin = prefix##_begin, .add = prefix##_add,        \
     .finish = prefix##_finish, .destroy = prefix##_destroy, __VA_ARGS__}

struct cairn_writer {
    const cairn__writer_ops *ops;
    unsigned flags;
    uint64_t alignment; /* default payload alignment */
    /* compression defaults of the save (cairn_write_opts, checked) */
    uint32_t codec, filter;
    int32_t level;
    uint64_t chunk_size;
    unsigned threads;
    uint64_t shard_size; /* cairn_write_opts.shard_size (composite shard writer) */
    int failed;         /* any error makes the writer unusable */
    char *path;         /* target path (file), or "<memory>"; sink.path borrows it */
    cairn__sink sink;   /* io/sink.h: file (temporary until commit), memory or remote */
    cairn_value *meta;  /* set by cairn_writer_set_metadata; handed to the format at commit */
    cairn_value *objects; /* cairn_writer_append_object's list, merged into meta at commit */
    void *state;        /* the format's own */
    int started;        /* a tensor or alias was added: too late for cairn_writer_declare */
    struct cairn__plan *plan; /* cairn_writer_declare's tensors (writer.c), or NULL */
    /* Names of the tensors and aliases added (writer.c): every add reaching a
     * format has a name not added before. */
    struct cairn__added *added;
    /* The native writer's index_hash, set by its finish (cairn_writer_commit_id). */
    uint64_t index_hash;
    int has_index_hash;
};



#endif /* CAIRN_FORMAT_H */
