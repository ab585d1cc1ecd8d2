/* test_inert.c -- plain pickles read as inert data (CAIRN_OPEN_INERT): a
 * global nothing allows becomes a {"$class", "args", "state"} node instead of
 * being refused, and is refused (naming it) without the flag. The pickles
 * are written by hand so the test needs no Python; tests/cli_inert.sh covers
 * real pickle.dumps and joblib.dump output. */
#include "testutil.h"

#include <bzlib.h>
#include <cairn.h>
#include <lz4frame.h>
#include <lzma.h>
#include <string.h>
#include <zlib.h>

/* os.system("echo pwned") as protocol 2 writes it: GLOBAL, args, REDUCE. */
static const uint8_t evil[] = "\x80\x02" "cposix\nsystem\n" "X\x0a\x00\x00\x00" "echo pwned"
                              "\x85" "R" ".";

/* NEWOBJ of a class, then BUILD with a dict state: {"w": 1}. */
static const uint8_t obj[] = "\x80\x02" "cpkg.mod\nThing\n" ")" "\x81" "}" "X\x01\x00\x00\x00"
                             "w" "K\x01" "s" "b" ".";

static cairn_status open_it(const uint8_t *p, size_t n, unsigned flags, cairn_file **f,
                            cairn_error *err)
{
    cairn_open_opts o = {.struct_size = sizeof o, .flags = flags};
    return cairn_file_open_memory(p, n, &o, f, err);
}

static void test_refused_without_flag(void)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_ST(open_it(evil, sizeof evil - 1, 0, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "posix.system is not allowed") != NULL);
    CHECK(strstr(err.message, "--inert") != NULL);
}

static const char *str_of(const cairn_value *v)
{
    const void *d = NULL;
    size_t len = 0;
    if (!v || cairn_value_get_data(v, &d, &len) != CAIRN_OK)
        return "";
    static char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)d);
    return buf;
}

static void test_evil_is_a_node(void)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_OK(open_it(evil, sizeof evil - 1, CAIRN_OPEN_INERT, &f, &err));
    if (!f)
        return;
    cairn_value *tree = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    CHECK(!strcmp(str_of(cairn_value_get(tree, "$class")), "posix.system"));
    const cairn_value *args = cairn_value_get(tree, "args");
    CHECK(args && cairn_value_count(args) == 1);
    CHECK(!strcmp(str_of(cairn_value_at(args, 0)), "echo pwned"));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_PICKLE && fi.tensor_count == 0);
    cairn_value_free(tree);
    cairn_file_close(f);
}

static void test_newobj_build(void)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_ST(open_it(obj, sizeof obj - 1, 0, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "pkg.mod.Thing") != NULL);
    CHECK_OK(open_it(obj, sizeof obj - 1, CAIRN_OPEN_INERT, &f, &err));
    if (!f)
        return;
    cairn_value *tree = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    CHECK(!strcmp(str_of(cairn_value_get(tree, "$class")), "pkg.mod.Thing"));
    int64_t w = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_get(cairn_value_get(tree, "state"), "w"), &w));
    CHECK(w == 1);
    cairn_value_free(tree);
    cairn_file_close(f);
}

/* Truncations of a pickle fail cleanly (no crash, no leak) in inert mode. */
static void test_truncations(void)
{
    for (size_t n = 1; n < sizeof obj - 1; n++) {
        cairn_file *f = NULL;
        cairn_error err = {0};
        cairn_status st = open_it(obj, n, CAIRN_OPEN_INERT, &f, &err);
        CHECK(st != CAIRN_OK);
        if (f)
            cairn_file_close(f);
    }
}

/* ------------------------------------------------ compressed joblib files */

/* The compressors joblib uses, applied here in C so no Python is needed. */
enum { Z_ZLIB, Z_BZ2, Z_LZ4, Z_XZ, Z_LZMA, Z_COUNT };
static const char *const z_name[Z_COUNT] = {"compressed", "bzip2", "lz4", "xz", "lzma"};

/* `in` compressed with codec z into a new buffer; its size in *out_len. */
static uint8_t *squeeze(int z, const uint8_t *in, size_t n, size_t *out_len)
{
    size_t cap = n + n / 2 + 4096;
    uint8_t *out = malloc(cap);
    if (!out)
        return NULL;
    int ok = 0;
    if (z == Z_ZLIB) {
        uLongf len = (uLongf)cap;
        ok = compress2(out, &len, in, (uLong)n, 6) == Z_OK;
        *out_len = len;
    } else if (z == Z_BZ2) {
        unsigned len = (unsigned)cap;
        ok = BZ2_bzBuffToBuffCompress((char *)out, &len, (char *)in, (unsigned)n, 9, 0, 0) ==
             BZ_OK;
        *out_len = len;
    } else if (z == Z_LZ4) {
        LZ4F_preferences_t pref;
        memset(&pref, 0, sizeof pref);
        pref.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled; /* as lz4.frame does */
        *out_len = LZ4F_compressFrame(out, cap, in, n, &pref);
        ok = !LZ4F_isError(*out_len);
    } else if (z == Z_XZ) {
        *out_len = 0;
        ok = lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, in, n, out, out_len, cap) ==
             LZMA_OK;
    } else {
        lzma_options_lzma opt;
        lzma_stream st = LZMA_STREAM_INIT;
        ok = !lzma_lzma_preset(&opt, 6) && lzma_alone_encoder(&st, &opt) == LZMA_OK;
        st.next_in = in;
        st.avail_in = n;
        st.next_out = out;
        st.avail_out = cap;
        ok = ok && lzma_code(&st, LZMA_FINISH) == LZMA_STREAM_END;
        *out_len = st.total_out;
        lzma_end(&st);
    }
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

