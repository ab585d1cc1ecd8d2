/*
 * cairn.h -- the one public header of libcairn.
 *
 * cairn saves, loads and checkpoints machine-learning models: named tensors
 * plus a typed metadata tree, in a documented format (docs/FORMAT.md) and in
 * the formats people already have (NumPy .npy and .npz, safetensors, GGUF).
 *
 * Conventions that hold for every function below:
 *   - Every fallible function returns a cairn_status. CAIRN_OK is 0.
 *   - Every fallible function takes a `cairn_error *err` as its last argument.
 *     It may be NULL. When it is not NULL and the call fails, err->status and
 *     err->message describe the failure (file, object, field, offset). The
 *     struct lives in caller memory, so error reporting is thread-safe.
 *   - On failure every out-parameter is set to NULL / 0.
 *   - Destructors (cairn_*_free, cairn_*_close, cairn_writer_abort) accept NULL.
 *   - Ownership is stated at each pointer crossing: "borrowed" means the
 *     pointer stays valid until the named handle is closed; "copied" means
 *     cairn keeps its own copy and the caller may reuse its memory at once.
 *   - Nothing in the library calls exit() or abort(), prints, or keeps global
 *     mutable state, except one process-wide mutex that serializes cairn's
 *     calls into libhdf5, whose own state is process-wide (docs/FORMAT.md
 *     §17.5).
 *
 * Thread safety: a cairn_file may be read from any number of threads at once
 * (all read functions take a const handle and use pread / the mapping). A
 * cairn_writer and a cairn_value tree belong to one thread at a time.
 * Compression and decompression of chunked tensors use worker threads that a
 * call starts and joins before it returns (cairn_write_opts.threads,
 * cairn_open_opts.threads): no thread outlives the call that made it, and no
 * pool or context is shared between calls.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CAIRN_API
#elif defined(__GNUC__)
#define CAIRN_API __attribute__((visibility("default")))
#else
#define CAIRN_API
#endif

/* ---------------------------------------------------------------- version */

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"

/* The newest native format version this library writes (docs/FORMAT.md). It
 * reads every minor version of this major and refuses a newer major. Files
 * without compressed tensors or a signature are written as 1.0, byte for
 * byte as before 1.1 existed; a compressed tensor or a signature block makes
 * a file 1.1. */
#define CAIRN_FORMAT_MAJOR 1
#define CAIRN_FORMAT_MINOR 1

/* The library version as "MAJOR.MINOR.PATCH"; compare with CAIRN_VERSION_STRING
 * to detect a header/library mismatch. */
CAIRN_API const char *cairn_version(void);

/* ----------------------------------------------------------------- errors */

/* Values are pinned forever: new statuses are added at the end. */
typedef enum cairn_status {
    CAIRN_OK = 0,
    CAIRN_E_ARG = 1,         /* a bad argument from the caller (NULL, bad name, bad rank) */
    CAIRN_E_NOMEM = 2,       /* an allocation failed */
    CAIRN_E_IO = 3,          /* the operating system refused a read/write/fsync/rename */
    CAIRN_E_CORRUPT = 4,     /* the input is malformed or truncated */
    CAIRN_E_UNSUPPORTED = 5, /* well-formed, but uses something this library does not do
                                (newer major version, unknown codec, object dtype, ...) */
    CAIRN_E_NOT_FOUND = 6,   /* no tensor / key of that name */
    CAIRN_E_LIMIT = 7,       /* exceeds a normative resource limit (docs/FORMAT.md §7) */
    CAIRN_E_CHECKSUM = 8,    /* stored bytes do not match their checksum */
    CAIRN_E_DTYPE = 9,       /* a dtype conversion that is not allowed (narrowing ints, ...) */
    CAIRN_E_EXISTS = 10,     /* a name that is already present */
    CAIRN_E_STATE = 11,      /* the handle is in the wrong state (writer committed or failed) */
    CAIRN_E_FORMAT = 12,     /* the input is not in any format cairn knows */
    CAIRN_E_SIZE = 13,       /* a caller buffer has the wrong size */
    CAIRN_E_MISMATCH = 14,   /* a strict load found missing, unexpected or mismatched tensors */
    CAIRN_E_SIGNATURE = 15,  /* a signature does not verify: a wrong key, or bytes changed
                                since signing (the message says which) */
    CAIRN_E_UNSIGNED = 16,   /* a signature was asked for and the input carries none */
    CAIRN_E_BUSY = 17,       /* another process holds the lock (a checkpoint directory's writer) */
    CAIRN_E_AUTH = 18        /* an object store refused the credentials or the access: a wrong
                                key or secret, a bad signature, an expired session token, no
                                permission (docs/STORAGE.md); retrying will not help */
} cairn_status;

#define CAIRN_ERROR_MESSAGE_MAX 512

typedef struct cairn_error {
    cairn_status status;
    char message[CAIRN_ERROR_MESSAGE_MAX]; /* NUL-terminated, human readable */
} cairn_error;

/* A static, never-allocated description of a status ("corrupt input"). */
CAIRN_API const char *cairn_strerror(cairn_status status);

/* Frees memory that cairn handed to the caller (cairn_writer_commit_memory's
 * buffer, cairn_value_to_json's string). NULL is a no-op. */
CAIRN_API void cairn_free(void *ptr);

/* ----------------------------------------------------------------- dtypes */

