/*
 * cairn/model.h -- parameter sets, whole-model archives and ordered objects.
 *
 * Part of the public API: included by cairn.h (include that), kept in a
 * file of its own so that the core API in cairn.h reads on its own.
 */
#ifndef CAIRN_H
#include "../cairn.h" /* the core first: it includes this file after itself */
#elif !defined(CAIRN_MODEL_H)
#define CAIRN_MODEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------- parameter sets */

/* A parameter set is the C state dict: the caller registers each buffer of
 * its model by name ("fc1.weight", "fc1.bias", ...: dots group them), then
 * saves the set, or loads a file into the buffers in place. Buffers are
 * borrowed: they must stay valid while the set is used; the set never frees
 * them. A cairn_params belongs to one thread at a time. */
typedef struct cairn_params cairn_params;

/* NULL when memory runs out. */
CAIRN_API cairn_params *cairn_params_new(void);
CAIRN_API void cairn_params_free(cairn_params *p);
/* Registers a buffer of count * dtype size bytes (little-endian, C order).
 * The name is copied; names are unique (CAIRN_E_EXISTS) and follow the tensor
 * name rules (1..4096 bytes of UTF-8, no NUL). `dims` may be NULL for rank 0. */
CAIRN_API cairn_status cairn_params_add(cairn_params *p, const char *name, cairn_dtype dtype,
                                        uint32_t rank, const uint64_t *dims, void *data,
                                        cairn_error *err);
CAIRN_API size_t cairn_params_count(const cairn_params *p);
/* The i-th registered buffer, in registration order: its name (borrowed),
 * dtype, rank, dims (borrowed, `rank` entries) and data pointer. Any out
 * pointer may be NULL. CAIRN_E_NOT_FOUND past the end. */
CAIRN_API cairn_status cairn_params_at(const cairn_params *p, size_t i, const char **name,
                                       cairn_dtype *dtype, uint32_t *rank, const uint64_t **dims,
                                       void **data, cairn_error *err);

/* Adds every buffer to an open writer as PREFIX + name (`prefix` may be NULL
 * or ""), so several sets (model, optimizer) share one archive. */
CAIRN_API cairn_status cairn_params_write(const cairn_params *p, cairn_writer *w,
                                          const char *prefix, cairn_error *err);
/* Saves the set alone to `path` (native format unless the extension says
 * otherwise), atomically, with `meta` (a map, may be NULL) as metadata. */
CAIRN_API cairn_status cairn_params_save(const cairn_params *p, const char *path,
                                         const cairn_value *meta, cairn_error *err);
/* The same bytes, to memory (*out freed with cairn_free). */
CAIRN_API cairn_status cairn_params_save_memory(const cairn_params *p, const cairn_value *meta,
                                                void **out, size_t *out_size, cairn_error *err);

/* A migration hook for long-term compatibility (Theano's advice: old files
 * must load after fields are renamed). Called once per candidate tensor name
 * (after prefix handling and the explicit rename map) with the schema version
 * stored in the file (see cairn_load_opts.schema_key; 0 when absent). Returns
 * the name to use: `name` itself, a string written into `buf` (`buf_size`
 * bytes), or NULL to drop the tensor from the load. Must not call back into
 * the same cairn_params. */
typedef const char *(*cairn_migrate_fn)(void *ctx, int64_t schema_version, const char *name,
                                        char *buf, size_t buf_size);

/* Flags for cairn_load_opts.flags. */
#define CAIRN_LOAD_STRICT 0x1u  /* any missing/unexpected/mismatched tensor fails the whole
                                   load with CAIRN_E_MISMATCH and changes no buffer */
#define CAIRN_LOAD_CONVERT 0x2u /* allow dtype conversion (cairn_dtype_can_convert) */
#define CAIRN_LOAD_VERIFY 0x4u  /* verify every checksum before any buffer is written */

typedef struct cairn_load_opts {
    size_t struct_size; /* sizeof(cairn_load_opts) */
    unsigned flags;
    /* Only file tensors whose names start with `prefix` take part, with the
     * prefix removed (e.g. "params/" in a whole-model archive). NULL = all. */
    const char *prefix;
    /* Then removed from names that start with it (e.g. "module.", which
     * multi-GPU wrappers add). NULL = none. */
    const char *strip_prefix;
    /* Then an explicit map: a name equal to rename_from[i] becomes rename_to[i]. */
    const char *const *rename_from;
    const char *const *rename_to;
    size_t rename_count;
    /* Then the migration hook (may be NULL) ... */
    cairn_migrate_fn migrate;
    void *migrate_ctx;
    /* ... then prepended (e.g. "model."). NULL = none. */
    const char *add_prefix;
    /* Where the file keeps its schema version: a dotted path of map keys in
     * the metadata tree, ending at an integer. NULL = "type_tag.schema_version"
     * (docs/MODEL.md). */
    const char *schema_key;
} cairn_load_opts;

/* What a load found. Kinds are pinned. */
typedef enum cairn_mismatch_kind {
    CAIRN_MISMATCH_MISSING = 1,    /* registered, not in the file */
    CAIRN_MISMATCH_UNEXPECTED = 2, /* in the file, not registered */
    CAIRN_MISMATCH_SHAPE = 3,      /* in both, shapes differ */
    CAIRN_MISMATCH_DTYPE = 4       /* in both, dtypes differ and conversion is not allowed */
} cairn_mismatch_kind;

typedef struct cairn_load_report cairn_load_report;

CAIRN_API void cairn_load_report_free(cairn_load_report *r);
/* Tensors written into buffers (0 after a failed strict load). */
CAIRN_API size_t cairn_load_report_loaded(const cairn_load_report *r);
/* Number of problems, then each: its kind, the registered name and the name
 * in the file (either may be NULL: no file name for MISSING, no registered
 * name for UNEXPECTED), and a one-line description (all borrowed until
 * cairn_load_report_free). Problems are sorted by kind, then name. */
