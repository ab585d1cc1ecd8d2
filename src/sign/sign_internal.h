/*
 * sign_internal.h -- what the signing code (sign.c, sign_keys.c,
 * sign_dir.c) shares with the rest of libcairn. The layouts are in
 * docs/FORMAT.md §8; libsodium does the cryptography.
 */
#ifndef CAIRN_SIGN_INTERNAL_H
#define CAIRN_SIGN_INTERNAL_H

#include "archive/archive.h"

/* Key-less checks of a native file's signature block for cairn_file_verify:
 * its place (right after the metadata, right before the trailer), magic,
 * version and size, the header's signed flag and layout hash, and the index
 * hash it repeats. `header` and `trailer` are the file's. CAIRN_E_CORRUPT. */
cairn_status cairn__sig_check_structure(const cairn_file *f, const uint8_t *header,
                                        const uint8_t *trailer, cairn_error *err);

/* libsodium must be initialised before use; CAIRN_E_UNSUPPORTED (naming
 * `what`) if it cannot be (no usable random source). */
cairn_status cairn__sodium_ready(const char *what, cairn_error *err);

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void cairn__hex(const uint8_t *bytes, size_t n, char *out);

#endif