/* Values are pinned forever and are the on-disk codes of docs/FORMAT.md §5. */
typedef enum cairn_dtype {
    CAIRN_DTYPE_INVALID = 0,
    CAIRN_F64 = 1,
    CAIRN_F32 = 2,
    CAIRN_F16 = 3,     /* IEEE 754 binary16 */
    CAIRN_BF16 = 4,    /* bfloat16: the top 16 bits of a binary32 */
    CAIRN_F8_E4M3 = 5, /* OCP FP8 E4M3 "fn": no infinities, NaN = S.1111.111, max 448 */
    CAIRN_F8_E5M2 = 6, /* OCP FP8 E5M2: IEEE-like, has Inf and NaN, max 57344 */
    CAIRN_I8 = 7,
    CAIRN_I16 = 8,
    CAIRN_I32 = 9,
    CAIRN_I64 = 10,
    CAIRN_U8 = 11,
    CAIRN_U16 = 12,
    CAIRN_U32 = 13,
    CAIRN_U64 = 14,
    CAIRN_BOOL = 15,   /* one byte, 0 or 1 */
    CAIRN_C64 = 16,    /* two F32: real, imaginary */
    CAIRN_C128 = 17    /* two F64: real, imaginary */
} cairn_dtype;

#define CAIRN_DTYPE_COUNT 18 /* one past the largest valid code */
#define CAIRN_MAX_RANK 8

/* Bytes per element, or 0 for an invalid code. */
CAIRN_API size_t cairn_dtype_size(cairn_dtype dtype);
/* Canonical upper-case name ("F32", "BF16", "F8_E4M3"), or NULL if invalid. */
CAIRN_API const char *cairn_dtype_name(cairn_dtype dtype);
/* Parses a canonical name (case-insensitive); CAIRN_DTYPE_INVALID if unknown. */
CAIRN_API cairn_dtype cairn_dtype_from_name(const char *name);
/* Whether cairn_tensor_read / cairn_convert may turn `from` into `to`:
 * the same dtype; any float type to any other float type (F64 F32 F16 BF16
 * F8_E4M3 F8_E5M2; rounding to nearest, ties to even; NaN and Inf kept, and
 * a value too large for the target becomes Inf, or NaN for F8_E4M3 which has
 * no Inf; widening keeps a NaN's sign and payload and sets its quiet bit);
 * C64 <-> C128; an integer or BOOL to a wider integer that holds every value
 * (I8 -> I16, U8 -> I16 or U16, ...; BOOL reads any non-zero byte as 1); and
 * an integer to a float type that holds every value exactly (I8/U8/BOOL ->
 * F16/BF16/F32/F64, I16/U16 -> F32/F64, I32/U32 -> F64). No integer converts
 * to FP8. Everything else (narrowing integers, float to integer) is refused. */
CAIRN_API int cairn_dtype_can_convert(cairn_dtype from, cairn_dtype to);
/* Converts `count` elements. Both buffers are little-endian, C order and must
 * not overlap. Returns CAIRN_E_DTYPE if the conversion is not allowed. */
CAIRN_API cairn_status cairn_convert(cairn_dtype from, const void *src, cairn_dtype to, void *dst,
                                     size_t count, cairn_error *err);

/* ---------------------------------------------------------- metadata tree */

/* A typed tree: what a checkpoint says about itself (config, history, ...).
 * Maps keep insertion order and have unique keys. Strings and keys are UTF-8.
 * A node belongs to at most one parent; adding a node to a parent transfers
 * ownership to the parent. */
typedef enum cairn_value_type {
    CAIRN_VALUE_NULL = 0,
    CAIRN_VALUE_BOOL = 1,
    CAIRN_VALUE_INT = 2,    /* int64 */
    CAIRN_VALUE_FLOAT = 3,  /* float64; NaN (payload kept), +-Inf and -0.0 round-trip exactly */
    CAIRN_VALUE_STRING = 4, /* UTF-8, may contain NUL bytes (length is explicit) */
    CAIRN_VALUE_BYTES = 5,  /* raw bytes */
    CAIRN_VALUE_LIST = 6,
    CAIRN_VALUE_MAP = 7,
    CAIRN_VALUE_TENSOR = 8  /* a reference, by name, to a tensor of the same archive */
} cairn_value_type;

typedef struct cairn_value cairn_value;

/* Constructors return NULL only when memory runs out (or, for strings, keys
 * and tensor references, when the text is not valid UTF-8). Text is copied. */
CAIRN_API cairn_value *cairn_value_null(void);
CAIRN_API cairn_value *cairn_value_bool(int b);
CAIRN_API cairn_value *cairn_value_int(int64_t i);
CAIRN_API cairn_value *cairn_value_float(double d);
CAIRN_API cairn_value *cairn_value_string(const char *s);                 /* NUL-terminated */
CAIRN_API cairn_value *cairn_value_string_n(const char *s, size_t len);
CAIRN_API cairn_value *cairn_value_bytes(const void *data, size_t len);
CAIRN_API cairn_value *cairn_value_tensor_ref(const char *tensor_name);
CAIRN_API cairn_value *cairn_value_list(void);
CAIRN_API cairn_value *cairn_value_map(void);
/* Frees a node and everything under it. NULL is a no-op. Do not free a node
 * that belongs to a parent. */
CAIRN_API void cairn_value_free(cairn_value *v);
/* A deep copy, or NULL when memory runs out. */
CAIRN_API cairn_value *cairn_value_clone(const cairn_value *v);

CAIRN_API cairn_value_type cairn_value_get_type(const cairn_value *v);
/* Scalar accessors return CAIRN_E_ARG when the node has another type. */
CAIRN_API cairn_status cairn_value_get_bool(const cairn_value *v, int *out);
CAIRN_API cairn_status cairn_value_get_int(const cairn_value *v, int64_t *out);
CAIRN_API cairn_status cairn_value_get_float(const cairn_value *v, double *out);
/* STRING, BYTES and TENSOR nodes: a borrowed pointer (valid while the node
 * lives) and its length. Strings and tensor names are also NUL-terminated. */
