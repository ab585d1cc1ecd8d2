/*
 * hash_build.h -- the body of one inline build of Debian's xxhash.h,
 * included once by each file that compiles it for an instruction set
 * (hash_avx2.c with -mavx2, hash_avx512.c with -mavx512f). The file
 * defines XXH_VECTOR and CAIRN_XXH3_BUILD (the name of the build's table)
 * first. hash.c runs a build only on a CPU that has its instructions.
 */
#define XXH_INLINE_ALL
#include <stdlib.h>
#include <xxhash.h>

#include "hash.h"

static uint64_t one_shot(const void *data, size_t len) { return XXH3_64bits(data, len); }

static void *state_new(void)
{
    XXH3_state_t *s = XXH3_createState();
    if (s)
        XXH3_64bits_reset(s);
    return s;
}

static void update(void *state, const void *data, size_t len)
{
    XXH3_64bits_update(state, data, len);
}

static uint64_t digest(const void *state) { return XXH3_64bits_digest(state); }

static void state_free(void *state) { XXH3_freeState(state); }

const cairn__xxh3_build CAIRN_XXH3_BUILD = {CAIRN_XXH3_NAME, one_shot, state_new, update,
                                            digest, state_free};
