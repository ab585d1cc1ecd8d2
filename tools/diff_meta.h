/* diff_meta.h -- structural comparison of two metadata trees, for `cairn diff`. */
#ifndef CAIRN_TOOLS_DIFF_META_H
#define CAIRN_TOOLS_DIFF_META_H

#include <cairn.h>

#include <stddef.h>
#include <stdint.h>

typedef enum diff_meta_kind {
    DIFF_META_ONLY_A = 0,  /* the path exists only in A (b is NULL) */
    DIFF_META_ONLY_B = 1,  /* the path exists only in B (a is NULL) */
    DIFF_META_CHANGED = 2  /* both have it; type or value differs */
} diff_meta_kind;

/* Called once per difference. `path` is borrowed for the call only. A
 * non-zero return stops the walk and becomes diff_meta's result. */
typedef int (*diff_meta_fn)(void *ctx, diff_meta_kind kind, const char *path,
                            const cairn_value *a, const cairn_value *b);

/* Walks A and B together and reports every path that is only in one of them
 * or whose node differs. Paths read `config.num_units`, `history[3].loss`;
 * a key that is empty or holds bytes other than letters, digits, '_', '-'
 * or non-ASCII UTF-8 is written as `["key"]` (JSON string escapes).
 *
 * Maps are compared as key sets (order ignored; keys visited in byte order),
 * lists element by element (extra elements are only-in paths). Scalars are
 * equal when type and value match; floats compare bit for bit (NaN equals a
 * NaN with the same bits; -0.0 differs from 0.0). A list or map that differs
 * from a node of another type is reported once, not descended into.
 *
 * Returns 0, -1 when memory runs out or nesting exceeds 1000 levels, or the
 * callback's non-zero result. *ndiff (may be NULL) counts the callbacks. */
int diff_meta(const cairn_value *a, const cairn_value *b, diff_meta_fn fn, void *ctx,
              uint64_t *ndiff);

/* A one-line rendering of a node for human output: null, true, 42, 0.5, 1.0
 * (floats always show a '.', 'e', "nan", "inf": never confused with an int),
 * -0.0, nan (or nan:0x<bits> for a non-default NaN), "text" (JSON-escaped,
 * cut after ~60 bytes with ...), <N bytes>, <tensor NAME>, <list of N>,
 * <map of N>. Always NUL-terminates a non-empty buffer. */
void diff_meta_render(const cairn_value *v, char *buf, size_t size);

#endif