CAIRN_API cairn_status cairn_value_get_data(const cairn_value *v, const void **data, size_t *len);

/* Lists and maps: number of children (0 for other types). */
CAIRN_API size_t cairn_value_count(const cairn_value *v);
/* Lists and maps: the i-th child in order (borrowed), or NULL if out of range.
 * Trees read from files keep long lists of numbers or strings compactly (one
 * array, not a node per item); the first cairn_value_at on such a list gives
 * each item its node, which allocates (NULL if that runs out of memory).
 * cairn_value_to_json and saving a tree read the compact form in place. */
CAIRN_API const cairn_value *cairn_value_at(const cairn_value *v, size_t i);
/* Lists and maps: a new node copying the i-th child when it is a scalar
 * (null, bool, int, float, string, bytes, tensor reference; the caller
 * frees it), made without giving the other items of a compact list nodes;
 * NULL when the child is a list or a map (cairn_value_at never allocates
 * for those), out of range, or out of memory. For walking long lists read
 * from files in constant memory. */
CAIRN_API cairn_value *cairn_value_scalar_at(const cairn_value *v, size_t i);
/* Maps: the i-th key (borrowed, NUL-terminated), or NULL. */
CAIRN_API const char *cairn_value_key_at(const cairn_value *v, size_t i);
/* Maps: the child under `key` (borrowed), or NULL. Linear in the map size. */
CAIRN_API const cairn_value *cairn_value_get(const cairn_value *v, const char *key);

/* Appends `child` to a list. Takes ownership of `child` on success; on
 * failure the caller still owns it. */
CAIRN_API cairn_status cairn_value_append(cairn_value *list, cairn_value *child, cairn_error *err);
/* Sets `key` in a map to `child`: replaces (and frees) the old value in place
 * if the key exists, or appends. Ownership as cairn_value_append. */
CAIRN_API cairn_status cairn_value_set(cairn_value *map, const char *key, cairn_value *child,
                                       cairn_error *err);

/* Renders the tree as JSON (UTF-8, NUL-terminated, caller frees with
 * cairn_free). JSON cannot hold everything the tree holds, so these are
 * written as tagged objects (docs/FORMAT.md §6.3):
 *   NaN / Inf / -Inf        {"$float": "nan" | "inf" | "-inf"}  (a NaN with a
 *                           non-default payload: {"$float": "nan:0x7ff8000000000001"})
 *   -0.0                    {"$float": "-0"}
 *   bytes                   {"$bytes": "<base64>"}
 *   tensor reference        {"$tensor": "<name>"}
 * Integers are printed exactly. `indent` = 0 gives one line. */
CAIRN_API cairn_status cairn_value_to_json(const cairn_value *v, int indent, char **out_json,
                                           cairn_error *err);

/* --------------------------------------------------------------- formats */

typedef enum cairn_format {
    CAIRN_FORMAT_AUTO = 0,   /* reading: detect by content; writing: by file extension */
    CAIRN_FORMAT_NATIVE = 1, /* .cairn, docs/FORMAT.md */
    CAIRN_FORMAT_NPY = 2,    /* NumPy .npy: exactly one tensor */
    CAIRN_FORMAT_SAFETENSORS = 3, /* .safetensors (docs/FORMAT.md §11): no checksums, no
                                     aliases, no C128; a save spools payloads and copies
                                     them once more behind the header at commit, unless
                                     the tensors were declared (cairn_writer_declare).
                                     Opening a model.safetensors.index.json (detection
                                     only) reads a sharded model as one archive (§11.6;
                                     not writable) */
    CAIRN_FORMAT_NPZ = 4,    /* NumPy .npz (docs/FORMAT.md §12): a ZIP of .npy members; CRC-32
                                checksums; no metadata, no aliases, no BF16/FP8 */
    CAIRN_FORMAT_GGUF = 5,   /* GGUF v2/v3 (docs/FORMAT.md §13): dims reversed from
                                ggml's ne; block-quantized types read as U8 rows; typed
                                key-value metadata under the tree's "gguf" key */
    CAIRN_FORMAT_TORCH = 6,  /* PyTorch .pt/.pth (torch.save's ZIP + pickle): writing, see
                                docs/FORMAT.md "PyTorch .pt (write)": without metadata an
                                OrderedDict state_dict {name: tensor} in insertion order;
                                with a metadata tree, the tree as nested dicts/lists with
                                tensor references resolved to tensors, and tensors the tree
                                does not reference under a top-level "tensors" OrderedDict.
                                Aliases share one storage. No FP8, U16, U32, U64.
                                Reading (docs/FORMAT.md "PyTorch .pt (read)"): ZIP and
                                legacy files through a restricted pickle reader that runs
                                nothing (only tensors, storages, plain containers and a
                                fixed list of torch globals; anything else is refused,
                                naming it); tensors are named by their path in the saved
                                object ("model.0.weight", "optimizer.state.0.exp_avg"),
                                and the object is the metadata tree with tensor references.
                                A skorch checkpoint directory opens as one archive */
    CAIRN_FORMAT_MXNET = 7,  /* MXNet nd.save .params (docs/FORMAT.md §16):
                                list and dict forms, V1/V2/V3 records, every dense dtype;
                                a list's arrays are named "0", "1", ...; a sparse array
                                reads as NAME.data plus NAME.indices (row_sparse) or
                                NAME.indptr and NAME.indices (csr). No metadata, aliases,
                                FP8 or complex */
    CAIRN_FORMAT_HDF5 = 8    /* HDF5 through libhdf5 (docs/FORMAT.md §17): every dataset
                                of a cairn dtype is a tensor named by its path ("g/w");
                                attributes are the tree's "GROUPPATH@ATTR" keys; Keras
                                legacy weights come in Keras' order; a Keras 3 .keras
                                archive opens as one archive with "config" and
                                "metadata" in the tree. No zero-copy views; external
                                links, external storage and virtual datasets are
                                refused. libhdf5 is not thread-safe: cairn serializes
                                its own calls, and other libhdf5 users of the process
                                must not run at the same time */,
    CAIRN_FORMAT_PICKLE = 9, /* a plain pickle or joblib file (docs/FORMAT.md, "Pickle and
                                joblib as inert data"): read only with CAIRN_OPEN_INERT;
                                reading only, no tensors (arrays stay bytes in the tree) */
    CAIRN_FORMAT_JSON = 10   /* .json (docs/FORMAT.md §19): one JSON document with every
                                tensor's name, dtype, shape and values as nested lists,
                                and the metadata tree; values round-trip bit for bit
                                (NaN, Inf, -0, 64-bit integers, F16/BF16/FP8 included).
                                No aliases, no zero-copy views */
} cairn_format;

