/* hash_lib.c -- XXH3 from Debian's libxxhash itself (baseline x86-64, or
 * whatever the library was built for elsewhere): the build every CPU runs. */
#define CAIRN_XXH3_BUILD cairn__xxh3_library
#define CAIRN_XXH3_NAME "libxxhash"
#include "common/hash_build.h"
