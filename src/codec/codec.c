/* codec.c -- zstd, lz4, zlib and bzip2 for one chunk at a time (codec.h),
 * and the public codec names. */
#include "codec/codec.h"

#include <bzlib.h>
#include <limits.h>
#include <lz4.h>
#include <lz4hc.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* The largest chunk zstd levels 2-3 compress with small hash tables. */
#define CHUNK_SMALL_TABLES (1u << 20)

void cairn__coder_free(cairn__coder *c)
{
    ZSTD_freeCCtx(c->zstd_c);
    ZSTD_freeDCtx(c->zstd_d);
    free(c->lz4_state);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------- compress */

static cairn__codec_result zstd_compress(cairn__coder *c, int level, const uint8_t *src, size_t n,
                                         uint8_t *dst, size_t cap, size_t *out)
{
    if (!c->zstd_c && !(c->zstd_c = ZSTD_createCCtx()))
        return CAIRN__CODEC_NOMEM;
    ZSTD_CCtx_reset(c->zstd_c, ZSTD_reset_session_and_parameters);
    size_t r = ZSTD_CCtx_setParameter(c->zstd_c, ZSTD_c_compressionLevel, level);
    /* Levels 2 and 3 (zstd's "dfast") size their hash table for inputs far
     * larger than a chunk (2^17 entries at 1 MiB); 2^15 stays in the L2
     * cache. On 1 MiB chunks of shuffled float32 weights: level 3 620 ->
     * 750 MB/s per core, level 2 835 -> 890, ratio within 0.05%. The frame
     * is ordinary zstd either way. */
    if (!ZSTD_isError(r) && (level == 2 || level == 3) && n <= CHUNK_SMALL_TABLES)
        r = ZSTD_CCtx_setParameter(c->zstd_c, ZSTD_c_hashLog, 15);
    if (!ZSTD_isError(r))
        r = ZSTD_compress2(c->zstd_c, dst, cap, src, n);
    if (ZSTD_isError(r))
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? CAIRN__CODEC_NOMEM
                                                                     : CAIRN__CODEC_NO_GAIN;
    *out = r;
    return CAIRN__CODEC_OK;
}

static cairn__codec_result lz4_compress(cairn__coder *c, int level, const uint8_t *src, size_t n,
                                        uint8_t *dst, size_t cap, size_t *out)
{
    if (!c->lz4_state) {
        int size = LZ4_sizeofStateHC() > LZ4_sizeofState() ? LZ4_sizeofStateHC() : LZ4_sizeofState();
        /* LZ4's states want pointer alignment; malloc gives more. */
        if (!(c->lz4_state = malloc((size_t)size)))
            return CAIRN__CODEC_NOMEM;
    }
    int icap = cap > INT_MAX ? INT_MAX : (int)cap;
    int r = level <= 1 ? LZ4_compress_fast_extState(c->lz4_state, (const char *)src, (char *)dst,
                                                    (int)n, icap, 1)
                       : LZ4_compress_HC_extStateHC(c->lz4_state, (const char *)src, (char *)dst,
                                                    (int)n, icap, level);
    if (r <= 0)
        return CAIRN__CODEC_NO_GAIN;
    *out = (size_t)r;
    return CAIRN__CODEC_OK;
}

static cairn__codec_result zlib_compress(cairn__coder *c, int level, const uint8_t *src, size_t n, uint8_t *dst,
                                         size_t cap, size_t *out)
{
    uLongf len = cap;
    int r = compress2(dst, &len, src, n, level);
    if (r == Z_MEM_ERROR)
        return CAIRN__CODEC_NOMEM;
    if (r != Z_OK)
        return CAIRN__CODEC_NO_GAIN;
    *out = len;
    return CAIRN__CODEC_OK;
}

static cairn__codec_result bz2_compress(cairn__coder *c, int level, const uint8_t *src, size_t n, uint8_t *dst,
                                        size_t cap, size_t *out)
{
    unsigned len = cap > UINT_MAX ? UINT_MAX : (unsigned)cap;
    int r = BZ2_bzBuffToBuffCompress((char *)dst, &len, (char *)src, (unsigned)n, level, 0, 0);
    if (r == BZ_MEM_ERROR)
        return CAIRN__CODEC_NOMEM;
    if (r != BZ_OK)
        return CAIRN__CODEC_NO_GAIN;
    *out = len;
    return CAIRN__CODEC_OK;
}

static size_t zstd_bound(size_t n) { return ZSTD_compressBound(n); }
static size_t lz4_bound(size_t n) { return (size_t)LZ4_compressBound(n > INT_MAX ? INT_MAX : (int)n); }
static size_t zlib_bound(size_t n) { return compressBound((uLong)n); }
static size_t bz2_bound(size_t n) { return n + n / 100 + 600; /* bzip2's documented bound */ }

/* ----------------------------------------------------------- decompress */

static void say(char *why, size_t size, const char *text)
{
    if (why && size)
        snprintf(why, size, "%s", text);
}

static cairn__codec_result zstd_decompress(cairn__coder *c, const uint8_t *src, size_t n,
                                           uint8_t *dst, size_t raw, char *why, size_t why_size)
{
    unsigned long long declared = ZSTD_getFrameContentSize(src, n);
    if (declared == ZSTD_CONTENTSIZE_ERROR)
        return say(why, why_size, "not a zstd frame"), CAIRN__CODEC_MALFORMED;
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > raw) {
        if (why && why_size)
            snprintf(why, why_size, "zstd frame header declares %llu bytes", declared);
        return CAIRN__CODEC_OVERFLOW;
    }
    if (!c->zstd_d && !(c->zstd_d = ZSTD_createDCtx()))
        return CAIRN__CODEC_NOMEM;
    size_t r = ZSTD_decompressDCtx(c->zstd_d, dst, raw, src, n);
    if (ZSTD_isError(r)) {
        say(why, why_size, ZSTD_getErrorName(r));
        ZSTD_ErrorCode code = ZSTD_getErrorCode(r);
        return code == ZSTD_error_dstSize_tooSmall ? CAIRN__CODEC_OVERFLOW
               : code == ZSTD_error_memory_allocation ? CAIRN__CODEC_NOMEM
                                                      : CAIRN__CODEC_MALFORMED;
    }
    return r == raw ? CAIRN__CODEC_OK : CAIRN__CODEC_SHORT;
}

