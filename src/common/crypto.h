/* crypto.h -- libsodium helpers shared below sign/ (crypto.c). */
#ifndef CAIRN_COMMON_CRYPTO_H
#define CAIRN_COMMON_CRYPTO_H

#include "common/internal.h"

/* libsodium must be initialised before use; CAIRN_E_UNSUPPORTED (naming
 * `what`) if it cannot be (no usable random source). */
cairn_status cairn__sodium_ready(const char *what, cairn_error *err);

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void cairn__hex(const uint8_t *bytes, size_t n, char *out);

#endif
