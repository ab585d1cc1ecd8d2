/* shuffle.c -- byte shuffle and its inverse (shuffle.h).
 *
 * Written here rather than taken from c-blosc: blosc 1.x exports its
 * shuffle only inside whole blosc frames (blosc_compress), not as a
 * function, and the transpose is short. On x86-64 the common element sizes
 * (2, 4 and 8 bytes) use SSE2, which every x86-64 CPU has: 16 elements at a
 * time are transposed in registers with byte-interleaving unpacks. Each
 * unpack step moves one bit of a byte's index from its register number into
 * its position within the register; the step sequences below are the
 * shortest that turn element-major order into byte-major order and back
 * (found by search and checked against the scalar loops in tests). Other
 * sizes and the tails use plain loops. */
#include "codec/shuffle.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SSE2 1
#endif

static void shuffle_scalar(const uint8_t *src, uint8_t *dst, size_t n, size_t ts, size_t from)
{
    for (size_t b = 0; b < ts; b++) {
        uint8_t *d = dst + b * n;
        for (size_t i = from; i < n; i++)
            d[i] = src[i * ts + b];
    }
}

static void unshuffle_scalar(const uint8_t *src, uint8_t *dst, size_t n, size_t ts, size_t from)
{
    for (size_t b = 0; b < ts; b++) {
        const uint8_t *s = src + b * n;
        for (size_t i = from; i < n; i++)
            dst[i * ts + b] = s[i];
    }
}

#if HAVE_SSE2
/* One unpack step over the `regs` registers x[], pairing the registers whose
 * numbers differ in bit `bit`: the low halves interleave into the first of
 * the pair, the high halves into the second. Always inlined with constant
 * arguments, so each sequence below compiles to straight-line unpacks. */
static inline __attribute__((always_inline)) void unpack_step(__m128i *x, unsigned regs,
                                                              unsigned bit)
{
    unsigned m = 1u << bit;
    for (unsigned a = 0; a < regs; a++) {
        if (a & m)
            continue;
        __m128i lo = _mm_unpacklo_epi8(x[a], x[a | m]);
        __m128i hi = _mm_unpackhi_epi8(x[a], x[a | m]);
        x[a] = lo;
        x[a | m] = hi;
    }
}

/* The register-number bits to pair on, step by step (bit 0 = lowest):
 *   shuffle   2: 0 0 0 0      4: 1 0 1 0     8: 0 0 0 0 2 1 2 1
 *   unshuffle 2: 0            4: 1 0         8: 2 1 0 */
static inline __attribute__((always_inline)) void transpose(__m128i *x, unsigned ts, int inverse)
{
    if (ts == 2) {
        unpack_step(x, 2, 0);
        if (!inverse) {
            unpack_step(x, 2, 0);
            unpack_step(x, 2, 0);
            unpack_step(x, 2, 0);
        }
    } else if (ts == 4) {
        unpack_step(x, 4, 1);
        unpack_step(x, 4, 0);
        if (!inverse) {
            unpack_step(x, 4, 1);
            unpack_step(x, 4, 0);
        }
    } else if (inverse) {
        unpack_step(x, 8, 2);
        unpack_step(x, 8, 1);
        unpack_step(x, 8, 0);
    } else {
        for (int k = 0; k < 4; k++)
            unpack_step(x, 8, 0);
        unpack_step(x, 8, 2);
        unpack_step(x, 8, 1);
        unpack_step(x, 8, 2);
        unpack_step(x, 8, 1);
    }
}

/* Transposes blocks of 16 elements; returns how many elements it did. */
static inline __attribute__((always_inline)) size_t sse2_blocks(const uint8_t *src, uint8_t *dst,
                                                                size_t n, unsigned ts, int inverse)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i x[8];
        for (unsigned r = 0; r < ts; r++)
            x[r] = _mm_loadu_si128((const __m128i *)(inverse ? src + r * n + i
                                                             : src + i * ts + 16 * r));
        transpose(x, ts, inverse);
        for (unsigned r = 0; r < ts; r++)
            _mm_storeu_si128((__m128i *)(inverse ? dst + i * ts + 16 * r : dst + r * n + i), x[r]);
    }
    return i;
}

static size_t shuffle_sse2(const uint8_t *src, uint8_t *dst, size_t n, unsigned ts)
{
    return ts == 2 ? sse2_blocks(src, dst, n, 2, 0)
           : ts == 4 ? sse2_blocks(src, dst, n, 4, 0) : sse2_blocks(src, dst, n, 8, 0);
}

static size_t unshuffle_sse2(const uint8_t *src, uint8_t *dst, size_t n, unsigned ts)
{
    return ts == 2 ? sse2_blocks(src, dst, n, 2, 1)
           : ts == 4 ? sse2_blocks(src, dst, n, 4, 1) : sse2_blocks(src, dst, n, 8, 1);
}
#endif

/* Both directions: SSE2 blocks where they apply, loops for the rest, and the
 * bytes past the last whole element copied as they are. */
static void reorder(const uint8_t *src, uint8_t *dst, size_t size, size_t typesize, int inverse)
{
    if (typesize <= 1 || size < typesize) {
        memcpy(dst, src, size);
        return;
    }
    size_t n = size / typesize, done = 0;
#if HAVE_SSE2
    if (typesize == 2 || typesize == 4 || typesize == 8)
        done = inverse ? unshuffle_sse2(src, dst, n, (unsigned)typesize)
                       : shuffle_sse2(src, dst, n, (unsigned)typesize);
#endif
    if (inverse)
        unshuffle_scalar(src, dst, n, typesize, done);
    else
        shuffle_scalar(src, dst, n, typesize, done);
    memcpy(dst + n * typesize, src + n * typesize, size - n * typesize);
}

void cairn__shuffle(const uint8_t *src, uint8_t *dst, size_t size, size_t typesize)
{
    reorder(src, dst, size, typesize, 0);
}

void cairn__unshuffle(const uint8_t *src, uint8_t *dst, size_t size, size_t typesize)
{
    reorder(src, dst, size, typesize, 1);
}
