/*
 * nameset.h -- an open-addressing hash set of names for duplicate checks and
 * look-ups in O(1) (writers and parameter sets hold 100,000+ names). The set
 * stores indexes into the owner's own array; the owner says how to get the
 * name of an index.
 */
#ifndef CAIRN_NAMESET_H
#define CAIRN_NAMESET_H

#include "common/internal.h"

typedef const char *(*cairn__name_fn)(const void *ctx, uint32_t index, size_t *len);

typedef struct cairn__nameset {
    uint32_t *slots; /* index + 1, or 0 for an empty slot */
    size_t cap;      /* a power of two, at least twice count */
    size_t count;
} cairn__nameset;

/* The index stored under `name`, or -1. */
int64_t cairn__nameset_find(const cairn__nameset *s, const char *name, size_t len,
                            cairn__name_fn name_at, const void *ctx);
/* Adds `index` (whose name must not be in the set yet). CAIRN_E_NOMEM on failure. */
cairn_status cairn__nameset_insert(cairn__nameset *s, uint32_t index, cairn__name_fn name_at,
                                   const void *ctx, cairn_error *err);
void cairn__nameset_free(cairn__nameset *s);

#endif
