/*
 * hash_build.h -- the table of one build of XXH3-64, included once by each
 * file that makes one: hash_avx2.c (-mavx2) and hash_avx512.c (-mavx512f)
 * define XXH_VECTOR and get Debian's xxhash.h compiled inline for their
 * instruction set; hash_lib.c defines none and gets calls into libxxhash
 * (baseline SSE2). Each defines CAIRN_XXH3_BUILD (the table's name) and
 * CAIRN_XXH3_NAME first. hash.c runs a build only on a CPU that has its
 * instructions.
 */
#ifdef XXH_VECTOR
#define XXH_INLINE_ALL
#endif
#include <stdlib.h>
#include <xxhash.h>

#include "common/hash.h"

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
