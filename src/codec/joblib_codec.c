/* joblib_codec.c -- decompressing joblib.dump's compressed files (zlib,
 * gzip, bzip2, lz4, xz, lzma) before the pickle reader runs them
 * (joblib_codec.h). Every decoder streams into one buffer that grows up to
 * the output limit and no further, so a small file that claims (or really
 * holds) gigabytes costs at most the limit. */
#include "codec/joblib_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bzlib.h>
#include <lz4frame.h>
#include <lzma.h>
#include <zlib.h>

/* liblzma's own memory limit for the xz and lzma decoders: the header of a
 * .lzma file declares its dictionary size (up to 4 GiB) and the decoder
 * allocates it up front, so without a limit a 13-byte file could make it
 * allocate gigabytes. 128 MiB covers every preset (-9 and -9e use a 64 MiB
 * dictionary, about 65 MiB to decode); a larger dictionary is useless here
 * anyway, since the output may not exceed 64 MiB. */
#define JOBLIB_LZMA_MEMLIMIT (UINT64_C(128) << 20)

static const char *const codec_name[] = {"uncompressed", "compressed", "bzip2", "lz4", "xz",
                                         "lzma"};

cairn__joblib_codec cairn__joblib_detect(const uint8_t *h, size_t n)
{
    static const uint8_t lz4[] = {0x04, 0x22, 0x4d, 0x18};
    static const uint8_t xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    if (n >= 2 && ((h[0] == 0x1f && h[1] == 0x8b) ||
                   (h[0] == 0x78 && ((h[0] << 8) | h[1]) % 31 == 0)))
        return CAIRN__JOBLIB_ZLIB;
    if (n >= 3 && h[0] == 'B' && h[1] == 'Z' && h[2] == 'h')
        return CAIRN__JOBLIB_BZ2;
    if (n >= sizeof lz4 && memcmp(h, lz4, sizeof lz4) == 0)
        return CAIRN__JOBLIB_LZ4;
    if (n >= sizeof xz && memcmp(h, xz, sizeof xz) == 0)
        return CAIRN__JOBLIB_XZ;
    if (n >= 2 && h[0] == 0x5d && h[1] == 0x00) /* lc=3 lp=0 pb=2, what Python writes */
        return CAIRN__JOBLIB_LZMA;
    return CAIRN__JOBLIB_NONE;
}

/* A decompressor's output: doubles when full, up to the limit. */
typedef struct unpacked {
    uint8_t *p;
    size_t len, cap;
    uint64_t limit; /* the caller's output limit */
} unpacked;

static int unpacked_init(uint64_t max_inflate, unpacked *u)
{
    u->limit = max_inflate;
    u->len = 0;
    u->cap = u->limit < (1 << 16) ? (size_t)u->limit : (size_t)1 << 16;
    u->p = malloc(u->cap ? u->cap : 1);
    return u->p != NULL;
}

/* Room for more output: 0 when a full buffer may not grow (at the limit, or
 * out of memory), which the caller reports as the limit. The last step
 * stops exactly at the limit, so a limit is never overshot nor undershot. */
static int unpacked_room(unpacked *u)
{
    if (u->len < u->cap)
        return 1;
    size_t cap = u->cap * 2 < u->limit ? u->cap * 2 : (size_t)u->limit;
    uint8_t *bigger = cap > u->cap ? realloc(u->p, cap) : NULL;
    if (!bigger)
        return 0;
    u->p = bigger;
    u->cap = cap;
    return 1;
}

/* Frees the partial output and reports the stream's problem at `at`. */
static cairn_status unpacked_fail(const char *path, unpacked *u, cairn_status st,
                                  cairn__joblib_codec codec, uint64_t at, const char *problem,
                                  cairn_error *err)
{
    free(u->p);
    u->p = NULL;
    return cairn__fail(err, st, "%s: offset %llu: the %s joblib stream %s", path,
                       (unsigned long long)at, codec_name[codec], problem);
}

#define PAST_LIMIT "decompresses past the limit (max_inflate, at most 64 MiB)"

