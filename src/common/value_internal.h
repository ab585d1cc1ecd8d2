/*
 * value_internal.h -- the metadata tree's binary encoding (docs/FORMAT.md §6)
 * for the format readers and writers.
 */
#ifndef CAIRN_VALUE_INTERNAL_H
#define CAIRN_VALUE_INTERNAL_H

#include "common/internal.h"

#define CAIRN_META_MAX_DEPTH 64
#define CAIRN_META_MAX_SIZE (256ull << 20)

/* Answers whether a tensor of that name exists in the archive being read or
 * written (used to check tensor references). */
typedef int (*cairn__tensor_exists_fn)(void *ctx, const char *name, size_t len);

/* Encodes `tree` per docs/FORMAT.md §6.1 into a new buffer (*out, freed with
 * free()). Fails with CAIRN_E_LIMIT past CAIRN_META_MAX_SIZE or depth 64,
 * and with CAIRN_E_NOT_FOUND if `exists` (may be NULL) rejects a tensor
 * reference. The root must be a map (CAIRN_E_ARG otherwise). */
cairn_status cairn__meta_encode(const cairn_value *tree, cairn__tensor_exists_fn exists, void *ctx,
                                uint8_t **out, size_t *out_len, cairn_error *err);

/* For writers whose format stores the tree its own way: the checks of
 * cairn__meta_encode (limits, tensor references through `exists`) with the
 * encoding dropped. A NULL or empty tree passes. */
cairn_status cairn__meta_check(const cairn_value *tree, cairn__tensor_exists_fn exists, void *ctx,
                               cairn_error *err);

/* Decodes [p, p+len) (hostile input). `file` and `base_offset` (the file
 * offset of p[0]) are for messages: "model.cairn: metadata at offset 1234:
 * string length 99999 runs past the end of the section". `exists` may be NULL. */
cairn_status cairn__meta_decode(const uint8_t *p, size_t len, const char *file,
                                uint64_t base_offset, cairn__tensor_exists_fn exists, void *ctx,
                                cairn_value **out, cairn_error *err);

/* For the decoder, which validates text itself and checks duplicate keys in
 * O(n log n) afterwards: a STRING, BYTES or TENSOR node from unchecked bytes,
 * and a map append without the O(n) key search of cairn_value_set. Both
 * defined in value.c. */
cairn_value *cairn__value_new_blob(cairn_value_type type, const void *data, size_t len);
cairn_status cairn__value_map_push(cairn_value *map, const char *key, size_t key_len,
                                   cairn_value *child);

#endif
