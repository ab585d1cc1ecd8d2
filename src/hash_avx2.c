/* hash_avx2.c -- Debian's xxhash.h compiled inline with AVX2 (this file is
 * built with -mavx2; hash.c calls it only on CPUs that have AVX2). */
#if defined(__x86_64__)
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <stdlib.h>
#include <xxhash.h>

#include "hash.h"

uint64_t cairn__hash_avx2(const void *data, size_t len) { return XXH3_64bits(data, len); }

void *cairn__hasher_avx2_new(void)
{
    XXH3_state_t *s = XXH3_createState();
    if (s)
        XXH3_64bits_reset(s);
    return s;
}

void cairn__hasher_avx2_update(void *state, const void *data, size_t len)
{
    XXH3_64bits_update(state, data, len);
}

uint64_t cairn__hasher_avx2_digest(const void *state) { return XXH3_64bits_digest(state); }

void cairn__hasher_avx2_free(void *state) { XXH3_freeState(state); }
#endif
