/*
 * chunkfile.h -- builds native 1.1 files around hand-made chunks, for the
 * hostile-input tests (tests/test_malformed_chunks.c) and the chunk fuzzer
 * (fuzz/fuzz_chunks.c). Every checksum in the result is correct, so the
 * reader's table checks and codecs are what the crafted bytes meet.
 *
 * Layout of a built file (docs/FORMAT.md §1):
 *   0     header (minor 1)
 *   64    the chunks, end to end (the tensor's stored bytes)
 *   ...   padding to 8, one record, the name "x\0" padded to 8, the chunk
 *         table, no metadata, the trailer
 */
#ifndef CAIRN_CHUNKFILE_H
#define CAIRN_CHUNKFILE_H

#include "format/native/native.h"
#include "common/internal.h"
#include <cairn.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct cf_chunk {
    const uint8_t *bytes;
    uint32_t len; /* stored size */
    uint32_t raw; /* declared raw size */
} cf_chunk;

/* The file offsets of the record and the table of a cf_build file (or of
 * any native file with one tensor), from its trailer. */
static inline size_t cf_record_at(const uint8_t *p, size_t size)
{
    return (size_t)cairn__le64(p + size - NATIVE_TRAILER_SIZE + TR_INDEX_OFFSET);
}

static inline size_t cf_table_at(const uint8_t *p, size_t size)
{
    return (size_t)cairn__le64(p + cf_record_at(p, size) + RC_CODEC_TABLE_OFFSET);
}

/* Recomputes the index hash and the trailer hash (after an edit). */
static inline void cf_reseal(uint8_t *p, size_t size)
{
    if (size < NATIVE_HEADER_SIZE + NATIVE_TRAILER_SIZE)
        return;
    uint8_t *t = p + size - NATIVE_TRAILER_SIZE;
    uint64_t index = cairn__le64(t + TR_INDEX_OFFSET);
    uint64_t end = cairn__le64(t + TR_META_OFFSET) + cairn__le64(t + TR_META_SIZE);
    if (end <= size - NATIVE_TRAILER_SIZE && index <= end)
        cairn__put64(t + TR_INDEX_HASH, XXH3_64bits(p + index, (size_t)(end - index)));
    cairn__put64(t + TR_HASH, XXH3_64bits(t, TR_HASH));
}

/* Recomputes every chunk checksum of record 0 (where the entry points inside
 * the file) and the record's own checksum, then reseals. */
static inline void cf_fix_sums(uint8_t *p, size_t size)
{
    if (size < NATIVE_HEADER_SIZE + NATIVE_TRAILER_SIZE)
        return;
    size_t rec = cf_record_at(p, size);
    if (rec > size - NATIVE_TRAILER_SIZE || size - NATIVE_TRAILER_SIZE - rec < NATIVE_RECORD_SIZE) {
        cf_reseal(p, size);
        return;
    }
    size_t tab = cf_table_at(p, size);
    uint64_t data = cairn__le64(p + rec + RC_DATA_OFFSET);
    uint64_t stored = cairn__le64(p + rec + RC_STORED_SIZE);
    uint64_t tsize = cairn__le64(p + rec + RC_CODEC_TABLE_SIZE);
    if (tab < size && tsize <= size - tab && tsize >= CT_HEADER_SIZE) {
        uint64_t n = (tsize - CT_HEADER_SIZE) / CE_SIZE;
        for (uint64_t i = 0; i < n; i++) {
            uint8_t *e = p + tab + CT_HEADER_SIZE + i * CE_SIZE;
            uint64_t off = data + cairn__le64(e + CE_OFFSET), len = cairn__le32(e + CE_STORED);
            if (off <= size && len <= size - off)
                cairn__put64(e + CE_CHECKSUM, XXH3_64bits(p + off, (size_t)len));
        }
    }
    if (data <= size && stored <= size - data)
        cairn__put64(p + rec + RC_CHECKSUM, XXH3_64bits(p + data, (size_t)stored));
    cf_reseal(p, size);
}

