/* hash.c -- picks the AVX2 or the library build of XXH3-64 once per call. */
#include "hash.h"

#include <stdlib.h>
#include <xxhash.h>

struct cairn__hasher {
    int avx2;
    void *state; /* XXH3_state_t of the chosen build */
};

static int use_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

#if !defined(__x86_64__)
/* No AVX2 build on other processors: these are never called there. */
uint64_t cairn__hash_avx2(const void *data, size_t len) { return XXH3_64bits(data, len); }
void *cairn__hasher_avx2_new(void) { return NULL; }
void cairn__hasher_avx2_update(void *state, const void *data, size_t len) {}
uint64_t cairn__hasher_avx2_digest(const void *state) { return 0; }
void cairn__hasher_avx2_free(void *state) {}
#endif

uint64_t cairn__hash(const void *data, size_t len)
{
    return use_avx2() ? cairn__hash_avx2(data, len) : XXH3_64bits(data, len);
}

cairn__hasher *cairn__hasher_new(void)
{
    cairn__hasher *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->avx2 = use_avx2();
    if (h->avx2) {
        h->state = cairn__hasher_avx2_new();
    } else {
        h->state = XXH3_createState();
        if (h->state)
            XXH3_64bits_reset(h->state);
    }
    if (!h->state) {
        free(h);
        return NULL;
    }
    return h;
}

void cairn__hasher_update(cairn__hasher *h, const void *data, size_t len)
{
    if (h->avx2)
        cairn__hasher_avx2_update(h->state, data, len);
    else
        XXH3_64bits_update(h->state, data, len);
}

uint64_t cairn__hasher_digest(const cairn__hasher *h)
{
    return h->avx2 ? cairn__hasher_avx2_digest(h->state) : XXH3_64bits_digest(h->state);
}

void cairn__hasher_free(cairn__hasher *h)
{
    if (!h)
        return;
    if (h->avx2)
        cairn__hasher_avx2_free(h->state);
    else
        XXH3_freeState(h->state);
    free(h);
}
