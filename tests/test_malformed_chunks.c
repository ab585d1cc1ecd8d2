/* test_malformed_chunks.c -- hostile compressed tensors (docs/FORMAT.md
 * §4.2): chunk tables with overlaps, gaps and lying sizes, codec and filter
 * ids that do not exist, decompression bombs inside one chunk, short and
 * truncated chunks, trailing garbage, damaged chunk bytes; and every byte
 * flip and truncation of a small compressed file. Each is refused with a
 * specific status and a message that names the file, tensor, chunk and
 * offset; none crashes or allocates by a declared size (ASan). */
#include "testutil.h"

#include "chunkfile.h"
#include <bzlib.h>
#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#define CHUNK (UINT64_C(64) << 10)

/* Opens, verifies and reads everything; returns the first failure (or OK)
 * and keeps its message. */
static cairn_status exercise(const uint8_t *p, size_t size, unsigned flags, cairn_error *out)
{
    cairn_file *f;
    cairn_error err;
    cairn_open_opts o = {.struct_size = sizeof o, .flags = flags};
    cairn_status st = cairn_file_open_memory(p, size, &o, &f, &err);
    if (st != CAIRN_OK) {
        if (out)
            *out = err;
        return err.message[0] ? st : (cairn_status)-1;
    }
    cairn_status first = CAIRN_OK;
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        if (cairn_tensor_info_at(f, i, &t, &err) != CAIRN_OK || t.raw_size > (64u << 20))
            continue;
        uint8_t *buf = malloc(t.raw_size + 1);
        st = cairn_tensor_read(f, i, t.dtype, buf, (size_t)t.raw_size, 0, &err);
        if (st != CAIRN_OK && first == CAIRN_OK) {
            first = st;
            if (out)
                *out = err;
        }
        if (t.count > 2)
            cairn_tensor_read_range(f, i, 1, t.count - 2, t.dtype, buf,
                                    (size_t)(t.count - 2) * cairn_dtype_size(t.dtype), 0, &err);
        free(buf);
    }
    st = cairn_file_verify(f, &err);
    if (st != CAIRN_OK && first == CAIRN_OK) {
        first = st;
        if (out)
            *out = err;
    }
    cairn_file_close(f);
    return first;
}

static int is_bad_input(cairn_status st)
{
    return st == CAIRN_E_CORRUPT || st == CAIRN_E_CHECKSUM || st == CAIRN_E_FORMAT ||
           st == CAIRN_E_LIMIT || st == CAIRN_E_UNSUPPORTED;
}

/* A writer-made file: one F32 tensor "x" in 4 zstd chunks of 64 KiB. */
static uint8_t *make_sample(size_t *size, uint32_t codec, uint64_t count)
{
    float *x = malloc(count * sizeof *x + 1);
    for (uint64_t i = 0; i < count; i++)
        x[i] = (float)(i % 500) * 0.25f;
    cairn_write_opts o = {.struct_size = sizeof o, .codec = codec,
                          .filter = CAIRN_FILTER_SHUFFLE, .chunk_size = CHUNK};
    cairn_writer *w;
    cairn_error err;
    void *mem = NULL;
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 1, &count, x, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, size, &err));
    free(x);
    return mem;
}

typedef struct table_edit {
    const char *what;
    int field;     /* 0: table header, 1: entry `entry`, 2: record */
    int entry;
    int offset;    /* within the header / entry / record */
    int width;
    int64_t delta; /* added to the field, or, with set, its new value */
    int set;
    cairn_status expect;
    const char *says; /* a phrase the message must hold */
} table_edit;

