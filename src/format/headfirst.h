/*
 * headfirst.h -- what the header-first writers (safetensors, GGUF) share.
 * Their header must come first but lists every tensor, so they keep one
 * entry table (names indexed for the metadata's references), the metadata,
 * a spool for payloads that arrive before the layout is known (io/spool.h)
 * and, for declared saves (cairn_writer_declare), the plan: header written
 * at declare, each payload placed straight where it belongs.
 *
 * A format's writer state starts with a cairn__hf_writer (offset 0, so
 * w->state points at it); its own rules come in as `check`, and its layout
 * and header stay its own.
 */
#ifndef CAIRN_HEADFIRST_H
#define CAIRN_HEADFIRST_H

#include "format/format.h"
#include "io/spool.h"

typedef struct cairn__hf_entry {
    char *name;
    size_t name_len;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t size;     /* payload bytes */
    uint64_t spool_at; /* where the payload is in the spool (saves that were not declared) */
    uint64_t at;       /* offset in the data section, once laid out */
} cairn__hf_entry;

/* The format's own rules for a new tensor: *size gets its payload bytes. */
typedef cairn_status (*cairn__hf_check_fn)(cairn_writer *w, const char *name, cairn_dtype dtype,
                                           uint32_t rank, const uint64_t *dims, uint64_t *size,
                                           cairn_error *err);

typedef struct cairn__hf_writer {
    cairn__hf_entry *entries; /* in add (or declaration) order */
    size_t count, cap;
    cairn__nameset names;
    cairn_value *meta;
    cairn__spool spool;
    int planned;         /* laid out at declare: payloads go to data_start + at */
    uint64_t data_start;
    cairn__hf_check_fn check;
} cairn__hf_writer;

#define CAIRN__HF_FIRST(type) \
    _Static_assert(offsetof(type, hf) == 0, #type " must start with its cairn__hf_writer")

/* Allocates the format's state (`size` bytes, zeroed, starting with a
 * cairn__hf_writer) as w->state and opens its spool. */
cairn_status cairn__hf_begin(cairn_writer *w, size_t size, cairn__hf_check_fn check,
                             cairn_error *err);
/* The entry named `name`, or -1. */
int64_t cairn__hf_find(const cairn__hf_writer *h, const char *name, size_t len);
/* cairn__tensor_exists_fn over the entries (ctx: the cairn__hf_writer). */
int cairn__hf_exists(void *ctx, const char *name, size_t len);
/* Checks and records every declared tensor (before the format lays out). */
cairn_status cairn__hf_declare_all(cairn_writer *w, const cairn_tensor_decl *decls, size_t count,
                                   cairn_error *err);
/* After the format wrote its header at declare: the data section starts at
 * the sink's position and holds `data_size` bytes; the file takes its final
 * size and every later add goes to its place. */
cairn_status cairn__hf_planned(cairn_writer *w, uint64_t data_size, cairn_error *err);
/* At finish of a save that was not declared: the spooled payloads in
 * `order` (NULL = add order), each followed by padding to `alignment`
 * (1 = none: runs already adjacent in the spool are copied in one call). */
cairn_status cairn__hf_copy(cairn_writer *w, cairn__hf_entry *const *order, uint64_t alignment,
                            cairn_error *err);

/* Writer ops for such states. */
cairn_status cairn__hf_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err);
cairn_status cairn__hf_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err);
void cairn__hf_destroy(cairn_writer *w);

/* The ops table of such a writer (format.h's naming convention):
 * PREFIX_begin, PREFIX_declare and PREFIX_finish with the shared add, then
 * its no_alias, set_metadata and destroy. */
#define CAIRN__HF_WRITER_OPS(prefix, format_code, ...)                              \
    {.format = (format_code), .begin = prefix##_begin, .add = cairn__hf_add,       \
     .declare = prefix##_declare, .finish = prefix##_finish, __VA_ARGS__}

#endif
