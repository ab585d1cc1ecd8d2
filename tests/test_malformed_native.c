/* test_malformed_native.c -- hostile .cairn inputs: truncation at every byte,
 * every single-byte corruption, random multi-byte damage and hand-crafted
 * bad fields. Each must give a specific error: never OK, never a crash,
 * never a hang or a huge allocation (ASan enforces the last two). */
#include "testutil.h"

#include "common/internal.h"
#include "format/native/native.h"
#include <cairn.h>
#include <dirent.h>
#include <xxhash.h>

static void *make_sample(size_t *size)
{
    cairn_writer *w;
    cairn_error err;
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t b = -7;
    uint16_t c[3] = {1, 2, 3};
    uint64_t da[2] = {2, 3}, dc = 3;
    CHECK_OK(cairn_writer_open_memory(NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "alpha", CAIRN_F32, 2, da, a, &err));
    CHECK_OK(cairn_writer_add(w, "beta", CAIRN_I64, 0, NULL, &b, &err));
    CHECK_OK(cairn_writer_add(w, "gamma.\xc3\xa9", CAIRN_BF16, 1, &dc, c, &err));
    CHECK_OK(cairn_writer_add_alias(w, "delta", "alpha", &err));
    cairn_value *m = cairn_value_map(), *l = cairn_value_list();
    cairn_value_set(m, "name", cairn_value_string("mlp"), &err);
    cairn_value_append(l, cairn_value_float(1.5), &err);
    cairn_value_append(l, cairn_value_bytes("\x00\x01", 2), &err);
    cairn_value_set(m, "list", l, &err);
    cairn_value_set(m, "ref", cairn_value_tensor_ref("beta"), &err);
    CHECK_OK(cairn_writer_set_metadata(w, m, &err));
    cairn_value_free(m);
    void *mem;
    CHECK_OK(cairn_writer_commit_memory(w, &mem, size, &err));
    return mem;
}

/* Opens (verifying) and reads everything; returns the first failure status. */
static cairn_status exercise(const void *data, size_t size, unsigned open_flags)
{
    cairn_file *f;
    cairn_error err;
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = open_flags, .format = CAIRN_FORMAT_AUTO};
    cairn_status st = cairn_file_open_memory(data, size, &opts, &f, &err);
    if (st != CAIRN_OK) {
        if (err.message[0] == '\0')
            return (cairn_status)-1; /* every failure must explain itself */
        return st;
    }
    st = cairn_file_verify(f, &err);
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        if (cairn_tensor_info_at(f, i, &t, &err) != CAIRN_OK)
            continue;
        void *buf = malloc(t.raw_size + 1);
        cairn_tensor_read(f, i, t.dtype, buf, (size_t)t.raw_size, CAIRN_READ_VERIFY, &err);
        free(buf);
    }
    cairn_value *meta;
    if (cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK)
        cairn_value_free(meta);
    cairn_file_close(f);
    return st;
}

static int is_bad_input(cairn_status st)
{
    return st == CAIRN_E_CORRUPT || st == CAIRN_E_CHECKSUM || st == CAIRN_E_FORMAT ||
           st == CAIRN_E_LIMIT || st == CAIRN_E_UNSUPPORTED;
}

static void test_truncation(const uint8_t *good, size_t size)
{
    int bad = 0;
    for (size_t n = 0; n < size; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(copy, good, n);
        cairn_status st = exercise(copy, n, CAIRN_OPEN_VERIFY);
        if (!is_bad_input(st)) {
            fprintf(stderr, "truncated to %zu bytes: status %d\n", n, (int)st);
            bad++;
        }
        free(copy);
    }
    CHECK(bad == 0);
}

/* verify must notice a change to any single byte of the file. */
static void test_every_byte_flip(const uint8_t *good, size_t size)
{
    static const uint8_t masks[] = {0x01, 0x80, 0xFF, 0x10};
    int undetected = 0;
    uint8_t *copy = malloc(size);
    for (size_t i = 0; i < size; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            memcpy(copy, good, size);
            copy[i] ^= masks[m];
            cairn_status st = exercise(copy, size, 0);
            if (!is_bad_input(st)) {
                if (undetected < 10)
                    fprintf(stderr, "flip 0x%02x at offset %zu went undetected (status %d)\n",
                            masks[m], i, (int)st);
                undetected++;
            }
        }
    }
    free(copy);
    CHECK(undetected == 0);
}