/* "cairn", "npy", "safetensors", "npz", "gguf", "torch", "mxnet", "hdf5",
 * "pickle", "json"; "auto" for CAIRN_FORMAT_AUTO; NULL if unknown. */
CAIRN_API const char *cairn_format_name(cairn_format format);
/* The format named `name` (as cairn_format_name gives it, or "native"),
 * in any case; CAIRN_FORMAT_AUTO when no format has that name. */
CAIRN_API cairn_format cairn_format_from_name(const char *name);
/* The file extensions by which a path writer picks `format` with
 * CAIRN_FORMAT_AUTO, space-separated, the usual one first (".pt .pth");
 * NULL when cairn reads `format` but does not write it, or it is unknown.
 * The string is static. */
CAIRN_API const char *cairn_format_extensions(cairn_format format);

/* ---------------------------------------------------------------- reading */

typedef struct cairn_file cairn_file;

/* Flags for cairn_open_opts.flags. */
#define CAIRN_OPEN_VERIFY 0x1u  /* verify every tensor's checksum during open */
#define CAIRN_OPEN_NO_MMAP 0x2u /* read with pread only; zero-copy views unavailable */
/* pickle/joblib files are read as inert data: every global, REDUCE, NEWOBJ
 * and BUILD becomes a plain {"$class", "args", "state"} node of the metadata
 * tree and nothing is ever called. Without it such files are refused, naming
 * the first global cairn does not know. */
#define CAIRN_OPEN_INERT 0x4u

/* Every options struct (cairn_open_opts, cairn_write_opts,
 * cairn_tensor_opts, cairn_load_opts, cairn_model_parts, cairn_ckpt_opts)
 * starts with struct_size = sizeof the struct, so fields can be appended:
 * the library reads only the first struct_size bytes and takes the default
 * (0 / NULL unless the field says otherwise) for every field past them, so a
 * program built against an older header keeps working. A struct_size that
 * does not reach the end of the first field after it is CAIRN_E_ARG. */
typedef struct cairn_open_opts {
    size_t struct_size; /* sizeof(cairn_open_opts): lets fields be added later */
    unsigned flags;
    cairn_format format; /* CAIRN_FORMAT_AUTO to detect */
    /* Compressed members (.npz deflate, docs/FORMAT.md §12.3): a member may
     * declare at most max(max_inflate, min(100 x its compressed size, 4 x
     * the archive's size)) bytes once inflated; a larger one fails the open
     * with CAIRN_E_LIMIT, naming it and its sizes, before anything is
     * inflated or allocated. So small archives of any ratio and large ones
     * of real data open, while a zip bomb (100 MiB of zeros in 100 KB) is
     * refused, and what a member can cost is set by the bytes the file
     * holds. 0 = CAIRN_MAX_INFLATE_DEFAULT; UINT64_MAX
     * = no limit (deflate's own 1032:1 bound still applies). The same
     * limit bounds .pt views that repeat elements (torch's expand, stride
     * 0): together they may read as max(max_inflate, 100 x the storage
     * bytes the file holds) bytes (docs/FORMAT.md §14.4). Compressed
     * tensors of the native format are not subject to it: every chunk
     * declares its raw size (at most 16 MiB) and decodes into exactly that
     * much memory (docs/FORMAT.md §4.2). */
    uint64_t max_inflate;
    /* Worker threads for one read: they decompress the chunks of a
     * compressed native tensor, and share plain copies of 4 MiB or more
     * (cairn_tensor_read into the caller's buffer, 1 MiB slices: on a warm
     * cache the kernel's copy and the faults of fresh memory scale with
     * cores). 0 = one per online CPU, 1 = none (the calling thread does all
     * the work). Each read starts and joins its own workers, so reads of one
     * cairn_file from many threads stay independent. */
    unsigned threads;
    /* An ed25519 public key (CAIRN_PUBLIC_KEY_BYTES bytes, copied), or NULL.
     * When set, open verifies the file's signature (docs/FORMAT.md §8,
     * cairn_file_verify_signature) and fails with CAIRN_E_UNSIGNED when the
     * file carries none, CAIRN_E_SIGNATURE when it does not verify. Only
     * the native format is signed: other formats fail with
     * CAIRN_E_UNSUPPORTED. */
    const uint8_t *public_key;
} cairn_open_opts;

#define CAIRN_MAX_INFLATE_DEFAULT (UINT64_C(64) << 20) /* 64 MiB */

