/* hash.c -- picks the fastest build of XXH3-64 this CPU can run: AVX-512,
 * AVX2, or Debian's library (baseline SSE2). */
#include "common/hash.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
extern const cairn__xxh3_build cairn__xxh3_avx2, cairn__xxh3_avx512;
#define CAIRN_XXH3_SIMD 1
#endif
extern const cairn__xxh3_build cairn__xxh3_library; /* hash_lib.c */

struct cairn__hasher {
    const cairn__xxh3_build *build;
    void *state; /* the build's XXH3_state_t */
};

/* Constant tables, chosen by what the CPU reports: nothing is cached, so
 * there is no state to share between threads. */
static const cairn__xxh3_build *const with_avx512[] = {
#ifdef CAIRN_XXH3_SIMD
    &cairn__xxh3_avx512, &cairn__xxh3_avx2,
#endif
    &cairn__xxh3_library, NULL};
static const cairn__xxh3_build *const with_avx2[] = {
#ifdef CAIRN_XXH3_SIMD
    &cairn__xxh3_avx2,
#endif
    &cairn__xxh3_library, NULL};
static const cairn__xxh3_build *const baseline[] = {&cairn__xxh3_library, NULL};

const cairn__xxh3_build *const *cairn__xxh3_builds(void)
{
#ifdef CAIRN_XXH3_SIMD
    if (__builtin_cpu_supports("avx512f"))
        return with_avx512;
    if (__builtin_cpu_supports("avx2"))
        return with_avx2;
#endif
    return baseline;
}

uint64_t cairn__hash(const void *data, size_t len)
{
    return cairn__xxh3_builds()[0]->hash(data, len);
}

cairn__hasher *cairn__hasher_new(void)
{
    cairn__hasher *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->build = cairn__xxh3_builds()[0];
    h->state = h->build->state_new();
    if (!h->state) {
        free(h);
        return NULL;
    }
    return h;
}

void cairn__hasher_update(cairn__hasher *h, const void *data, size_t len)
{
    h->build->update(h->state, data, len);
}

uint64_t cairn__hasher_digest(const cairn__hasher *h) { return h->build->digest(h->state); }

void cairn__hasher_free(cairn__hasher *h)
{
    if (!h)
        return;
    h->build->state_free(h->state);
    free(h);
}
