/* hash_avx512.c -- XXH3 compiled inline for AVX-512 (this file is built
 * with -mavx512f; hash.c uses it only on CPUs that have AVX-512F). */
#if defined(__x86_64__)
#define XXH_VECTOR XXH_AVX512
#define CAIRN_XXH3_BUILD cairn__xxh3_avx512
#define CAIRN_XXH3_NAME "avx512"
#include "common/hash_build.h"
#endif