static cairn_status inflate_all(const char *path, unpacked *u, const uint8_t *in,
                                size_t in_len, cairn_error *err)
{
    z_stream z = {0};
    if (inflateInit2(&z, 32 + MAX_WBITS) != Z_OK) /* 32: zlib or gzip */
        return unpacked_fail(path, u, CAIRN_E_NOMEM, CAIRN__JOBLIB_ZLIB, 0, "cannot start: out "
                             "of memory", err);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)(in_len > UINT32_MAX ? UINT32_MAX : in_len);
    int zr = Z_OK;
    while (zr == Z_OK && unpacked_room(u)) {
        z.next_out = u->p + u->len;
        z.avail_out = (uInt)(u->cap - u->len);
        zr = inflate(&z, Z_NO_FLUSH);
        u->len = u->cap - z.avail_out;
    }
    inflateEnd(&z);
    if (zr != Z_STREAM_END)
        return unpacked_fail(path, u, zr == Z_OK ? CAIRN_E_LIMIT : CAIRN_E_CORRUPT,
                             CAIRN__JOBLIB_ZLIB, z.total_in,
                             zr == Z_OK ? "inflates past the limit (max_inflate, at most 64 MiB)"
                                        : "is corrupt",
                             err);
    return CAIRN_OK;
}

/* joblib compress=('bz2', N): one bzip2 stream. */
static cairn_status unbzip_all(const char *path, unpacked *u, const uint8_t *in,
                               size_t in_len, cairn_error *err)
{
    bz_stream z;
    memset(&z, 0, sizeof z);
    if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK)
        return unpacked_fail(path, u, CAIRN_E_NOMEM, CAIRN__JOBLIB_BZ2, 0, "cannot start: out "
                             "of memory", err);
    z.next_in = (char *)in;
    z.avail_in = (unsigned)(in_len > UINT32_MAX ? UINT32_MAX : in_len);
    int zr = BZ_OK;
    while (zr == BZ_OK && unpacked_room(u)) {
        z.next_out = (char *)u->p + u->len;
        z.avail_out = (unsigned)(u->cap - u->len);
        zr = BZ2_bzDecompress(&z);
        u->len = u->cap - z.avail_out;
        if (zr == BZ_OK && z.avail_in == 0 && u->len < u->cap)
            zr = BZ_UNEXPECTED_EOF; /* input used up, output room left, no stream end */
    }
    uint64_t at = ((uint64_t)z.total_in_hi32 << 32) | z.total_in_lo32;
    BZ2_bzDecompressEnd(&z);
    if (zr != BZ_STREAM_END)
        return unpacked_fail(path, u, zr == BZ_OK ? CAIRN_E_LIMIT : CAIRN_E_CORRUPT,
                             CAIRN__JOBLIB_BZ2, at,
                             zr == BZ_OK ? PAST_LIMIT : "is corrupt or truncated", err);
    return CAIRN_OK;
}

/* joblib compress='lz4': one LZ4 frame (python's lz4.frame). LZ4F verifies
 * the frame's content checksum, and each block's, when the frame has them;
 * its own buffers are bounded by the frame format (blocks of at most 4 MiB). */
static cairn_status unlz4_all(const char *path, unpacked *u, const uint8_t *in,
                              size_t in_len, cairn_error *err)
{
    LZ4F_dctx *d = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return unpacked_fail(path, u, CAIRN_E_NOMEM, CAIRN__JOBLIB_LZ4, 0, "cannot start: out "
                             "of memory", err);
    size_t pos = 0, r = 1; /* r: 0 once the frame's end (and checksum) is read */
    int stuck = 0;
    while (r != 0 && !LZ4F_isError(r) && !stuck && unpacked_room(u)) {
        size_t out = u->cap - u->len, took = in_len - pos;
        r = LZ4F_decompress(d, u->p + u->len, &out, in + pos, &took, NULL);
        pos += took;
        u->len += out;
        stuck = took == 0 && out == 0; /* the input is used up before the frame ends */
    }
    LZ4F_freeDecompressionContext(d);
    if (LZ4F_isError(r)) {
        char why[160];
        snprintf(why, sizeof why, "is corrupt (%s)", LZ4F_getErrorName(r));
        return unpacked_fail(path, u, CAIRN_E_CORRUPT, CAIRN__JOBLIB_LZ4, pos, why, err);
    }
    if (r != 0)
        return unpacked_fail(path, u, stuck ? CAIRN_E_CORRUPT : CAIRN_E_LIMIT, CAIRN__JOBLIB_LZ4,
                             pos, stuck ? "is truncated (the file ends inside the frame)"
                                        : PAST_LIMIT, err);
    return CAIRN_OK;
}