static void test_table_edits(void)
{
    size_t size;
    uint8_t *good = make_sample(&size, CAIRN_CODEC_ZSTD, 4 * 16384);
    cairn_error err;
    CHECK(exercise(good, size, 0, &err) == CAIRN_OK);
    static const table_edit edits[] = {
        {"overlap", 1, 1, CE_OFFSET, 8, -1, 0, CAIRN_E_CORRUPT, "overlapping chunk 0"},
        {"gap", 1, 2, CE_OFFSET, 8, +3, 0, CAIRN_E_CORRUPT, "gap of 3 bytes"},
        {"first chunk not at 0", 1, 0, CE_OFFSET, 8, +1, 0, CAIRN_E_CORRUPT, "gap"},
        {"raw smaller", 1, 0, CE_RAW, 4, -4, 0, CAIRN_E_CORRUPT, "declares 65532 raw bytes"},
        {"raw larger", 1, 1, CE_RAW, 4, +4, 0, CAIRN_E_CORRUPT, "declares 65540 raw bytes"},
        {"last raw larger", 1, 3, CE_RAW, 4, +1, 0, CAIRN_E_CORRUPT, "chunk 3"},
        {"stored > raw", 1, 3, CE_STORED, 4, 70000, 1, CAIRN_E_CORRUPT, "not 1 to its raw size"},
        {"stored 0", 1, 2, CE_STORED, 4, 0, 1, CAIRN_E_CORRUPT, "stored size 0"},
        {"chunk size 2^25", 0, 0, CT_CHUNK_SIZE, 8, 1 << 25, 1, CAIRN_E_LIMIT, "exceeds"},
        {"chunk size not 2^k", 0, 0, CT_CHUNK_SIZE, 8, 100000, 1, CAIRN_E_CORRUPT, "power of two"},
        {"chunk size 32 KiB", 0, 0, CT_CHUNK_SIZE, 8, 32768, 1, CAIRN_E_CORRUPT, "power of two"},
        {"chunk count +1", 0, 0, CT_CHUNK_COUNT, 8, 5, 1, CAIRN_E_CORRUPT, "5 chunks"},
        {"chunk count huge", 0, 0, CT_CHUNK_COUNT, 8, INT64_C(1) << 40, 1, CAIRN_E_LIMIT, "limit"},
        {"reserved byte", 0, 0, 20, 1, 1, 1, CAIRN_E_CORRUPT, "reserved"},
        {"table size +24", 2, 0, RC_CODEC_TABLE_SIZE, 8, 24, 0, CAIRN_E_CORRUPT, "chunk table"},
        {"table size -24", 2, 0, RC_CODEC_TABLE_SIZE, 8, -24, 0, CAIRN_E_CORRUPT, "chunks take"},
        {"table misaligned", 2, 0, RC_CODEC_TABLE_OFFSET, 8, 4, 0, CAIRN_E_CORRUPT, "8-aligned"},
        {"table in records", 2, 0, RC_CODEC_TABLE_OFFSET, 8, -128 - 8, 0, CAIRN_E_CORRUPT,
         "between the string table"},
        {"table wraps", 2, 0, RC_CODEC_TABLE_OFFSET, 8, -8, 1, CAIRN_E_CORRUPT, "8-aligned"},
        {"stored size +1", 2, 0, RC_STORED_SIZE, 8, 1, 0, CAIRN_E_CORRUPT, "a gap at the end"},
        {"stored size -1", 2, 0, RC_STORED_SIZE, 8, -1, 0, CAIRN_E_CORRUPT, "past the stored size"},
        {"shape lies (smaller)", 2, 0, RC_DIMS, 8, -16384, 0, CAIRN_E_CORRUPT, "raw size"},
        {"shape and raw size lie", 2, 0, RC_RAW_SIZE, 8, 4 * 16384 * 4 + 4, 1, CAIRN_E_CORRUPT,
         "raw size"},
        {"filter 1 on a raw tensor", 2, 0, RC_CODEC, 1, 0, 1, CAIRN_E_CORRUPT, "uncompressed"},
    };
    uint8_t *copy = malloc(size);
    size_t rec = cf_record_at(good, size), tab = cf_table_at(good, size);
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        const table_edit *ed = &edits[e];
        memcpy(copy, good, size);
        uint8_t *at = ed->field == 0 ? copy + tab + ed->offset
                      : ed->field == 1 ? copy + tab + CT_HEADER_SIZE + ed->entry * CE_SIZE + ed->offset
                                       : copy + rec + ed->offset;
        uint64_t v = ed->width == 8 ? cairn__le64(at) : ed->width == 4 ? cairn__le32(at) : at[0];
        v = ed->set ? (uint64_t)ed->delta : v + (uint64_t)ed->delta;
        for (int k = 0; k < ed->width; k++)
            at[k] = (uint8_t)(v >> (8 * k));
        cf_reseal(copy, size);
        cairn_error why = {0};
        cairn_status st = exercise(copy, size, 0, &why);
        int said = strstr(why.message, ed->says) != NULL;
        int named = strstr(why.message, "<memory>") && strstr(why.message, "'x'");
        if (st != ed->expect || !said || !named)
            fprintf(stderr, "edit '%s': status %d (expected %d): %s\n", ed->what, (int)st,
                    (int)ed->expect, why.message);
        CHECK(st == ed->expect && said && named);
    }
    /* codec and filter ids that do not exist: the file opens, the tensor is
     * unreadable (UNSUPPORTED, naming it), verify says it cannot check it */
    for (int k = 0; k < 2; k++) {
        memcpy(copy, good, size);
        copy[rec + (k ? RC_FILTER : RC_CODEC)] = k ? 7 : 9;
        cf_reseal(copy, size);
        cairn_file *f;
        CHECK_OK(cairn_file_open_memory(copy, size, NULL, &f, &err));
        float x;
        float *all = malloc(4 * 16384 * 4);
        CHECK_ST(cairn_tensor_read(f, 0, CAIRN_F32, all, 4 * 16384 * 4, 0, &err),
                 CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, k ? "filter 7" : "codec 9") && strstr(err.message, "'x'"));
        CHECK_ST(cairn_tensor_read_range(f, 0, 0, 1, CAIRN_F32, &x, 4, 0, &err),
                 CAIRN_E_UNSUPPORTED);
        CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_UNSUPPORTED);
        cairn_tensor_info t;
        CHECK_OK(cairn_tensor_info_at(f, 0, &t, &err));
        CHECK(t.codec == (k ? CAIRN_CODEC_ZSTD : 9u));
        free(all);
        cairn_file_close(f);
    }
    /* a compressed tensor must have bytes */
    memcpy(copy, good, size);
    cairn__put64(copy + rec + RC_DIMS, 0);
    cairn__put64(copy + rec + RC_RAW_SIZE, 0);
    cf_reseal(copy, size);
    CHECK(exercise(copy, size, 0, &err) == CAIRN_E_CORRUPT && strstr(err.message, "empty"));
    /* a damaged byte in chunk 2's stored bytes: its own checksum names it */
    memcpy(copy, good, size);
    uint64_t off2 = cairn__le64(copy + tab + CT_HEADER_SIZE + 2 * CE_SIZE + CE_OFFSET);
    copy[cairn__le64(copy + rec + RC_DATA_OFFSET) + off2 + 5] ^= 0x40;
    cairn_file *f;
    CHECK_OK(cairn_file_open_memory(copy, size, NULL, &f, &err));
    float part[10];
    CHECK_OK(cairn_tensor_read_range(f, 0, 0, 10, CAIRN_F32, part, sizeof part, 0, &err));
    CHECK_ST(cairn_tensor_read_range(f, 0, 2 * 16384, 10, CAIRN_F32, part, sizeof part, 0, &err),
             CAIRN_E_CHECKSUM);
    CHECK(strstr(err.message, "chunk 2") && strstr(err.message, "offset") &&
          strstr(err.message, "'x'"));
    cairn_file_close(f);
    free(copy);
    cairn_free(good);
}