static cairn__codec_result lz4_decompress(cairn__coder *c, const uint8_t *src, size_t n, uint8_t *dst, size_t raw,
                                          char *why, size_t why_size)
{
    /* LZ4_decompress_safe never writes past `raw` and fails (negative) on a
     * malformed block or one that would: it cannot tell the two apart. */
    int r = LZ4_decompress_safe((const char *)src, (char *)dst, (int)n, (int)raw);
    if (r < 0) {
        say(why, why_size, "lz4 block is malformed or decodes past the declared size");
        return CAIRN__CODEC_MALFORMED;
    }
    return (size_t)r == raw ? CAIRN__CODEC_OK : CAIRN__CODEC_SHORT;
}

static cairn__codec_result zlib_decompress(cairn__coder *c, const uint8_t *src, size_t n, uint8_t *dst, size_t raw,
                                           char *why, size_t why_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return CAIRN__CODEC_NOMEM;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)raw;
    int r = inflate(&z, Z_FINISH);
    cairn__codec_result res;
    if (r != Z_STREAM_END && z.avail_out == 0 && r != Z_DATA_ERROR && r != Z_MEM_ERROR) {
        /* dst is full but the stream goes on: one spare byte tells whether
         * it still has output (a bomb) or only its end marker. */
        uint8_t spare;
        z.next_out = &spare;
        z.avail_out = 1;
        r = inflate(&z, Z_FINISH);
        if (z.avail_out == 0)
            return inflateEnd(&z), say(why, why_size, "deflate stream goes on"),
                   CAIRN__CODEC_OVERFLOW;
    }
    if (r == Z_STREAM_END)
        res = z.avail_in ? CAIRN__CODEC_TRAILING
              : z.total_out == raw ? CAIRN__CODEC_OK : CAIRN__CODEC_SHORT;
    else if (r == Z_MEM_ERROR)
        res = CAIRN__CODEC_NOMEM;
    else if (r == Z_BUF_ERROR && z.avail_in == 0)
        res = CAIRN__CODEC_SHORT; /* input ran out before the end of the stream */
    else
        res = CAIRN__CODEC_MALFORMED;
    say(why, why_size, z.msg ? z.msg : "zlib stream");
    inflateEnd(&z);
    return res;
}