CAIRN_API size_t cairn_load_report_count(const cairn_load_report *r);
CAIRN_API cairn_status cairn_load_report_at(const cairn_load_report *r, size_t i,
                                            cairn_mismatch_kind *kind, const char **name,
                                            const char **file_name, const char **text,
                                            cairn_error *err);
/* The schema version found in the file (0 when absent). */
CAIRN_API int64_t cairn_load_report_schema_version(const cairn_load_report *r);

/* Loads `f` into the registered buffers. Every file tensor's name goes
 * through opts (prefix, strip_prefix, renames, migrate, add_prefix) and is
 * matched to a registered name. Non-strict: loads every match whose shape
 * agrees and whose dtype is equal (or convertible with CAIRN_LOAD_CONVERT),
 * returns CAIRN_OK and lists the rest in the report. Strict: any problem
 * returns CAIRN_E_MISMATCH, with every problem (not the first only) in the
 * report and summarised in err, and no buffer changed. `report` may be NULL;
 * otherwise the caller frees *report (also on failure, when it is non-NULL).
 * Two file tensors that map to one registered name are an error
 * (CAIRN_E_EXISTS) before anything is written. */
CAIRN_API cairn_status cairn_params_load(cairn_params *p, const cairn_file *f,
                                         const cairn_load_opts *opts, cairn_load_report **report,
                                         cairn_error *err);

/* ------------------------------------------------------ whole-model archives */

/* One archive holds every part a training run needs to stop and go on
 * (docs/MODEL.md gives the layout): the type tag, params, config, optimizer
 * state, history, learned attributes, RNG state and data position. The
 * caller chooses exactly what goes in: every NULL part is simply absent, so
 * the same call also writes skorch-style separate files (params only,
 * optimizer only, history only). Nothing is ever executed on load. */
typedef struct cairn_model_parts {
    size_t struct_size;             /* sizeof(cairn_model_parts) */
    const char *kind;               /* type tag: the model's kind ("mlp"); NULL = no tag */
    int64_t schema_version;         /* type tag: the layout version of this kind */
    cairn_params *params;           /* tensors "params/<name>" */
    cairn_params *optimizer_tensors; /* tensors "optimizer/<name>" (momentum, Adam moments) */
    cairn_params *attribute_tensors; /* tensors "attributes/<name>" (e.g. class labels) */
    const cairn_value *config;      /* metadata "config": architecture hyperparameters */
    const cairn_value *optimizer;   /* metadata "optimizer": scalars (kind, step, lr, betas) */
    const cairn_value *history;     /* metadata "history": a list of per-epoch maps */
    const cairn_value *attributes;  /* metadata "attributes": learned non-tensor attributes */
    const cairn_value *rng;         /* metadata "rng": RNG state (bytes, ints, ...) */
    const cairn_value *data_position; /* metadata "data_position": where the data loader is */
    const cairn_value *extra;       /* metadata "extra": anything else the caller wants kept */
} cairn_model_parts;

/* Adds every present part to an open writer (tensors now; the metadata tree
 * replaces any set before). */
CAIRN_API cairn_status cairn_model_write(cairn_writer *w, const cairn_model_parts *parts,
                                         cairn_error *err);
/* Saves the parts to `path`, atomically. */
CAIRN_API cairn_status cairn_model_save(const char *path, const cairn_model_parts *parts,
                                        cairn_error *err);
/* The same bytes, to memory (*out freed with cairn_free). */
CAIRN_API cairn_status cairn_model_save_memory(const cairn_model_parts *parts, void **out,
                                               size_t *out_size, cairn_error *err);
/* Loads the tensor parts into the non-NULL parameter sets of `parts` (each
 * through cairn_params_load with its prefix and opts' flags and renames;
 * opts may be NULL) and returns the file's metadata tree in *meta (caller
 * frees; may be NULL if not wanted) to read "config", "history", ... from.
 * With CAIRN_LOAD_STRICT, a parameter set whose part is absent from the file
 * is an error (CAIRN_E_MISMATCH). If parts->kind is set, the file's kind must
 * match it (CAIRN_E_MISMATCH naming both). The value fields of `parts` are
 * ignored on load. */
CAIRN_API cairn_status cairn_model_load(const cairn_file *f, const cairn_model_parts *parts,
                                        const cairn_load_opts *opts, cairn_value **meta,
                                        cairn_error *err);

/* ------------------------------------------------- several objects, in order */

/* Appends one object to the archive (Theano's pattern of dumping obj1, obj2,
 * obj3 into one file): a kind string, a value (any tree; may be NULL) and a
 * parameter set (may be NULL) whose tensors are stored under
 * "objects/<i>/<name>". All are copied now. Objects are kept in the metadata
 * tree under "objects" at commit, after whatever cairn_writer_set_metadata
 * set (which must then not use the key "objects"). */
CAIRN_API cairn_status cairn_writer_append_object(cairn_writer *w, const char *kind,
                                                  const cairn_value *value,
                                                  const cairn_params *tensors, cairn_error *err);
/* The file's objects in the order they were appended: a list (caller frees)
 * of maps {"kind": string, "value": any, "prefix": "objects/<i>/",
 * "tensors": [names without the prefix]}. Load an object's tensors with
 * cairn_params_load and cairn_load_opts.prefix = its "prefix". A file without
 * objects gives an empty list. */
CAIRN_API cairn_status cairn_file_read_objects(const cairn_file *f, cairn_value **list,
                                               cairn_error *err);

#ifdef __cplusplus
}
#endif

#endif
