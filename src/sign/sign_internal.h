/*
 * sign_internal.h -- what the signing code (sign.c, sign_keys.c,
 * sign_dir.c) shares with the rest of libcairn. The layouts are in
 * docs/FORMAT.md §8; libsodium does the cryptography.
 */
#ifndef CAIRN_SIGN_INTERNAL_H
#define CAIRN_SIGN_INTERNAL_H

#include "archive/archive.h"
#include "common/crypto.h"




#endif