static cairn__codec_result bz2_decompress(cairn__coder *c, const uint8_t *src, size_t n, uint8_t *dst, size_t raw,
                                          char *why, size_t why_size)
{
    bz_stream s;
    memset(&s, 0, sizeof s);
    if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK)
        return CAIRN__CODEC_NOMEM;
    s.next_in = (char *)src;
    s.avail_in = (unsigned)n;
    s.next_out = (char *)dst;
    s.avail_out = (unsigned)raw;
    uint8_t spare;
    int spare_used = 0, r;
    for (;;) {
        unsigned in_before = s.avail_in, out_before = s.avail_out;
        r = BZ2_bzDecompress(&s);
        if (r != BZ_OK)
            break;
        if (s.avail_out == 0 && !spare_used) {
            /* dst is full: a spare byte tells a bomb from a pending end marker. */
            s.next_out = (char *)&spare;
            s.avail_out = 1;
            spare_used = 1;
            continue;
        }
        if (s.avail_out == 0)
            break; /* the spare byte was written: output goes past raw */
        if (s.avail_in == in_before && s.avail_out == out_before)
            break; /* no progress: the input ended inside the stream */
    }
    cairn__codec_result res;
    uint64_t total = ((uint64_t)s.total_out_hi32 << 32) | s.total_out_lo32;
    if (r == BZ_STREAM_END)
        res = total > raw ? CAIRN__CODEC_OVERFLOW
              : s.avail_in ? CAIRN__CODEC_TRAILING
              : total == raw ? CAIRN__CODEC_OK : CAIRN__CODEC_SHORT;
    else if (r == BZ_OK)
        res = spare_used && s.avail_out == 0 ? CAIRN__CODEC_OVERFLOW : CAIRN__CODEC_SHORT;
    else if (r == BZ_MEM_ERROR)
        res = CAIRN__CODEC_NOMEM;
    else
        res = CAIRN__CODEC_MALFORMED;
    if (res == CAIRN__CODEC_MALFORMED && why && why_size)
        snprintf(why, why_size, "bzip2 error %d", r);
    BZ2_bzDecompressEnd(&s);
    return res;
}

/* ---------------------------------------------------------------- table */

/* One row per codec, indexed by its CAIRN_CODEC_ code (docs/FORMAT.md §4.1):
 * everything else here (names, parsing, checks, messages, bound, dispatch)
 * is derived from it. Adding a codec = its functions + one row + one
 * CAIRN_CODEC_ value. */
typedef struct codec_row {
    uint32_t id;
    const char *name;
    int32_t min, max, def;   /* levels (all 0: the codec takes none) */
    const char *level_note;  /* what the levels mean, when it is not plain, or NULL */
    const char *alias;       /* a second name for the codec at alias_level, or NULL */
    int32_t alias_level;
    size_t (*bound)(size_t n);
    cairn__codec_result (*compress)(cairn__coder *c, int level, const uint8_t *src, size_t n,
                                    uint8_t *dst, size_t cap, size_t *out);
    cairn__codec_result (*decompress)(cairn__coder *c, const uint8_t *src, size_t n,
                                      uint8_t *dst, size_t raw, char *why, size_t why_size);
} codec_row;

static const codec_row rows[] = {
    {CAIRN_CODEC_NONE, "none", 0, 0, 0, NULL, NULL, 0, NULL, NULL, NULL},
    {CAIRN_CODEC_ZSTD, "zstd", 1, 19, ZSTD_CLEVEL_DEFAULT, NULL, NULL, 0, zstd_bound,
     zstd_compress, zstd_decompress},
    {CAIRN_CODEC_LZ4, "lz4", 1, LZ4HC_CLEVEL_MAX, 1, "1 fast, 2 and up HC", "lz4hc",
     LZ4HC_CLEVEL_DEFAULT, lz4_bound, lz4_compress, lz4_decompress},
    {CAIRN_CODEC_ZLIB, "zlib", 1, 9, 6, NULL, NULL, 0, zlib_bound, zlib_compress,
     zlib_decompress},
    {CAIRN_CODEC_BZ2, "bz2", 1, 9, 9, NULL, NULL, 0, bz2_bound, bz2_compress, bz2_decompress},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* The row of a code this library implements (NONE included), or NULL. */
static const codec_row *row_of(uint32_t codec)
{
    return codec < N_ROWS && rows[codec].id == codec ? &rows[codec] : NULL;
}

const char *cairn_codec_name(uint32_t codec)
{
    const codec_row *r = row_of(codec);
    return r ? r->name : NULL;
}

int cairn__codec_known(uint32_t codec) { return codec != CAIRN_CODEC_NONE && row_of(codec); }

void cairn__codec_levels(uint32_t codec, int32_t *min, int32_t *max, int32_t *def)
{
    const codec_row *r = row_of(codec);
    *min = r ? r->min : 0;
    *max = r ? r->max : 0;
    *def = r ? r->def : 0;
}

void cairn__codec_list(char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ROWS && at < size; i++) {
        int k = snprintf(buf + at, size - at, "%s%s (%u)", i ? ", " : "", rows[i].name,
                         rows[i].id);
        at += k > 0 ? (size_t)k : 0;
    }
}