/* Opens a file. For the native format this reads and checks the trailer and
 * the index (every record's bounds, names, sort order) and nothing else: the
 * cost does not depend on tensor sizes. `opts` may be NULL for defaults.
 *
 * The file is mapped read-only (falling back to pread when mapping fails).
 * As with any mapping, if another process truncates the file while it is
 * open, touching a zero-copy view raises SIGBUS; cairn's own saves never do
 * that (they replace files by rename), but for files that others may shrink
 * in place, open with CAIRN_OPEN_NO_MMAP.
 *
 * `path` may be an object URL, "s3://bucket/key" (docs/STORAGE.md): the open
 * costs one ranged GET (the object's size and its last 256 KiB, which hold a
 * native file's trailer and index), plus one for the header of a
 * header-first format; tensors are then read by ranged GETs. Tensors of a
 * remote file have no zero-copy view, unless the whole object fit in that
 * first GET.
 *
 * `path` may also be a directory holding a skorch checkpoint (params.pt, and
 * optimizer.pt, criterion.pt, history.json as skorch's Checkpoint writes
 * them, with one common file name prefix such as "train_end_"): it opens as
 * one CAIRN_FORMAT_TORCH archive whose tensors are named "params.NAME",
 * "optimizer.NAME", "criterion.NAME" and whose metadata tree holds each
 * file's tree under "params", "optimizer", "criterion" and history.json
 * under "history" (docs/FORMAT.md "PyTorch .pt (read)"). Its tensors have no
 * zero-copy view. Any other directory is CAIRN_E_IO ("not a regular file"). */
CAIRN_API cairn_status cairn_file_open(const char *path, const cairn_open_opts *opts,
                                       cairn_file **out, cairn_error *err);
/* Opens bytes in memory. The buffer is borrowed until cairn_file_close and
 * must not change meanwhile. */
CAIRN_API cairn_status cairn_file_open_memory(const void *data, size_t size,
                                              const cairn_open_opts *opts, cairn_file **out,
                                              cairn_error *err);
CAIRN_API void cairn_file_close(cairn_file *f);

typedef struct cairn_file_info {
    cairn_format format;
    uint32_t version_major, version_minor; /* of the file's format */
    uint64_t tensor_count;
    uint64_t file_size;
    uint64_t payload_bytes; /* sum of stored sizes, each shared payload counted once */
    uint64_t alignment;     /* largest tensor alignment in the file (1 if none) */
    int has_metadata;
    /* Fields below are filled by the native reader (other formats leave them
     * 0: their raw bytes are their payload bytes). */
    uint64_t raw_bytes;          /* sum of raw sizes, each shared payload counted once */
    uint64_t compressed_tensors; /* records with a codec (aliases included) */
    int is_signed;               /* a native file with a signature block (not yet verified) */
    uint8_t key_id[8];           /* the signing key's id (CAIRN_KEY_ID_BYTES), if is_signed */
} cairn_file_info;

CAIRN_API cairn_status cairn_file_get_info(const cairn_file *f, cairn_file_info *out,
                                           cairn_error *err);
CAIRN_API uint64_t cairn_file_count(const cairn_file *f);
/* The path given to open, or "<memory>". Borrowed. */
CAIRN_API const char *cairn_file_path(const cairn_file *f);

/* Codecs of compressed native tensors (docs/FORMAT.md §4.1); values are the
 * on-disk codes and are pinned. */
#define CAIRN_CODEC_NONE 0
#define CAIRN_CODEC_ZSTD 1 /* levels 1..19, default 3 */
#define CAIRN_CODEC_LZ4 2  /* level 1 = fast; 2..12 = LZ4 HC at that level; default 1 */
#define CAIRN_CODEC_ZLIB 3 /* deflate in a zlib stream; levels 1..9, default 6 */
#define CAIRN_CODEC_BZ2 4  /* bzip2; levels 1..9 (block size x 100 kB), default 9 */
/* Filters applied to each chunk before the codec. */
#define CAIRN_FILTER_NONE 0
#define CAIRN_FILTER_SHUFFLE 1 /* byte shuffle: byte k of every element, then byte k+1 ... */

/* "none", "zstd", "lz4", "zlib", "bz2"; NULL for an unknown code. */
CAIRN_API const char *cairn_codec_name(uint32_t codec);
/* Parses "CODEC[:LEVEL]" ("zstd", "zstd:19", "lz4", "lz4hc" = "lz4:9", "zlib:1",
 * "bz2", "none"), checking the level against the codec's range. *level is 0
 * when no level is given (the codec's default). CAIRN_E_ARG with a message
 * naming the codecs and ranges otherwise. */
CAIRN_API cairn_status cairn_codec_parse(const char *spec, uint32_t *codec, int32_t *level,
                                         cairn_error *err);

typedef struct cairn_tensor_info {
    const char *name;    /* borrowed until close; UTF-8; NUL-terminated */
    size_t name_len;     /* bytes, without the NUL */
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK]; /* dims[rank..] are 0 */
    uint64_t count;                /* elements: product of dims (1 for rank 0) */
    uint64_t raw_size;             /* count * dtype size */
    uint64_t stored_size;          /* bytes in the file */
    uint64_t offset;               /* file offset of the stored bytes (in the shard
                                      that holds them, for a sharded index) */
    uint64_t alignment;            /* of `offset`, as recorded */
    uint32_t codec;                /* CAIRN_CODEC_*; NONE for every format but native 1.1 */
    int has_checksum;
    uint64_t checksum;             /* xxh3-64 of the stored bytes, if has_checksum */
    int zero_copy;                 /* cairn_tensor_data works for this tensor */
    /* Compressed native tensors (codec != NONE); all 0 otherwise. */
    uint32_t filter;               /* CAIRN_FILTER_* */
    int32_t level;                 /* the level it was written with (informational) */
    uint64_t chunk_size;           /* raw bytes per chunk (the last may be shorter) */
    uint64_t chunk_count;
} cairn_tensor_info;

