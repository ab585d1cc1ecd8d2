/*
 * cairn/sign.h -- ed25519 signatures of files and checkpoint directories.
 *
 * Part of the public API: included by cairn.h (include that), kept in a
 * file of its own so that the core API in cairn.h reads on its own.
 */
#ifndef CAIRN_H
#include "../cairn.h" /* the core first: it includes this file after itself */
#elif !defined(CAIRN_SIGN_H)
#define CAIRN_SIGN_H

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ signatures */

/* ed25519 signatures (libsodium) over native files and checkpoint
 * directories (docs/FORMAT.md §8). A signature covers every byte of the file
 * before its signature block through a BLAKE2b-256 digest, so it stays
 * sound even though the per-tensor checksums (XXH3) are not cryptographic. */

/* Creates a new key pair: `secret_path` (mode 0600) and `public_path`, in the
 * text formats of docs/FORMAT.md §8.3. Both are created with O_EXCL: an
 * existing file is never overwritten (CAIRN_E_EXISTS naming it, and nothing
 * is left behind). */
CAIRN_API cairn_status cairn_keygen(const char *secret_path, const char *public_path,
                                    cairn_error *err);
/* Reads a key file (CAIRN_E_CORRUPT naming the file and line when malformed;
 * a secret key whose public half does not match its seed is corrupt). */
CAIRN_API cairn_status cairn_key_load_secret(const char *path,
                                             uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                                             cairn_error *err);
CAIRN_API cairn_status cairn_key_load_public(const char *path,
                                             uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                             cairn_error *err);
/* The key id of a public key. */
CAIRN_API void cairn_key_id(const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                            uint8_t id[CAIRN_KEY_ID_BYTES]);

/* Signs a native file: checks every byte of it first (cairn_file_verify),
 * then writes it again through the commit protocol of docs/FORMAT.md §9 (a
 * temporary file, fsync, rename, fsync of the directory; never in place)
 * with a signature block and a new trailer appended. Tensors, index and
 * metadata keep their bytes; the header and trailer say 1.1. An existing
 * signature is replaced. `flags`: CAIRN_WRITE_NO_SYNC or 0. */
CAIRN_API cairn_status cairn_sign_file(const char *path,
                                       const uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                                       unsigned flags, cairn_error *err);
/* Verifies an open native file's signature against `public_key`: recomputes
 * the digest over every byte before the signature block and checks the
 * ed25519 signature. CAIRN_E_UNSIGNED: no signature block. CAIRN_E_SIGNATURE
 * with a message saying which: signed by another key (both key ids named),
 * bytes changed since signing (and, where the damage can be located, which
 * tensor or structure), the layout in the trailer changed, or the signature
 * block itself was altered. Other formats: CAIRN_E_UNSUPPORTED. */
CAIRN_API cairn_status cairn_file_verify_signature(const cairn_file *f,
                                                   const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                                   cairn_error *err);
/* Signs a directory (a checkpoint directory, docs/CHECKPOINTS.md) through one
 * manifest, DIR/MANIFEST.cairn-sig: every regular file's name, size and
 * SHA-256, signed with ed25519 (docs/FORMAT.md §8.4), written atomically.
 * Hidden temporary files of unfinished saves (".*.cairn-tmp-*") are left
 * out; a file name with control bytes, a symbolic link or another special
 * file in DIR is refused (CAIRN_E_UNSUPPORTED naming it). */
CAIRN_API cairn_status cairn_sign_dir(const char *dir,
                                      const uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                                      unsigned flags, cairn_error *err);
/* Verifies DIR against its manifest: the manifest's signature, then every
 * listed file (size and SHA-256), then that no file is there that the
 * manifest does not list. CAIRN_E_UNSIGNED without a manifest;
 * CAIRN_E_SIGNATURE naming a missing, extra or changed file (up to a few,
 * with the total count) or a wrong key. */
CAIRN_API cairn_status cairn_verify_dir(const char *dir,
                                        const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                        cairn_error *err);

#ifdef __cplusplus
}
#endif

#endif