static cairn_status open_limited(const uint8_t *p, size_t n, uint64_t max_inflate,
                                 cairn_file **f, cairn_error *err)
{
    cairn_open_opts o = {.struct_size = sizeof o, .flags = CAIRN_OPEN_INERT,
                         .max_inflate = max_inflate};
    return cairn_file_open_memory(p, n, &o, f, err);
}

/* Every codec: detected by its magic, decompressed, then read as the pickle. */
static void test_codecs_read(void)
{
    for (int z = 0; z < Z_COUNT; z++) {
        size_t n = 0;
        uint8_t *packed = squeeze(z, obj, sizeof obj - 1, &n);
        CHECK(packed != NULL);
        if (!packed)
            continue;
        cairn_file *f = NULL;
        cairn_error err = {0};
        CHECK_ST(open_it(packed, n, 0, &f, &err), CAIRN_E_UNSUPPORTED); /* not inert: refused */
        CHECK(strstr(err.message, "pkg.mod.Thing") != NULL);
        CHECK_OK(open_it(packed, n, CAIRN_OPEN_INERT, &f, &err));
        if (f) {
            cairn_value *tree = NULL;
            CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
            CHECK(!strcmp(str_of(cairn_value_get(tree, "$class")), "pkg.mod.Thing"));
            cairn_value_free(tree);
            cairn_file_close(f);
        }
        free(packed);
    }
}

/* "the Z joblib stream PROBLEM" with `status`, for the codec z. */
static void check_refused(const uint8_t *p, size_t n, uint64_t max_inflate, int z,
                          cairn_status status, const char *problem)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    char want[128];
    snprintf(want, sizeof want, "the %s joblib stream %s", z_name[z], problem);
    CHECK_ST(open_limited(p, n, max_inflate, &f, &err), status);
    if (!strstr(err.message, want) || !strstr(err.message, "offset ")) {
        fprintf(stderr, "wanted '%s' in: %s\n", want, err.message);
        CHECK(0);
    }
    if (f)
        cairn_file_close(f);
}

/* A truncated lz4 frame, a flipped byte under lz4's content checksum and
 * under xz's CRC: each fails as corrupt, naming the codec and the offset. */
static void test_codecs_corrupt(void)
{
    size_t n = 0;
    uint8_t *lz4 = squeeze(Z_LZ4, obj, sizeof obj - 1, &n);
    CHECK(lz4 != NULL);
    if (lz4) {
        check_refused(lz4, n - 1, 0, Z_LZ4, CAIRN_E_CORRUPT, "is truncated");
        check_refused(lz4, n - 8, 0, Z_LZ4, CAIRN_E_CORRUPT, "is truncated"); /* no end mark */
        for (size_t k = 4; k < n; k++) { /* every truncation fails cleanly */
            cairn_file *f = NULL;
            CHECK(open_limited(lz4, k, 0, &f, NULL) == CAIRN_E_CORRUPT);
            if (f)
                cairn_file_close(f);
        }
        lz4[n - 1] ^= 0x01; /* the content checksum */
        check_refused(lz4, n, 0, Z_LZ4, CAIRN_E_CORRUPT, "is corrupt (");
        free(lz4);
    }
    uint8_t *xz = squeeze(Z_XZ, obj, sizeof obj - 1, &n);
    CHECK(xz != NULL);
    if (xz) {
        xz[n / 2] ^= 0x40;
        check_refused(xz, n, 0, Z_XZ, CAIRN_E_CORRUPT, "is corrupt");
        xz[n / 2] ^= 0x40;
        check_refused(xz, n - 5, 0, Z_XZ, CAIRN_E_CORRUPT, "is truncated");
        free(xz);
    }
}

/* A .lzma header declaring a 1 GiB dictionary: refused by liblzma's memory
 * limit before anything that size is allocated. */
static void test_lzma_huge_dictionary(void)
{
    static const uint8_t huge[] = {0x5d, 0x00, 0x00, 0x00, 0x40, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0x00, 0x41, 0x00, 0x00};
    check_refused(huge, sizeof huge, 0, Z_LZMA, CAIRN_E_LIMIT,
                  "declares a dictionary that needs 1025 MiB to decode, more than the 128 "
                  "MiB allowed");
}

/* 1 MiB of zeros under a 64 KiB max_inflate: every codec stops at the limit. */
static void test_codecs_limit(void)
{
    size_t big = 1u << 20;
    uint8_t *zeros = calloc(1, big);
    CHECK(zeros != NULL);
    for (int z = 0; zeros && z < Z_COUNT; z++) {
        size_t n = 0;
        uint8_t *packed = squeeze(z, zeros, big, &n);
        CHECK(packed != NULL);
        if (!packed)
            continue;
        check_refused(packed, n, 64u << 10, z, CAIRN_E_LIMIT,
                      z == Z_ZLIB ? "inflates past the limit" : "decompresses past the limit");
        free(packed);
    }
    free(zeros);
}

int main(void)
{
    test_refused_without_flag();
    test_evil_is_a_node();
    test_newobj_build();
    test_truncations();
    test_codecs_read();
    test_codecs_corrupt();
    test_lzma_huge_dictionary();
    test_codecs_limit();
    TEST_MAIN_END();
}