/* Tensors are indexed 0..count-1; in the native format, in name order. */
CAIRN_API cairn_status cairn_tensor_info_at(const cairn_file *f, uint64_t index,
                                            cairn_tensor_info *out, cairn_error *err);
/* Finds a tensor by name (binary search in the native index). CAIRN_E_NOT_FOUND
 * if absent. `index` may be NULL. */
CAIRN_API cairn_status cairn_tensor_find(const cairn_file *f, const char *name, uint64_t *index,
                                         cairn_tensor_info *out, cairn_error *err);
/* A zero-copy pointer to the stored bytes, borrowed until cairn_file_close.
 * Only when info.zero_copy (mapped file or memory, uncompressed, little-endian,
 * C order); otherwise CAIRN_E_UNSUPPORTED and the caller uses cairn_tensor_read. */
CAIRN_API cairn_status cairn_tensor_data(const cairn_file *f, uint64_t index, const void **data,
                                         cairn_error *err);

/* Flags for cairn_tensor_read. */
#define CAIRN_READ_VERIFY 0x1u /* check the stored bytes against their checksum */

/* Copies a tensor into `dst` (little-endian, C order) as `dtype`, converting
 * per cairn_dtype_can_convert. `dst_size` must equal count * size of `dtype`
 * (CAIRN_E_SIZE otherwise). With CAIRN_READ_VERIFY a checksum mismatch gives
 * CAIRN_E_CHECKSUM (dst content is then unspecified). */
CAIRN_API cairn_status cairn_tensor_read(const cairn_file *f, uint64_t index, cairn_dtype dtype,
                                         void *dst, size_t dst_size, unsigned flags,
                                         cairn_error *err);
/* Copies `count` elements of tensor `index`, starting at element `first`, in
 * C (row-major) order, into `dst` as `dtype` (converting as cairn_tensor_read
 * does): element i of the flattened tensor is dst element i - first. A row of
 * a matrix [R, C] is first = r * C, count = C; rows r0..r1 are first = r0 * C,
 * count = (r1 - r0) * C. `first + count` must not exceed the tensor's element
 * count (CAIRN_E_ARG) and `dst_size` must equal count * size of `dtype`
 * (CAIRN_E_SIZE); count 0 is a no-op that still checks its arguments.
 * Works for every format and reads no more than it must:
 *   - uncompressed, little-endian, C-order bytes (native, safetensors, GGUF,
 *     .npy, stored .npz members): only the range's bytes;
 *   - compressed native tensors: only the chunks that hold the range, each
 *     checked against its own checksum and decoded in parallel;
 *   - big-endian .npy: the range, swapped;
 *   - HDF5 datasets: the hyperslabs that hold the range (libhdf5 decodes
 *     the chunks they touch);
 *   - Fortran-order .npy and deflated .npz members, which have no C-order
 *     byte range: the whole tensor, staged in a temporary buffer.
 * CAIRN_READ_VERIFY checks the tensor's checksum over all its stored bytes
 * for uncompressed tensors (so it reads the whole tensor), and is implied
 * for compressed ones, whose every chunk is checked before it is decoded. */
CAIRN_API cairn_status cairn_tensor_read_range(const cairn_file *f, uint64_t index,
                                               uint64_t first, uint64_t count,
                                               cairn_dtype dtype, void *dst, size_t dst_size,
                                               unsigned flags, cairn_error *err);
/* 1 when cairn_tensor_read_range reads tensor `index` a range at a time
 * (every case listed above but the staged ones: Fortran-order .npy,
 * deflated .npz members, and tensors only their format produces whole:
 * deflated or strided .pt storages, JSON, pickle), so a caller can walk a
 * large tensor in slices in bounded memory; 0 when each range read stages
 * the whole tensor, or when `f` is NULL or `index` out of range. */
CAIRN_API int cairn_tensor_ranged(const cairn_file *f, uint64_t index);
/* Copies the box of tensor `index` whose corner is `offset` and whose size
 * is `extent` (`rank` entries each, global coordinates; both may be NULL for
 * a rank-0 tensor) into `dst` as `dtype`, converting as cairn_tensor_read
 * does: dst holds the box in C order, extent[0] x ... x extent[rank-1]
 * elements, and `dst_size` must be that many times the size of `dtype`
 * (CAIRN_E_SIZE); the box must lie inside the tensor (CAIRN_E_ARG); an
 * empty box (an extent of 0) is a no-op. Works for every format, reading
 * the longest runs that are contiguous in both the tensor and the box with
 * cairn_tensor_read_range (so a row block of an uncompressed tensor is one
 * read). On a distributed checkpoint directory (docs/DISTRIBUTED.md) it
 * reads only the saved pieces that meet the box, from the rank files that
 * hold them, and checks that those pieces tile the box exactly.
 * CAIRN_READ_VERIFY checks the checksums of every piece read. */
CAIRN_API cairn_status cairn_tensor_read_box(const cairn_file *f, uint64_t index,
                                             const uint64_t *offset, const uint64_t *extent,
                                             cairn_dtype dtype, void *dst, size_t dst_size,
                                             unsigned flags, cairn_error *err);