/* A one-tensor file: tensor "x" of `count` elements of `dtype` (rank 1),
 * compressed with `codec` and `filter` as the given chunks, whose table says
 * `chunk_size`. Returns malloc'ed bytes (*size set). */
static inline uint8_t *cf_build(uint8_t codec, uint8_t filter, cairn_dtype dtype, uint64_t count,
                                uint64_t chunk_size, const cf_chunk *chunks, size_t n,
                                size_t *size)
{
    uint64_t stored = 0;
    for (size_t i = 0; i < n; i++)
        stored += chunks[i].len;
    uint64_t index = (NATIVE_HEADER_SIZE + stored + 7) & ~UINT64_C(7);
    uint64_t strings = index + NATIVE_RECORD_SIZE, table = strings + 8;
    uint64_t tsize = CT_HEADER_SIZE + (uint64_t)n * CE_SIZE, meta = table + tsize;
    *size = (size_t)(meta + NATIVE_TRAILER_SIZE);
    uint8_t *p = calloc(1, *size);
    memcpy(p + HD_MAGIC, native_head_magic, 8);
    cairn__put16(p + HD_MAJOR, 1);
    cairn__put16(p + HD_MINOR, 1);
    cairn__put32(p + HD_BOM, NATIVE_BOM);
    cairn__put32(p + HD_SIZE, NATIVE_HEADER_SIZE);
    uint64_t at = NATIVE_HEADER_SIZE;
    uint8_t *t = p + table;
    cairn__put64(t + CT_CHUNK_SIZE, chunk_size);
    cairn__put64(t + CT_CHUNK_COUNT, n);
    t[CT_LEVEL] = 3;
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = t + CT_HEADER_SIZE + i * CE_SIZE;
        memcpy(p + at, chunks[i].bytes, chunks[i].len);
        cairn__put64(e + CE_OFFSET, at - NATIVE_HEADER_SIZE);
        cairn__put32(e + CE_STORED, chunks[i].len);
        cairn__put32(e + CE_RAW, chunks[i].raw);
        cairn__put64(e + CE_CHECKSUM, XXH3_64bits(p + at, chunks[i].len));
        at += chunks[i].len;
    }
    uint8_t *r = p + index;
    cairn__put64(r + RC_DATA_OFFSET, NATIVE_HEADER_SIZE);
    cairn__put64(r + RC_STORED_SIZE, stored);
    cairn__put64(r + RC_RAW_SIZE, count * cairn_dtype_size(dtype));
    cairn__put64(r + RC_CHECKSUM, XXH3_64bits(p + NATIVE_HEADER_SIZE, (size_t)stored));
    cairn__put32(r + RC_NAME_OFFSET, 0);
    cairn__put32(r + RC_NAME_LEN, 1);
    cairn__put16(r + RC_DTYPE, (uint16_t)dtype);
    r[RC_RANK] = 1;
    r[RC_ALIGN_LOG2] = 6;
    r[RC_CODEC] = codec;
    r[RC_FILTER] = filter;
    cairn__put64(r + RC_DIMS, count);
    cairn__put64(r + RC_CODEC_TABLE_OFFSET, table);
    cairn__put64(r + RC_CODEC_TABLE_SIZE, tsize);
    p[strings] = 'x';
    uint8_t *tr = p + meta;
    cairn__put16(tr + TR_MAJOR, 1);
    cairn__put16(tr + TR_MINOR, 1);
    cairn__put32(tr + TR_BOM, NATIVE_BOM);
    cairn__put32(tr + TR_SIZE, NATIVE_TRAILER_SIZE);
    cairn__put32(tr + TR_RECORD_SIZE, NATIVE_RECORD_SIZE);
    cairn__put64(tr + TR_COUNT, 1);
    cairn__put64(tr + TR_INDEX_OFFSET, index);
    cairn__put64(tr + TR_STRINGS_OFFSET, strings);
    cairn__put64(tr + TR_STRINGS_SIZE, 2);
    cairn__put64(tr + TR_META_OFFSET, meta);
    memcpy(tr + TR_END_MAGIC, native_end_magic, 8);
    cf_reseal(p, *size);
    return p;
}

#endif
