/* crypto.c -- the libsodium helpers shared by the signature block's reader
 * (format/native/) and the signing code (sign/): initialisation, hex, and
 * the key id (docs/FORMAT.md §8: the first bytes of BLAKE2b-256 of the
 * public key). */
#include "common/crypto.h"

#include <sodium.h>

cairn_status cairn__sodium_ready(const char *what, cairn_error *err)
{
    if (sodium_init() < 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: libsodium cannot be initialised", what);
    return CAIRN_OK;
}

void cairn__hex(const uint8_t *bytes, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, bytes, n);
}

void cairn_key_id(const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES], uint8_t id[CAIRN_KEY_ID_BYTES])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, public_key, CAIRN_PUBLIC_KEY_BYTES, NULL, 0);
    memcpy(id, h, CAIRN_KEY_ID_BYTES);
}