/* Checks one tensor's stored bytes against its checksum. */
CAIRN_API cairn_status cairn_tensor_verify(const cairn_file *f, uint64_t index, cairn_error *err);
/* Checks every byte of the file: header, trailer, index, every payload's
 * checksum, payload overlaps and the metadata encoding. The message names the
 * first bad tensor or structure. */
CAIRN_API cairn_status cairn_file_verify(const cairn_file *f, cairn_error *err);

/* Decodes the metadata tree. The caller owns *out (cairn_value_free). A file
 * without metadata gives an empty map. */
CAIRN_API cairn_status cairn_file_read_metadata(const cairn_file *f, cairn_value **out,
                                                cairn_error *err);

/* ---------------------------------------------------------------- writing */

typedef struct cairn_writer cairn_writer;

/* Flags for cairn_write_opts.flags. */
#define CAIRN_WRITE_NO_SYNC 0x1u /* skip fsync (faster; a crash may lose the new file,
                                    never the old one: the rename is still atomic) */
#define CAIRN_WRITE_NO_REPLACE 0x4u /* commit never replaces an existing file: if the
                                       target exists, cairn_writer_commit fails with
                                       CAIRN_E_EXISTS and the file is left as it was; of
                                       two writers of one path exactly one wins (s3://:
                                       If-None-Match: *) */
#define CAIRN_WRITE_COMPRESS 0x2u /* .npz members are deflated (np.savez_compressed);
                                     other formats ignore the flag (the native format's
                                     compression is cairn_write_opts.codec) */

typedef struct cairn_write_opts {
    size_t struct_size;  /* sizeof(cairn_write_opts) */
    unsigned flags;
    cairn_format format; /* CAIRN_FORMAT_AUTO: from the extension (.npy -> NPY,
                            .safetensors -> SAFETENSORS, .npz -> NPZ, .gguf -> GGUF,
                            .pt or .pth -> TORCH, .params -> MXNET,
                            .h5 or .hdf5 -> HDF5, else NATIVE) */
    uint64_t alignment;  /* payload alignment: a power of two in [8, 65536]; 0 = 64
                            (32 for GGUF, its general.alignment default) */
    /* Fields below were added with format 1.1; a caller whose struct_size
     * ends before them gets the defaults (no compression). */
    /* Compression of every tensor of a native save (cairn_writer_add_ex
     * overrides it per tensor). CAIRN_CODEC_NONE writes 1.0 files exactly as
     * before. Other formats refuse a codec (CAIRN_E_UNSUPPORTED). */
    uint32_t codec;
    int32_t level;       /* 0 = the codec's default; else its range (cairn_codec_parse) */
    uint32_t filter;     /* CAIRN_FILTER_NONE or CAIRN_FILTER_SHUFFLE (multi-byte dtypes
                            only; ignored for one-byte dtypes) */
    uint64_t chunk_size; /* raw bytes per chunk: a power of two in [64 KiB, 16 MiB];
                            0 = 1 MiB (docs/FORMAT.md §4.2) */
    unsigned threads;    /* compression workers: 0 = one per online CPU, 1 = none (the
                            calling thread compresses). With 2 or more, the calling
                            thread writes one batch of chunks while the workers
                            compress the next. Started and joined within each add */
    /* Added after format 1.1 (older structs: no sharding). */
    uint64_t shard_size; /* 0: one file. Else a sharded safetensors model
                            (docs/FORMAT.md §11.6): path NAME.safetensors,
                            shards NAME-0000K-of-0000N.safetensors of at most
                            this many tensor bytes each (a larger tensor alone),
                            cut in declaration order, and the index
                            NAME.safetensors.index.json written last. Needs
                            cairn_writer_declare before the first add; metadata
                            holding tensor references is refused
                            (CAIRN_E_UNSUPPORTED). When everything fits in one
                            shard, one plain NAME.safetensors and no index. No
                            set of shards is ever readable as a mix of two saves:
                            an earlier index at the path is removed before any
                            shard is replaced, and a failure removes the shards
                            it named. */
} cairn_write_opts;

/* Starts a save to `path`. Nothing appears at `path` until commit: bytes go
 * to a temporary file in the same directory, which commit fsyncs, renames
 * over `path` and follows with an fsync of the directory (docs/FORMAT.md §9).
 * `path` may be an object URL, "s3://bucket/key" (docs/STORAGE.md): the
 * bytes stream as a multipart upload and the object appears, whole, at
 * commit; abort or a failure leaves nothing. `opts` may be NULL. */
CAIRN_API cairn_status cairn_writer_open_path(const char *path, const cairn_write_opts *opts,
                                              cairn_writer **out, cairn_error *err);
/* Starts a save to a growable memory buffer (save to bytes). The bytes are
 * identical to what a file save with the same calls produces. */
CAIRN_API cairn_status cairn_writer_open_memory(const cairn_write_opts *opts, cairn_writer **out,
                                                cairn_error *err);

/* One tensor a save will hold, announced before its bytes (cairn_writer_declare). */
typedef struct cairn_tensor_decl {
    const char *name;      /* copied */
    cairn_dtype dtype;
    uint32_t rank;
    const uint64_t *dims;  /* `rank` entries, copied; may be NULL when rank is 0 */
} cairn_tensor_decl;