/* ----------------------------------------------------- crafted streams */

static uint8_t zeros16m[16 << 20];

typedef struct crafted {
    const char *what;
    uint8_t codec;
    uint8_t *bytes;
    size_t len;
    cairn_status expect;
    const char *says;
} crafted;

static cairn_status read_crafted(const crafted *c, cairn_error *err)
{
    /* chunk 0: the crafted bytes declaring 64 KiB; chunk 1: 64 KiB stored raw */
    static uint8_t raw1[CHUNK];
    cf_chunk ch[2] = {{c->bytes, (uint32_t)c->len, (uint32_t)CHUNK}, {raw1, CHUNK, CHUNK}};
    size_t size;
    uint8_t *p = cf_build(c->codec, 0, CAIRN_F32, 2 * CHUNK / 4, CHUNK, ch, 2, &size);
    cairn_status st = exercise(p, size, 0, err);
    cairn_status st2 = exercise(p, size, CAIRN_OPEN_NO_MMAP, NULL);
    CHECK(st == st2);
    free(p);
    return st;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    memcpy(q, p, n);
    return q;
}

static void test_crafted_streams(void)
{
    crafted cs[16];
    size_t n = 0;
    size_t cap = ZSTD_compressBound(sizeof zeros16m);
    uint8_t *buf = malloc(cap);
    static uint8_t noise[CHUNK];
    uint64_t rng = 5;
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)(tu_rand(&rng) % 16);

    /* zstd bomb: 16 MiB of zeros in a few hundred bytes, declared 64 KiB */
    size_t len = ZSTD_compress(buf, cap, zeros16m, sizeof zeros16m, 3);
    cs[n++] = (crafted){"zstd bomb", CAIRN_CODEC_ZSTD, dup_bytes(buf, len), len, CAIRN_E_CORRUPT,
                        "more bytes than its declared raw size"};
    /* the same bomb with no content size in its frame header: caught while decoding */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    ZSTD_inBuffer in = {zeros16m, sizeof zeros16m, 0};
    ZSTD_outBuffer out = {buf, cap, 0};
    ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end);
    ZSTD_freeCCtx(cc);
    cs[n++] = (crafted){"zstd bomb, streamed", CAIRN_CODEC_ZSTD, dup_bytes(buf, out.pos), out.pos,
                        CAIRN_E_CORRUPT, "more bytes than its declared raw size"};
    len = (size_t)LZ4_compress_default((const char *)zeros16m, (char *)buf, 1 << 20, (int)cap);
    cs[n++] = (crafted){"lz4 bomb", CAIRN_CODEC_LZ4, dup_bytes(buf, len), len, CAIRN_E_CORRUPT,
                        "lz4 block is malformed or decodes past the declared size"};
    uLongf zl = cap;
    compress2(buf, &zl, zeros16m, 1 << 20, 9);
    cs[n++] = (crafted){"zlib bomb", CAIRN_CODEC_ZLIB, dup_bytes(buf, zl), zl, CAIRN_E_CORRUPT,
                        "more bytes than its declared raw size"};
    unsigned bl = (unsigned)cap;
    BZ2_bzBuffToBuffCompress((char *)buf, &bl, (char *)zeros16m, 1 << 20, 9, 0, 0);
    cs[n++] = (crafted){"bz2 bomb", CAIRN_CODEC_BZ2, dup_bytes(buf, bl), bl, CAIRN_E_CORRUPT,
                        "more bytes than its declared raw size"};
    /* short: a stream of 60000 bytes where 65536 are declared */
    len = ZSTD_compress(buf, cap, noise, 60000, 3);
    cs[n++] = (crafted){"zstd short", CAIRN_CODEC_ZSTD, dup_bytes(buf, len), len, CAIRN_E_CORRUPT,
                        "fewer bytes"};
    zl = cap;
    compress2(buf, &zl, noise, 60000, 6);
    cs[n++] = (crafted){"zlib short", CAIRN_CODEC_ZLIB, dup_bytes(buf, zl), zl, CAIRN_E_CORRUPT,
                        "fewer bytes"};
    len = (size_t)LZ4_compress_default((const char *)noise, (char *)buf, 60000, (int)cap);
    cs[n++] = (crafted){"lz4 short", CAIRN_CODEC_LZ4, dup_bytes(buf, len), len, CAIRN_E_CORRUPT,
                        "fewer bytes"};
    bl = (unsigned)cap;
    BZ2_bzBuffToBuffCompress((char *)buf, &bl, (char *)noise, 60000, 9, 0, 0);
    cs[n++] = (crafted){"bz2 short", CAIRN_CODEC_BZ2, dup_bytes(buf, bl), bl, CAIRN_E_CORRUPT,
                        "fewer bytes"};
    /* truncated: the right stream for 64 KiB, cut in half */
    len = ZSTD_compress(buf, cap, noise, CHUNK, 3);
    cs[n++] = (crafted){"zstd truncated", CAIRN_CODEC_ZSTD, dup_bytes(buf, len / 2), len / 2,
                        CAIRN_E_CORRUPT, "chunk 0"};
    zl = cap;
    compress2(buf, &zl, noise, CHUNK, 6);
    cs[n++] = (crafted){"zlib truncated", CAIRN_CODEC_ZLIB, dup_bytes(buf, zl / 2), zl / 2,
                        CAIRN_E_CORRUPT, "fewer bytes"};
    bl = (unsigned)cap;
    BZ2_bzBuffToBuffCompress((char *)buf, &bl, (char *)noise, CHUNK, 9, 0, 0);
    cs[n++] = (crafted){"bz2 truncated", CAIRN_CODEC_BZ2, dup_bytes(buf, bl / 2), bl / 2,
                        CAIRN_E_CORRUPT, "fewer bytes"};
    /* trailing garbage after a complete stream */
    zl = cap;
    compress2(buf, &zl, noise, CHUNK, 6);
    memcpy(buf + zl, "JUNK!", 5);
    cs[n++] = (crafted){"zlib trailing", CAIRN_CODEC_ZLIB, dup_bytes(buf, zl + 5), zl + 5,
                        CAIRN_E_CORRUPT, "bytes after the end"};
    len = ZSTD_compress(buf, cap, noise, CHUNK, 3);
    memcpy(buf + len, "JUNK!", 5);
    cs[n++] = (crafted){"zstd trailing", CAIRN_CODEC_ZSTD, dup_bytes(buf, len + 5), len + 5,
                        CAIRN_E_CORRUPT, "chunk 0"};
    /* not a stream at all */
    cs[n++] = (crafted){"garbage", CAIRN_CODEC_ZSTD, dup_bytes("garbage!", 8), 8, CAIRN_E_CORRUPT,
                        "not a valid compressed stream"};
    /* the control: a right stream reads */
    len = ZSTD_compress(buf, cap, noise, CHUNK, 3);
    cs[n++] = (crafted){"good", CAIRN_CODEC_ZSTD, dup_bytes(buf, len), len, CAIRN_OK, ""};
    for (size_t i = 0; i < n; i++) {
        cairn_error err = {0};
        cairn_status st = read_crafted(&cs[i], &err);
        int said = strstr(err.message, cs[i].says) != NULL;
        int named = cs[i].expect == CAIRN_OK ||
                    (strstr(err.message, "'x'") && strstr(err.message, "chunk 0") &&
                     strstr(err.message, "offset 64"));
        if (st != cs[i].expect || !said || !named)
            fprintf(stderr, "%s: status %d (expected %d): %s\n", cs[i].what, (int)st,
                    (int)cs[i].expect, err.message);
        CHECK(st == cs[i].expect && said && named);
        free(cs[i].bytes);
    }
    free(buf);
}

