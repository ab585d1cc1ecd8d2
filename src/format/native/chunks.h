/*
 * chunks.h -- compressed tensors of the native format (docs/FORMAT.md §4.2):
 * a tensor's raw bytes are cut into chunks of one power-of-two size, each
 * filtered, compressed and checksummed on its own, so that any element range
 * can be read by decoding only the chunks that hold it, and chunks can be
 * coded in parallel. The chunk table (offsets, sizes, checksums) lives in
 * the index, where the index hash and a signature cover it.
 */
#ifndef CAIRN_CHUNKS_H
#define CAIRN_CHUNKS_H

#include "format/format.h"

/* A compressed tensor as its record and chunk table describe it. */
typedef struct cairn__chunked {
    const char *path, *name; /* file and tensor, for messages */
    uint32_t codec, filter;
    size_t esize;            /* dtype size: the shuffle's element size */
    uint64_t data_offset, stored_size, raw_size;
    const uint8_t *table;    /* the table's bytes */
    uint64_t table_offset;   /* its file offset, for messages */
    /* filled in by cairn__chunks_check */
    uint64_t chunk_size, chunk_count;
    int32_t level;
} cairn__chunked;

/* docs/FORMAT.md §4.2 rules for one table of `table_size` bytes: chunk size,
 * chunk count, declared raw sizes, contiguous stored ranges without gaps or
 * overlaps that add up to the record's stored size. CAIRN_E_CORRUPT (or
 * CAIRN_E_LIMIT for a chunk size or count over the limits) naming the
 * tensor, the chunk and the table entry's file offset. */
cairn_status cairn__chunks_check(cairn__chunked *c, uint64_t table_size, cairn_error *err);

/* Decodes raw bytes [lo, hi) of the tensor into dst, reading, checking
 * (each chunk against its XXH3-64) and decoding only the chunks that hold
 * them, on up to `threads` workers (0 = one per CPU). dst NULL decodes and
 * discards (verification). The table must have passed cairn__chunks_check. */
cairn_status cairn__chunks_read(const cairn_file *f, const cairn__chunked *c, uint64_t lo,
                                uint64_t hi, uint8_t *dst, unsigned threads, cairn_error *err);

/* ------------------------------------------------------------- encoding */

typedef struct cairn__chunk_plan {
    uint32_t codec;
    int32_t level;       /* 0 = the codec's default */
    uint32_t filter;
    size_t esize;
    uint64_t chunk_size; /* a valid chunk size */
    unsigned threads;
} cairn__chunk_plan;

typedef struct cairn__encoded {
    int compressed;      /* 0: the stored bytes are the raw bytes (no table) */
    uint64_t stored_size;
    uint64_t checksum;   /* XXH3-64 of all stored bytes */
    uint8_t *table;      /* malloc'ed chunk table when compressed */
    uint64_t table_size;
} cairn__encoded;

/* Appends stored bytes to the output, in order. */
typedef cairn_status (*cairn__chunk_sink)(void *ctx, const uint8_t *data, size_t len,
                                          cairn_error *err);

/* Compresses raw_size bytes chunk by chunk in parallel and hands the stored
 * bytes to `sink` in file order while the next chunks compress. A chunk
 * that does not shrink is stored raw; when nothing shrinks, or a tensor of
 * one batch would not save more than its table costs, the tensor is stored
 * raw. `what` ("FILE: tensor 'NAME'") prefixes messages. */
cairn_status cairn__chunks_encode(const cairn__chunk_plan *p, const uint8_t *data,
                                  uint64_t raw_size, cairn__chunk_sink sink, void *sink_ctx,
                                  const char *what, cairn__encoded *out, cairn_error *err);

#endif
