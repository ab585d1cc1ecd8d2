/*
 * native.h -- the .cairn layout of docs/FORMAT.md, restated for the code that
 * reads and writes it. The document is normative; this is a summary.
 *
 *   header  (64 B)  magic[8] major:u16 minor:u16 bom:u32 header_size:u32 flags:u32 reserved[40]
 *   payloads        each aligned to its record's 1 << align_log2
 *   records         tensor_count x record_size, sorted by name (memcmp order)
 *   strings         names, no terminators
 *   chunk tables    1.1: one per compressed tensor, between strings and metadata
 *   metadata        one encoded map (value_internal.h)
 *   [signature]     1.1: optional signature block (SG_* offsets below)
 *   trailer (128 B) see TR_* offsets below
 */
#ifndef CAIRN_NATIVE_H
#define CAIRN_NATIVE_H

#include <stdint.h>

#define NATIVE_HEADER_SIZE 64
#define NATIVE_TRAILER_SIZE 128
#define NATIVE_RECORD_SIZE 128
#define NATIVE_BOM 0x01020304u

static const uint8_t native_head_magic[8] = {0x89, 'C', 'A', 'I', 'R', 'N', '\r', '\n'};
static const uint8_t native_end_magic[8] = {0x89, 'C', 'A', 'I', 'R', 'N', 0x1A, '\n'};

/* header field offsets */
enum {
    HD_MAGIC = 0, HD_MAJOR = 8, HD_MINOR = 10, HD_BOM = 12, HD_SIZE = 16, HD_FLAGS = 20
};

/* trailer field offsets */
enum {
    TR_MAJOR = 0, TR_MINOR = 2, TR_BOM = 4, TR_SIZE = 8, TR_RECORD_SIZE = 12, TR_COUNT = 16,
    TR_INDEX_OFFSET = 24, TR_STRINGS_OFFSET = 32, TR_STRINGS_SIZE = 40, TR_META_OFFSET = 48,
    TR_META_SIZE = 56, TR_SIG_OFFSET = 64, TR_SIG_SIZE = 72, TR_INDEX_HASH = 80,
    TR_HASH = 112, TR_END_MAGIC = 120
};

/* record field offsets */
enum {
    RC_DATA_OFFSET = 0, RC_STORED_SIZE = 8, RC_RAW_SIZE = 16, RC_CHECKSUM = 24,
    RC_NAME_OFFSET = 32, RC_NAME_LEN = 36, RC_DTYPE = 40, RC_RANK = 42, RC_ALIGN_LOG2 = 43,
    RC_CODEC = 44, RC_FILTER = 45, RC_FLAGS = 46, RC_DIMS = 48, RC_CODEC_TABLE_OFFSET = 112,
    RC_CODEC_TABLE_SIZE = 120
};

#define RC_FLAG_ALIAS 0x1u

/* Minor versions this library writes: 0 for files with neither compressed
 * tensors nor a signature (byte-identical to 1.0 writers), else 1. */
#define NATIVE_MINOR_PLAIN 0
#define NATIVE_MINOR_EXTENDED 1

/* 1.1 header: flags bit 0 says a signature binds the trailer's layout, and
 * HD_LAYOUT_HASH then holds BLAKE2b-256 of trailer bytes [0, TR_SIG_OFFSET). */
#define HD_FLAG_SIGNED 0x1u
enum { HD_LAYOUT_HASH = 24, HD_LAYOUT_HASH_SIZE = 32 };

/* chunk table of a compressed tensor (docs/FORMAT.md §4.2): a header, then
 * one entry per chunk */
enum { CT_CHUNK_SIZE = 0, CT_CHUNK_COUNT = 8, CT_LEVEL = 16, CT_HEADER_SIZE = 32 };
enum { CE_OFFSET = 0, CE_STORED = 8, CE_RAW = 12, CE_CHECKSUM = 16, CE_SIZE = 24 };
#define NATIVE_MIN_CHUNK (UINT64_C(1) << 16)
#define NATIVE_MAX_CHUNK (UINT64_C(1) << 24)
#define NATIVE_DEFAULT_CHUNK (UINT64_C(1) << 20)
#define NATIVE_MAX_CHUNKS (UINT64_C(1) << 24)

/* signature block (docs/FORMAT.md §8) */
enum {
    SG_MAGIC = 0, SG_VERSION = 8, SG_ALGORITHM = 10, SG_BLOCK_SIZE = 12, SG_KEY_ID = 16,
    SG_DIGEST = 24, SG_INDEX_HASH = 56, SG_SIGNATURE = 64, SG_SIZE = 128
};
static const uint8_t native_sig_magic[8] = {'C', 'A', 'I', 'R', 'N', 'S', 'I', 'G'};
#define NATIVE_SIG_VERSION 1
#define NATIVE_SIG_ED25519 1

/* normative limits, docs/FORMAT.md §7 */
#define NATIVE_MAX_TENSORS (UINT64_C(1) << 22)
#define NATIVE_MAX_RECORD_SIZE 4096
#define NATIVE_MAX_STRINGS (UINT64_C(256) << 20)
#define NATIVE_MAX_INDEX (UINT64_C(1) << 30)
#define NATIVE_MAX_ALIGN_LOG2 16
#define NATIVE_MAX_SIG (UINT64_C(1) << 20)

#endif