static void test_random_damage(const uint8_t *good, size_t size)
{
    uint64_t rng = 42;
    uint8_t *copy = malloc(size);
    int crashes_would_show = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, good, size);
        int n = 1 + (int)(tu_rand(&rng) % 8);
        for (int k = 0; k < n; k++)
            copy[tu_rand(&rng) % size] = (uint8_t)tu_rand(&rng);
        cairn_status st = exercise(copy, size, CAIRN_OPEN_NO_MMAP);
        if (st == (cairn_status)-1)
            crashes_would_show++;
    }
    free(copy);
    CHECK(crashes_would_show == 0);
}

/* Re-seals a damaged index and trailer so the checksums pass and the
 * structural checks themselves are exercised. */
static void reseal(uint8_t *p, size_t size)
{
    if (size < NATIVE_HEADER_SIZE + NATIVE_TRAILER_SIZE)
        return;
    uint8_t *t = p + size - NATIVE_TRAILER_SIZE;
    uint64_t index = cairn__le64(t + TR_INDEX_OFFSET);
    uint64_t meta_end = cairn__le64(t + TR_META_OFFSET) + cairn__le64(t + TR_META_SIZE);
    if (meta_end > size - NATIVE_TRAILER_SIZE || meta_end < index)
        meta_end = index = 0; /* the edit broke the bounds; the hash does not matter */
    uint64_t h = XXH3_64bits(p + index, (size_t)(meta_end - index));
    memcpy(t + TR_INDEX_HASH, &h, 8);
    h = XXH3_64bits(t, TR_HASH);
    memcpy(t + TR_HASH, &h, 8);
}

typedef struct edit {
    const char *what;
    int in_record; /* offset is within record 0, else within the trailer */
    int offset;
    int width;
    uint64_t value;
    cairn_status expect;
} edit;

static void test_crafted_fields(const uint8_t *good, size_t size)
{
    const uint8_t *t = good + size - NATIVE_TRAILER_SIZE;
    uint64_t index = cairn__le64(t + TR_INDEX_OFFSET);
    static const edit edits[] = {
        {"dtype 0", 1, RC_DTYPE, 2, 0, CAIRN_E_CORRUPT},
        {"dtype 99", 1, RC_DTYPE, 2, 99, CAIRN_E_CORRUPT},
        {"rank 9", 1, RC_RANK, 1, 9, CAIRN_E_LIMIT},
        {"dim beyond rank", 1, RC_DIMS + 8 * 5, 8, 1, CAIRN_E_CORRUPT},
        {"dim overflow", 1, RC_DIMS, 8, UINT64_MAX, CAIRN_E_CORRUPT},
        {"raw size lie", 1, RC_RAW_SIZE, 8, 1000, CAIRN_E_CORRUPT},
        {"offset past index", 1, RC_DATA_OFFSET, 8, UINT64_C(1) << 40, CAIRN_E_CORRUPT},
        {"offset wraps", 1, RC_DATA_OFFSET, 8, UINT64_MAX - 7, CAIRN_E_CORRUPT},
        {"misaligned offset", 1, RC_DATA_OFFSET, 8, 65, CAIRN_E_CORRUPT},
        {"alignment 2^17", 1, RC_ALIGN_LOG2, 1, 17, CAIRN_E_LIMIT},
        {"name past strings", 1, RC_NAME_OFFSET, 4, 0xFFFFFFF0u, CAIRN_E_CORRUPT},
        {"name length 0", 1, RC_NAME_LEN, 4, 0, CAIRN_E_CORRUPT},
        {"name length huge", 1, RC_NAME_LEN, 4, 0xFFFFFFFFu, CAIRN_E_CORRUPT},
        {"unknown codec", 1, RC_CODEC, 1, 7, CAIRN_E_UNSUPPORTED},
        {"tensor count huge", 0, TR_COUNT, 8, UINT64_C(1) << 40, CAIRN_E_LIMIT},
        {"tensor count +1", 0, TR_COUNT, 8, 5, CAIRN_E_CORRUPT},
        {"record size 64", 0, TR_RECORD_SIZE, 4, 64, CAIRN_E_LIMIT},
        {"index offset 0", 0, TR_INDEX_OFFSET, 8, 0, CAIRN_E_CORRUPT},
        /* found by fuzz_native: index_offset + records wrapped past 2^64 */
        {"index offset wraps", 0, TR_INDEX_OFFSET, 8, UINT64_MAX - 63, CAIRN_E_CORRUPT},
        {"index offset past strings", 0, TR_INDEX_OFFSET, 8, UINT64_C(1) << 40, CAIRN_E_CORRUPT},
        {"strings size huge", 0, TR_STRINGS_SIZE, 8, UINT64_C(1) << 62, CAIRN_E_LIMIT},
        {"meta size past end", 0, TR_META_SIZE, 8, 1u << 20, CAIRN_E_CORRUPT},
        {"signature out of bounds", 0, TR_SIG_SIZE, 8, 64, CAIRN_E_CORRUPT},
        {"major 2", 0, TR_MAJOR, 2, 2, CAIRN_E_CORRUPT}, /* trailer != header */
    };
    uint8_t *copy = malloc(size);
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(copy, good, size);
        uint8_t *base = edits[e].in_record ? copy + index : copy + size - NATIVE_TRAILER_SIZE;
        for (int k = 0; k < edits[e].width; k++)
            base[edits[e].offset + k] = (uint8_t)(edits[e].value >> (8 * k));
        reseal(copy, size);
        cairn_status st = exercise(copy, size, 0);
        if (edits[e].expect == CAIRN_E_UNSUPPORTED) {
            /* an unknown codec makes the tensor unreadable, not the file */
            cairn_file *f;
            cairn_error err;
            float buf[6];
            CHECK_OK(cairn_file_open_memory(copy, size, NULL, &f, &err));
            if (f) {
                CHECK_ST(cairn_tensor_read(f, 0, CAIRN_F32, buf, sizeof buf, 0, &err),
                         CAIRN_E_UNSUPPORTED);
                cairn_file_close(f);
            }
            continue;
        }
        if (st != edits[e].expect)
            fprintf(stderr, "edit '%s': status %d, expected %d\n", edits[e].what, (int)st,
                    (int)edits[e].expect);
        CHECK(st == edits[e].expect);
    }
    /* a newer major version in both places is refused as unsupported */
    memcpy(copy, good, size);
    copy[HD_MAJOR] = 2;
    copy[size - NATIVE_TRAILER_SIZE + TR_MAJOR] = 2;
    reseal(copy, size);
    cairn_file *f;
    cairn_error err;
    CHECK_ST(cairn_file_open_memory(copy, size, NULL, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "2.0") && strstr(err.message, "newer"));
    /* a newer minor version is read */
    memcpy(copy, good, size);
    copy[HD_MINOR] = 7;
    copy[size - NATIVE_TRAILER_SIZE + TR_MINOR] = 7;
    reseal(copy, size);
    CHECK_OK(cairn_file_open_memory(copy, size, NULL, &f, &err));
    cairn_file_close(f);
    /* swapped records (unsorted) are refused */
    memcpy(copy, good, size);
    uint8_t tmp[NATIVE_RECORD_SIZE];
    memcpy(tmp, copy + index, NATIVE_RECORD_SIZE);
    memcpy(copy + index, copy + index + NATIVE_RECORD_SIZE, NATIVE_RECORD_SIZE);
    memcpy(copy + index + NATIVE_RECORD_SIZE, tmp, NATIVE_RECORD_SIZE);
    reseal(copy, size);
    CHECK_ST(cairn_file_open_memory(copy, size, NULL, &f, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "sorted") != NULL);
    /* a duplicate name is refused: point record 1's name at record 0's */
    memcpy(copy, good, size);
    memcpy(copy + index + NATIVE_RECORD_SIZE + RC_NAME_OFFSET, copy + index + RC_NAME_OFFSET, 8);
    reseal(copy, size);
    CHECK_ST(cairn_file_open_memory(copy, size, NULL, &f, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "duplicate") != NULL);
    free(copy);
}