/* ------------------------------------------------- flips and truncation */

static uint8_t *make_small(size_t *size)
{
    enum { N = 20000 };
    float *a = malloc(N * 4);
    int16_t *b = malloc(N * 2);
    for (int i = 0; i < N; i++) {
        a[i] = (float)(i % 7);
        b[i] = (int16_t)(i % 3);
    }
    uint64_t n = N;
    cairn_write_opts o = {.struct_size = sizeof o, .codec = CAIRN_CODEC_ZSTD,
                          .filter = CAIRN_FILTER_SHUFFLE, .chunk_size = CHUNK};
    cairn_tensor_opts lz = {.struct_size = sizeof lz, .codec = CAIRN_CODEC_LZ4};
    cairn_writer *w;
    cairn_error err;
    void *mem = NULL;
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 1, &n, a, &err));
    CHECK_OK(cairn_writer_add_ex(w, "b", CAIRN_I16, 1, &n, b, &lz, &err));
    CHECK_OK(cairn_writer_add_alias(w, "c", "a", &err));
    cairn_value *m = cairn_value_map();
    cairn_value_set(m, "k", cairn_value_int(7), &err);
    CHECK_OK(cairn_writer_set_metadata(w, m, &err));
    cairn_value_free(m);
    CHECK_OK(cairn_writer_commit_memory(w, &mem, size, &err));
    free(a);
    free(b);
    return mem;
}