/* What a liblzma error means for the file. */
static const char *lzma_problem(lzma_ret r)
{
    switch (r) {
    case LZMA_DATA_ERROR:
        return "is corrupt (its data or a CRC does not match)";
    case LZMA_BUF_ERROR:
        return "is truncated (the file ends inside the stream)";
    case LZMA_FORMAT_ERROR:
        return "has a malformed header";
    case LZMA_OPTIONS_ERROR:
        return "uses options liblzma does not support";
    case LZMA_UNSUPPORTED_CHECK:
        return "uses an integrity check liblzma does not support";
    default:
        return "cannot be decoded";
    }
}

/* joblib compress='xz' (an .xz stream) or 'lzma' (the legacy .lzma format):
 * Python's lzma module, decoded by liblzma within JOBLIB_LZMA_MEMLIMIT. */
static cairn_status unxz_all(const char *path, unpacked *u, cairn__joblib_codec codec,
                             const uint8_t *in, size_t in_len, cairn_error *err)
{
    lzma_stream z = LZMA_STREAM_INIT;
    lzma_ret r = codec == CAIRN__JOBLIB_XZ ? lzma_stream_decoder(&z, JOBLIB_LZMA_MEMLIMIT, 0)
                                           : lzma_alone_decoder(&z, JOBLIB_LZMA_MEMLIMIT);
    if (r != LZMA_OK)
        return unpacked_fail(path, u, CAIRN_E_NOMEM, codec, 0, "cannot start: out of memory",
                             err);
    z.next_in = in;
    z.avail_in = in_len;
    while (r == LZMA_OK && unpacked_room(u)) {
        z.next_out = u->p + u->len;
        z.avail_out = u->cap - u->len;
        r = lzma_code(&z, LZMA_FINISH); /* the whole input is here */
        u->len = u->cap - z.avail_out;
    }
    uint64_t at = z.total_in, need = r == LZMA_MEMLIMIT_ERROR ? lzma_memusage(&z) : 0;
    lzma_end(&z);
    if (r == LZMA_STREAM_END)
        return CAIRN_OK;
    if (r == LZMA_OK)
        return unpacked_fail(path, u, CAIRN_E_LIMIT, codec, at, PAST_LIMIT, err);
    if (r == LZMA_MEM_ERROR)
        return unpacked_fail(path, u, CAIRN_E_NOMEM, codec, at, "needs more memory than there "
                             "is", err);
    if (r == LZMA_MEMLIMIT_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "declares a dictionary that needs %llu MiB to decode, more "
                 "than the %llu MiB allowed", (unsigned long long)((need + (1 << 20) - 1) >> 20),
                 (unsigned long long)(JOBLIB_LZMA_MEMLIMIT >> 20));
        return unpacked_fail(path, u, CAIRN_E_LIMIT, codec, at, why, err);
    }
    return unpacked_fail(path, u, CAIRN_E_CORRUPT, codec, at, lzma_problem(r), err);
}

cairn_status cairn__joblib_unpack(const char *path, uint64_t max_inflate,
                                  cairn__joblib_codec codec,
                                  const uint8_t *in, size_t in_len, uint8_t **out,
                                  size_t *out_len, cairn_error *err)
{
    unpacked u;
    if (!unpacked_init(max_inflate, &u))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    cairn_status st;
    switch (codec) {
    case CAIRN__JOBLIB_ZLIB:
        st = inflate_all(path, &u, in, in_len, err);
        break;
    case CAIRN__JOBLIB_BZ2:
        st = unbzip_all(path, &u, in, in_len, err);
        break;
    case CAIRN__JOBLIB_LZ4:
        st = unlz4_all(path, &u, in, in_len, err);
        break;
    case CAIRN__JOBLIB_XZ:
    case CAIRN__JOBLIB_LZMA:
        st = unxz_all(path, &u, codec, in, in_len, err);
        break;
    default:
        free(u.p);
        return cairn__fail(err, CAIRN_E_ARG, "%s: not a compressed joblib file", path);
    }
    if (st == CAIRN_OK) {
        *out = u.p;
        *out_len = u.len;
    }
    return st;
}