/* Optional: announces every tensor of the save before the first add, in any
 * format. Names, dtypes, ranks and sizes are checked here as cairn_writer_add
 * would (a name twice is CAIRN_E_EXISTS), and safetensors and GGUF also check
 * their own rules (dtypes they have no name for, GGUF's 4 dimensions, the
 * metadata, gguf.tensor_types) and lay the file out now: the header is
 * written at once and every later add writes its payload straight to its
 * final place, in any order, so a save writes each byte once instead of
 * spooling it and copying it behind the header at commit. Their bytes are
 * those of an undeclared save that adds the same tensors in declaration
 * order (safetensors sorts its layout, so there any add order gives the
 * same file). Other formats record the plan and check adds against it,
 * writing exactly what the same adds write undeclared.
 *
 * Rules: call it at most once, before any cairn_writer_add, _add_ex,
 * _add_alias or _append_object, and after cairn_writer_set_metadata (the
 * header holds the metadata): each of those calls in the wrong order is
 * CAIRN_E_STATE. Afterwards each add must name a declared tensor with its
 * declared dtype and dims, else CAIRN_E_MISMATCH (an undeclared name, or a
 * dtype or shape that differs); a second add of a name is CAIRN_E_EXISTS.
 * A declared name may also be filled by cairn_writer_add_alias of a tensor
 * with the same dtype and dims, where the format has aliases. Commit fails
 * with CAIRN_E_STATE naming the first declared tensor never added. Any
 * failure puts the writer in its failed state. `decls` may be NULL when
 * count is 0 (a save with no tensors). */
CAIRN_API cairn_status cairn_writer_declare(cairn_writer *w, const cairn_tensor_decl *decls,
                                            size_t count, cairn_error *err);

/* Adds one tensor. `data` holds count * dtype size bytes, little-endian, C
 * order; it is written out (file) or copied (memory) before this returns, so
 * the caller may reuse it at once and memory stays bounded by the caller's
 * own buffers. `dims` may be NULL when rank is 0. Names are UTF-8, 1 to 4096
 * bytes, unique (CAIRN_E_EXISTS). Any failure puts the writer in a failed
 * state: later calls return CAIRN_E_STATE and commit fails. */
CAIRN_API cairn_status cairn_writer_add(cairn_writer *w, const char *name, cairn_dtype dtype,
                                        uint32_t rank, const uint64_t *dims, const void *data,
                                        cairn_error *err);
/* Per-tensor compression for cairn_writer_add_ex. */
typedef struct cairn_tensor_opts {
    size_t struct_size; /* sizeof(cairn_tensor_opts) */
    uint32_t codec;     /* CAIRN_CODEC_*: NONE stores this tensor raw whatever the save says */
    int32_t level;      /* 0 = the codec's default */
    uint32_t filter;    /* CAIRN_FILTER_* */
} cairn_tensor_opts;

/* cairn_writer_add with this tensor's own codec, level and filter instead of
 * the save's (cairn_write_opts); `opts` NULL means the save's. A compressed
 * tensor is split into chunks (cairn_write_opts.chunk_size) that are filtered
 * and compressed in parallel; a chunk that does not get smaller is stored
 * raw, and a tensor none of whose chunks got smaller (or whose table would
 * cost more than compression saved) is stored uncompressed. Only the native
 * format compresses: other formats refuse a codec with CAIRN_E_UNSUPPORTED. */
CAIRN_API cairn_status cairn_writer_add_ex(cairn_writer *w, const char *name, cairn_dtype dtype,
                                           uint32_t rank, const uint64_t *dims,
                                           const void *data, const cairn_tensor_opts *opts,
                                           cairn_error *err);
/* Adds `name` as a second name for the already added tensor `existing`
 * (tied weights): same dtype, shape and stored bytes, stored once. */
CAIRN_API cairn_status cairn_writer_add_alias(cairn_writer *w, const char *name,
                                              const char *existing, cairn_error *err);
/* Sets the metadata tree (a map). The tree is copied; the caller keeps
 * ownership of `tree`. Every tensor reference must name a tensor of the
 * archive by commit time. Replaces any tree set before. A format that cannot
 * hold the tree (.npy holds none) returns CAIRN_E_UNSUPPORTED and leaves the
 * writer usable, so a caller may go on without metadata; any other failure
 * puts the writer in its failed state. */
CAIRN_API cairn_status cairn_writer_set_metadata(cairn_writer *w, const cairn_value *tree,
                                                 cairn_error *err);
/* Finishes a path writer: writes the index and trailer and commits
 * atomically. The writer is freed whether or not this succeeds; on failure
 * the temporary file is removed and `path` is untouched. */
CAIRN_API cairn_status cairn_writer_commit(cairn_writer *w, cairn_error *err);
/* Finishes a memory writer: *out_data (caller frees with cairn_free) and
 * *out_size receive the bytes. The writer is freed either way. */
CAIRN_API cairn_status cairn_writer_commit_memory(cairn_writer *w, void **out_data,
                                                  size_t *out_size, cairn_error *err);
/* Discards everything: removes the temporary file, frees the writer. NULL is a no-op. */
CAIRN_API void cairn_writer_abort(cairn_writer *w);

/* ------------------------------------------------------- key sizes */

/* Sizes of the ed25519 keys cairn_open_opts.public_key and the signing
 * calls of cairn/sign.h take. */
#define CAIRN_PUBLIC_KEY_BYTES 32
#define CAIRN_SECRET_KEY_BYTES 64 /* libsodium's layout: 32-byte seed, then the public key */
#define CAIRN_KEY_ID_BYTES 8      /* first 8 bytes of BLAKE2b-256 of the public key */

#ifdef __cplusplus
}
#endif

/* The higher tiers: each reads on its own, over the core above. */
#include "cairn/sign.h"  /* ed25519 signatures of files and directories */
#include "cairn/model.h" /* parameter sets, whole-model archives, ordered objects */
#include "cairn/ckpt.h"  /* the checkpoint manager */
#include "cairn/store.h" /* object-store keys, file identities (multi-file archives) */

#endif /* CAIRN_H */
