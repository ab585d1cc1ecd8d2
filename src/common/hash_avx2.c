/* hash_avx2.c -- XXH3 compiled inline for AVX2 (this file is built with
 * -mavx2; hash.c uses it only on CPUs that have AVX2). */
#if defined(__x86_64__)
#define XXH_VECTOR XXH_AVX2
#define CAIRN_XXH3_BUILD cairn__xxh3_avx2
#define CAIRN_XXH3_NAME "avx2"
#include "common/hash_build.h"
#endif
