/*
 * safetensors_meta.h -- safetensors "__metadata__" <-> cairn metadata tree
 * (docs/FORMAT.md §11.4), and the small JSON text builder both safetensors
 * files use to write headers.
 *
 * safetensors metadata is a flat map of strings. cairn writes a tree's
 * top-level strings as plain entries (so every tool sees them) and, when the
 * tree holds anything else, the whole tree's JSON view (§6.3) as one more
 * string under "cairn.meta", from which the reader restores it.
 */
#ifndef CAIRN_SAFETENSORS_META_H
#define CAIRN_SAFETENSORS_META_H

#include "common/buf.h"
#include "common/value_internal.h"

#include <jansson.h>

/* Appends `s[0..len)` (valid UTF-8, NULs allowed) as a quoted JSON string:
 * '"', '\\' and control bytes escaped, everything else as is. */
void cairn__sttext_append_string(cairn__buf *t, const char *s, size_t len);

/* Renders `tree` (a map) as the text of a "__metadata__" JSON object into
 * `out` (nothing is appended for an empty map, and *written is 0). Refuses
 * with CAIRN_E_UNSUPPORTED a tree the JSON view cannot carry back exactly: a
 * map whose only entry is "$float", "$bytes" or "$tensor" with a string
 * value reads back as the escape it looks like. The caller has checked the
 * tree's limits and tensor references (cairn__meta_encode). */
cairn_status cairn__stmeta_encode(const cairn_value *tree, const char *path, cairn__buf *out,
                                  int *written, cairn_error *err);

/* Checks the parsed "__metadata__" value `meta` the way the reference reader
 * does: an object whose values are all strings (CAIRN_E_CORRUPT otherwise;
 * `header_at` is the header's file offset, for messages). NULL is fine. */
cairn_status cairn__stmeta_check(const json_t *meta, const char *path, uint64_t header_at,
                                 cairn_error *err);

/* Builds the tree from a checked `meta` (NULL gives an empty map): restored
 * from "cairn.meta" when that parses as a cairn JSON view whose top-level
 * strings match the plain entries, else the map of plain strings. `exists`
 * answers whether a tensor reference names a tensor of the file. */
cairn_status cairn__stmeta_decode(const json_t *meta, const char *path,
                                  cairn__tensor_exists_fn exists, void *ctx, cairn_value **out,
                                  cairn_error *err);

/* "an object", "a string", ... for messages about a JSON value. */
const char *cairn__stmeta_json_kind(const json_t *v);

#endif /* CAIRN_SAFETENSORS_META_H */