/* Replays every file of tests/corpus/native (inputs that once crashed a
 * fuzz target), as is and with re-sealed checksums: none may crash. */
static void test_regression_corpus(void)
{
    const char *src = getenv("CAIRN_SOURCE_DIR");
    char path[4096];
    if (!src) {
        fprintf(stderr, "CAIRN_SOURCE_DIR unset: regression corpus skipped\n");
        return;
    }
    snprintf(path, sizeof path, "%s/tests/corpus/native", src);
    DIR *d = opendir(path);
    CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char file[4400];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        FILE *fp = fopen(file, "rb");
        uint8_t *buf = malloc(1 << 20);
        size_t size = fp ? fread(buf, 1, 1 << 20, fp) : 0;
        if (fp)
            fclose(fp);
        exercise(buf, size, 0);
        reseal(buf, size);
        cairn_status st = exercise(buf, size, CAIRN_OPEN_VERIFY);
        CHECK(st != (cairn_status)-1);
        free(buf);
        n++;
    }
    if (d)
        closedir(d);
    fprintf(stderr, "replayed %d regression inputs\n", n);
    CHECK(n > 0);
}

int main(void)
{
    size_t size;
    uint8_t *good = make_sample(&size);
    CHECK(exercise(good, size, CAIRN_OPEN_VERIFY) == CAIRN_OK);
    test_truncation(good, size);
    test_every_byte_flip(good, size);
    test_random_damage(good, size);
    test_crafted_fields(good, size);
    test_regression_corpus();
    free(good);
    TEST_MAIN_END();
}