static void test_flips_and_truncation(void)
{
    size_t size;
    uint8_t *good = make_small(&size);
    CHECK(exercise(good, size, CAIRN_OPEN_VERIFY, NULL) == CAIRN_OK);
    fprintf(stderr, "small compressed file: %zu bytes\n", size);
    static const uint8_t masks[] = {0x01, 0x80, 0xFF, 0x10};
    int undetected = 0, bad_trunc = 0;
    uint8_t *copy = malloc(size);
    for (size_t i = 0; i < size; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            memcpy(copy, good, size);
            copy[i] ^= masks[m];
            cairn_status st = exercise(copy, size, 0, NULL);
            if (!is_bad_input(st)) {
                if (undetected < 10)
                    fprintf(stderr, "flip 0x%02x at offset %zu went undetected (status %d)\n",
                            masks[m], i, (int)st);
                undetected++;
            }
        }
    }
    for (size_t n = 0; n < size; n++) {
        uint8_t *t = malloc(n ? n : 1);
        memcpy(t, good, n);
        bad_trunc += !is_bad_input(exercise(t, n, CAIRN_OPEN_VERIFY, NULL));
        free(t);
    }
    /* random damage with the checksums re-sealed, so the table and stream
     * checks themselves meet it */
    uint64_t rng = 17;
    int unexplained = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, good, size);
        int k = 1 + (int)(tu_rand(&rng) % 4);
        for (int j = 0; j < k; j++)
            copy[tu_rand(&rng) % size] = (uint8_t)tu_rand(&rng);
        cf_fix_sums(copy, size);
        unexplained += exercise(copy, size, iter & 1 ? CAIRN_OPEN_NO_MMAP : 0, NULL) ==
                       (cairn_status)-1;
    }
    free(copy);
    CHECK(undetected == 0 && bad_trunc == 0 && unexplained == 0);
    cairn_free(good);
}

int main(void)
{
    test_table_edits();
    test_crafted_streams();
    test_flips_and_truncation();
    TEST_MAIN_END();
}
