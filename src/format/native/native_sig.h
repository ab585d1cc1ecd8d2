/* native_sig.h -- the native format's signature block (native_sig.c). */
#ifndef CAIRN_NATIVE_SIG_H
#define CAIRN_NATIVE_SIG_H

#include "format/format.h"

/* Key-less checks of a native file's signature block for cairn_file_verify:
 * its place (right after the metadata, right before the trailer), magic,
 * version and size, the header's signed flag and layout hash, and the index
 * hash it repeats. `header` and `trailer` are the file's. CAIRN_E_CORRUPT. */
cairn_status cairn__sig_check_structure(const cairn_file *f, const uint8_t *header,
                                        const uint8_t *trailer, cairn_error *err);

/* The reader ops verify_signature and sign of the native format
 * (format.h). */
cairn_status cairn__native_verify_signature(const cairn_file *f,
                                            const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                            cairn__verify_all_fn verify_all, cairn_error *err);
cairn_status cairn__native_sign(const cairn_file *f, const uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                               cairn__sink *out, cairn_error *err);

#endif
