/*
 * internal.h -- helpers shared by every file of libcairn (not installed).
 *
 * Naming: cross-file internals are cairn__module_verb; file-static helpers
 * are unprefixed.
 */
#ifndef CAIRN_INTERNAL_H
#define CAIRN_INTERNAL_H

#include "cairn.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* Records `status` and a printf-style message into `err` (which may be NULL)
 * and returns `status`, so error paths are one line:
 *     return cairn__fail(err, CAIRN_E_CORRUPT, "%s: trailer: bad magic", path); */
cairn_status cairn__fail(cairn_error *err, cairn_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Where a parser met something wrong in its input, as every parser says it:
 * "FILE: WHAT at offset N: CONTEXT: MESSAGE" ("FILE: offset N: ..." when
 * `what` is NULL; no "CONTEXT: " when `context` is NULL or empty). A parser
 * names its file, part and context once, in a macro over cairn__fail_at
 * (or uses CAIRN_CHECK). */
cairn_status cairn__vfail_at(cairn_error *err, cairn_status status, const char *file,
                             const char *what, uint64_t offset, const char *context,
                             const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 0)))
#endif
    ;
cairn_status cairn__fail_at(cairn_error *err, cairn_status status, const char *file,
                            const char *what, uint64_t offset, const char *context,
                            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;

/* A parser's check: unless `cond` holds, returns `status` with the message
 * "FILE: WHAT at offset N: ..." (cairn__fail_at). */
#define CAIRN_CHECK(cond, err, status, file, what, offset, ...)                          \
    do {                                                                                \
        if (!(cond))                                                                    \
            return cairn__fail_at((err), (status), (file), (what), (offset), NULL, __VA_ARGS__); \
    } while (0)

/* Clears `err` to CAIRN_OK with an empty message (err may be NULL). */
void cairn__clear(cairn_error *err);

/* Returns early when `expr` yields a status other than CAIRN_OK. */
#define CAIRN_TRY(expr)                    \
    do {                                   \
        cairn_status try_st_ = (expr);     \
        if (try_st_ != CAIRN_OK)           \
            return try_st_;                \
    } while (0)

/* Overflow-checked arithmetic on sizes read from files: 1 on overflow. */
static inline int cairn__add_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}
static inline int cairn__mul_overflow(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* Makes room for item `count` of a growable array: *items (a pointer to
 * the array's pointer, T **) holds *cap items of `size` bytes; when full it
 * doubles (from `first` items). 1 on success; 0 when memory runs out or the
 * size overflows, with the array unchanged. CAIRN__GROW(arr, cap, count, first)
 * is the usual call. */
int cairn__grow(void *items, size_t *cap, size_t count, size_t size, size_t first);
#define CAIRN__GROW(arr, cap, count, first) \
    cairn__grow(&(arr), &(cap), (count), sizeof *(arr), (first))

/* "dir/name", malloc'd (the caller frees), or NULL when memory runs out. */
char *cairn__path_join(const char *dir, const char *name);

/* The one shape rule of every reader and writer (docs/FORMAT.md §2): counting
 * each zero dimension as 1, a tensor's byte size is at most 2^62, so a zero
 * dimension cannot hide dimensions whose product overflows. 1 when broken. */
#define CAIRN_MAX_TENSOR_BYTES (UINT64_C(1) << 62)
static inline int cairn__shape_too_big(uint32_t rank, const uint64_t *dims, uint64_t esize)
{
    uint64_t b = esize;
    for (uint32_t d = 0; d < rank; d++)
        if (__builtin_mul_overflow(b, dims[d] ? dims[d] : 1, &b) || b > CAIRN_MAX_TENSOR_BYTES)
            return 1;
    return b > CAIRN_MAX_TENSOR_BYTES;
}

/* Little-endian loads and stores (the library only builds on little-endian
 * hosts today, but every on-disk field goes through these so a port needs one
 * change). */
static inline uint16_t cairn__le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t cairn__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t cairn__le64(const uint8_t *p)
{
    return (uint64_t)cairn__le32(p) | ((uint64_t)cairn__le32(p + 4) << 32);
}
static inline void cairn__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void cairn__put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void cairn__put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* 1 when `s[0..len)` is valid UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF). NUL bytes are allowed here. */
int cairn__utf8_valid(const char *s, size_t len);

/* Checks a tensor name against docs/FORMAT.md §4 rule 1 (1..4096 bytes,
 * valid UTF-8, no NUL). Returns CAIRN_OK or CAIRN_E_ARG with a message that
 * says which rule failed; `what` names the object for the message. */
#define CAIRN_NAME_MAX 4096
cairn_status cairn__name_check(const char *name, size_t len, const char *what, cairn_error *err);

/* Writes a printable, bounded rendering of a possibly hostile name into
 * buf (for error messages): control bytes are escaped, long names cut. */
const char *cairn__printable(const char *name, size_t len, char *buf, size_t buf_size);

/* The one name order (tensor tables, ZIP members, look-ups): unsigned bytes,
 * then the shorter name first. */
static inline int cairn__name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

/* The name at position `pos` of a table sorted by cairn__name_cmp. */
typedef const char *(*cairn__sorted_name_fn)(const void *ctx, uint64_t pos, size_t *len);

/* Binary search for name[0..len) among `count` sorted names: 1 and its
 * position in *pos when present, else 0. */
int cairn__name_search(uint64_t count, cairn__sorted_name_fn name_at, const void *ctx,
                       const char *name, size_t len, uint64_t *pos);

/* Byte-swaps `count` elements of `elem_size` bytes in place (elem_size 1, 2,
 * 4 or 8; complex types swap each half, so pass the component size). */
void cairn__byteswap(void *buf, size_t count, size_t elem_size);

#endif /* CAIRN_INTERNAL_H */