/* "none, zstd[:1-19], lz4[:1-12], lz4hc, ..." for the parse message. */
static void spec_list(char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ROWS && at < size; i++) {
        const codec_row *r = &rows[i];
        int k = r->max ? snprintf(buf + at, size - at, "%s%s[:%d-%d]%s%s", i ? ", " : "",
                                  r->name, r->min, r->max, r->alias ? ", " : "",
                                  r->alias ? r->alias : "")
                       : snprintf(buf + at, size - at, "%s%s", i ? ", " : "", r->name);
        at += k > 0 ? (size_t)k : 0;
    }
}

cairn_status cairn_codec_parse(const char *spec, uint32_t *codec, int32_t *level, cairn_error *err)
{
    if (codec)
        *codec = 0;
    if (level)
        *level = 0;
    if (!spec || !codec || !level)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_codec_parse: NULL argument");
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    const codec_row *c = NULL;
    int32_t lvl = 0;
    for (size_t i = 0; i < N_ROWS && !c; i++) {
        if (strlen(rows[i].name) == len && strncasecmp(spec, rows[i].name, len) == 0)
            c = &rows[i];
        else if (rows[i].alias && strlen(rows[i].alias) == len &&
                 strncasecmp(spec, rows[i].alias, len) == 0)
            c = &rows[i], lvl = rows[i].alias_level;
    }
    if (!c) {
        char list[256];
        spec_list(list, sizeof list);
        return cairn__fail(err, CAIRN_E_ARG, "unknown codec '%.*s' (%s)",
                           (int)(len > 64 ? 64 : len), spec, list);
    }
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || !c->max || v < c->min || v > c->max) {
            if (!c->max)
                return cairn__fail(err, CAIRN_E_ARG, "codec '%s': level must be absent for '%s'",
                                   spec, c->name);
            return cairn__fail(err, CAIRN_E_ARG, "codec '%s': level must be %d to %d%s%s%s", spec,
                               c->min, c->max, c->level_note ? " (" : "",
                               c->level_note ? c->level_note : "", c->level_note ? ")" : "");
        }
        lvl = (int32_t)v;
    }
    *codec = c->id;
    *level = lvl;
    return CAIRN_OK;
}

cairn_status cairn__codec_check(const char *what, uint32_t codec, int32_t level, uint32_t filter,
                                cairn_error *err)
{
    const codec_row *r = row_of(codec);
    if (!r) {
        char list[256];
        cairn__codec_list(list, sizeof list);
        return cairn__fail(err, CAIRN_E_ARG, "%s: codec %u is not one of %s", what, codec, list);
    }
    if (level != 0 && (!r->max || level < r->min || level > r->max))
        return cairn__fail(err, CAIRN_E_ARG, "%s: level %d is not valid for codec %s (%s)", what,
                           level, r->name, r->max ? "see cairn_codec_parse" : "no level");
    if (filter > CAIRN_FILTER_SHUFFLE)
        return cairn__fail(err, CAIRN_E_ARG, "%s: filter %u is not none (0) or shuffle (1)", what,
                           filter);
    return CAIRN_OK;
}

size_t cairn__codec_bound(uint32_t codec, size_t n)
{
    const codec_row *r = row_of(codec);
    return r && r->bound ? r->bound(n) : n;
}

cairn__codec_result cairn__codec_compress(cairn__coder *c, uint32_t codec, int32_t level,
                                          const uint8_t *src, size_t n, uint8_t *dst, size_t cap,
                                          size_t *out_len)
{
    size_t out = 0;
    cairn__codec_result res = CAIRN__CODEC_NO_GAIN;
    const codec_row *r = row_of(codec);
    *out_len = 0;
    /* Chunks are at most 16 MiB (docs/FORMAT.md §7), far inside every
     * codec's int and unsigned sizes. */
    if (!r || !r->compress || n == 0 || n > INT_MAX)
        return CAIRN__CODEC_NO_GAIN;
    res = r->compress(c, level == 0 ? r->def : level, src, n, dst, cap, &out);
    if (res == CAIRN__CODEC_OK && out >= n)
        res = CAIRN__CODEC_NO_GAIN;
    *out_len = res == CAIRN__CODEC_OK ? out : 0;
    return res;
}

cairn__codec_result cairn__codec_decompress(cairn__coder *c, uint32_t codec, const uint8_t *src,
                                            size_t n, uint8_t *dst, size_t raw_len, char *why,
                                            size_t why_size)
{
    say(why, why_size, "");
    const codec_row *r = row_of(codec);
    if (!r || !r->decompress || n > INT_MAX || raw_len > INT_MAX) /* never for a checked table */
        return CAIRN__CODEC_MALFORMED;
    return r->decompress(c, src, n, dst, raw_len, why, why_size);
}
