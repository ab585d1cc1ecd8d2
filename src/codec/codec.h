/*
 * codec.h -- the chunk codecs of docs/FORMAT.md §4.1 behind one interface:
 * zstd, lz4 (fast and HC), zlib and bzip2. Decoding always writes into a
 * buffer of exactly the chunk's declared raw size and insists on producing
 * exactly that many bytes from exactly the stored bytes, so no chunk can
 * inflate past what its record says (a decompression bomb is refused as soon
 * as it would write byte raw_size + 1).
 */
#ifndef CAIRN_CODEC_H
#define CAIRN_CODEC_H

#include "common/internal.h"

/* One worker's reusable codec state (contexts are costly to create per
 * chunk). Zero-initialise; cairn__coder_free releases what was created. */
typedef struct cairn__coder {
    void *zstd_c, *zstd_d; /* ZSTD_CCtx, ZSTD_DCtx */
    void *lz4_state;       /* LZ4 / LZ4 HC compression state */
} cairn__coder;

void cairn__coder_free(cairn__coder *c);

/* Outcome of one chunk's coding. */
typedef enum cairn__codec_result {
    CAIRN__CODEC_OK = 0,
    CAIRN__CODEC_NO_GAIN,   /* compression: the output would not be smaller than the input */
    CAIRN__CODEC_OVERFLOW,  /* decoding: the stream produces more than the declared raw size */
    CAIRN__CODEC_SHORT,     /* decoding: the stream ends before the declared raw size */
    CAIRN__CODEC_TRAILING,  /* decoding: bytes are left over after the end of the stream */
    CAIRN__CODEC_MALFORMED, /* decoding: the codec refuses the bytes */
    CAIRN__CODEC_NOMEM
} cairn__codec_result;

/* The codecs are one table in codec.c (a row per codec: code, name, levels,
 * bound, compress, decompress); the calls below are derived from it. */

/* 1 when `codec` is implemented and is not CAIRN_CODEC_NONE. */
int cairn__codec_known(uint32_t codec);
/* "none (0), zstd (1), ...": every code this library knows, for messages. */
void cairn__codec_list(char *buf, size_t size);
/* The level range and default of a known codec. */
void cairn__codec_levels(uint32_t codec, int32_t *min, int32_t *max, int32_t *def);

/* Checks a codec, level and filter asked for by a caller (cairn_write_opts,
 * cairn_tensor_opts): CAIRN_E_ARG naming `what` and the valid values. */
cairn_status cairn__codec_check(const char *what, uint32_t codec, int32_t level, uint32_t filter,
                                cairn_error *err);

/* The most bytes compressing n bytes can take (the codec's own bound). */
size_t cairn__codec_bound(uint32_t codec, size_t n);

/* Compresses n bytes into dst (cap bytes, at least cairn__codec_bound: with
 * less, zstd and deflate take slower, bounds-checked paths). NO_GAIN when
 * the result is not smaller than n, so the chunk is better stored raw.
 * `level` must be in range (0 = default). */
cairn__codec_result cairn__codec_compress(cairn__coder *c, uint32_t codec, int32_t level,
                                          const uint8_t *src, size_t n, uint8_t *dst, size_t cap,
                                          size_t *out_len);
/* Decodes all n stored bytes into exactly raw_len bytes of dst. On failure
 * `why` (may be NULL) gets the codec's own words for the message. */
cairn__codec_result cairn__codec_decompress(cairn__coder *c, uint32_t codec, const uint8_t *src,
                                            size_t n, uint8_t *dst, size_t raw_len, char *why,
                                            size_t why_size);

#endif
