/* test_json.c -- the JSON document format (docs/FORMAT.md §18): every dtype
 * round-trips bit for bit (NaN payloads and signs, Inf, -0, subnormals,
 * 64-bit integer extremes, BF16/F16/FP8, complex, empty and scalar
 * tensors), the metadata tree with every value type, the writer's
 * refusals, and the strict reader on malformed, truncated and mutated
 * documents (each refused with a status and a message, never a crash). */
#include "testutil.h"

#include <math.h>

static const cairn_write_opts json_mem = {.struct_size = sizeof json_mem,
                                          .format = CAIRN_FORMAT_JSON};
static const cairn_open_opts json_open = {.struct_size = sizeof json_open,
                                          .format = CAIRN_FORMAT_JSON};

typedef struct tcase {
    const char *name;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[3];
    size_t bytes;
    uint8_t data[64];
} tcase;

#define LE16(x) (uint8_t)((x) & 0xFF), (uint8_t)((x) >> 8)
#define LE32(x) LE16((x) & 0xFFFF), LE16((uint32_t)(x) >> 16)
#define LE64(x) LE32((uint64_t)(x) & 0xFFFFFFFFu), LE32((uint64_t)(x) >> 32)

static const tcase cases[] = {
    {"f64", CAIRN_F64, 1, {6}, 48,
     {LE64(0x3FB999999999999Aull) /* 0.1 */, LE64(0x8000000000000000ull) /* -0 */,
      LE64(0x7FF8000000000000ull) /* NaN */, LE64(0xFFF8000000000001ull) /* -NaN, payload */,
      LE64(0xFFF0000000000000ull) /* -Inf */, LE64(0x0000000000000001ull) /* min subnormal */}},
    {"f32", CAIRN_F32, 2, {2, 3}, 24,
     {LE32(0x3DCCCCCDu), LE32(0xFFC00000u) /* -NaN */, LE32(0x7F800001u) /* signalling */,
      LE32(0x7F7FFFFFu) /* max */, LE32(0x00000001u), LE32(0x80000000u)}},
    {"f16", CAIRN_F16, 1, {4}, 8, {LE16(0x3C00), LE16(0x7E00), LE16(0xFC00), LE16(0x7D01)}},
    {"bf16", CAIRN_BF16, 1, {4}, 8, {LE16(0x3DCD), LE16(0xFFC0), LE16(0x7F80), LE16(0x7F81)}},
    {"e4m3", CAIRN_F8_E4M3, 1, {4}, 4, {0x38, 0x7F, 0xFF, 0x01}},
    {"e5m2", CAIRN_F8_E5M2, 1, {4}, 4, {0x3C, 0x7E, 0xFC, 0x7D}},
    {"i64", CAIRN_I64, 1, {3}, 24, {LE64(0x8000000000000000ull), LE64(0x7FFFFFFFFFFFFFFFull),
                                   LE64(0xFFFFFFFFFFFFFFFFull)}},
    {"u64", CAIRN_U64, 1, {2}, 16, {LE64(0xFFFFFFFFFFFFFFFFull), LE64(0x8000000000000000ull)}},
    {"i8", CAIRN_I8, 1, {3}, 3, {0x80, 0x7F, 0xFF}},
    {"u16", CAIRN_U16, 1, {2}, 4, {LE16(0xFFFF), LE16(0)}},
    {"i32", CAIRN_I32, 1, {2}, 8, {LE32(0x80000000u), LE32(0x7FFFFFFFu)}},
    {"bool", CAIRN_BOOL, 2, {1, 2}, 2, {1, 0}},
    {"c64", CAIRN_C64, 1, {2}, 16, {LE32(0x3F800000u), LE32(0x80000000u), LE32(0x7FC00000u),
                                   LE32(0xFF800000u)}},
    {"c128", CAIRN_C128, 0, {0}, 16, {LE64(0x4000000000000000ull), LE64(0xBFF0000000000000ull)}},
    {"scalar", CAIRN_F32, 0, {0}, 4, {LE32(0x40490FDBu)}},
    {"empty", CAIRN_I16, 3, {2, 0, 3}, 0, {0}},
    {"empty0", CAIRN_F64, 2, {0, 5}, 0, {0}},
    {"name \"quoted\"\n\xc3\xa9\\", CAIRN_U8, 1, {1}, 1, {7}},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static cairn_value *sample_tree(void)
{
    cairn_error err = {0};
    cairn_value *root = cairn_value_map(), *l = cairn_value_list(), *m = cairn_value_map();
    double nan_payload;
    uint64_t bits = 0x7FF0000000000123ull;
    memcpy(&nan_payload, &bits, 8);
    cairn_value_append(l, cairn_value_int(INT64_MIN), &err);
    cairn_value_append(l, cairn_value_float(-0.0), &err);
    cairn_value_append(l, cairn_value_float(NAN), &err);
    cairn_value_append(l, cairn_value_float(nan_payload), &err);
    cairn_value_append(l, cairn_value_float(-INFINITY), &err);
    cairn_value_append(l, cairn_value_float(0.1), &err);
    cairn_value_append(l, cairn_value_float(3.0), &err);
    cairn_value_append(l, cairn_value_bytes("\x00\x01\xff", 3), &err);
    cairn_value_append(l, cairn_value_bytes("", 0), &err);
    cairn_value_append(l, cairn_value_tensor_ref("f32"), &err);
    cairn_value_append(l, cairn_value_null(), &err);
    cairn_value_append(l, cairn_value_bool(1), &err);
    cairn_value_set(m, "s", cairn_value_string_n("a\0b", 3), &err);
    cairn_value_set(m, "empty", cairn_value_map(), &err);
    cairn_value_set(root, "list", l, &err);
    cairn_value_set(root, "map", m, &err);
    return root;
}

static char *json_of(const cairn_value *v)
{
    char *s = NULL;
    cairn_error err = {0};
    return cairn_value_to_json(v, 0, &s, &err) == CAIRN_OK ? s : NULL;
}

static void test_round_trip(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    cairn_value *tree = sample_tree();
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&json_mem, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    for (size_t i = 0; i < N_CASES; i++)
        CHECK_OK(cairn_writer_add(w, cases[i].name, cases[i].dtype, cases[i].rank,
                                  cases[i].dims, cases[i].data, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, len, NULL, &f, &err)); /* detected by content */
    if (!f) {
        fprintf(stderr, "  %s\n", err.message);
        cairn_free(mem);
        cairn_value_free(tree);
        return;
    }
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_JSON && fi.tensor_count == N_CASES && fi.has_metadata);
    for (size_t i = 0; i < N_CASES; i++) {
        uint64_t index;
        cairn_tensor_info t;
        uint8_t got[64] = {0};
        CHECK_OK(cairn_tensor_find(f, cases[i].name, &index, &t, &err));
        CHECK(index == i && t.dtype == cases[i].dtype && t.rank == cases[i].rank &&
              t.raw_size == cases[i].bytes);
        for (uint32_t d = 0; d < t.rank; d++)
            CHECK(t.dims[d] == cases[i].dims[d]);
        CHECK_OK(cairn_tensor_read(f, i, cases[i].dtype, got, cases[i].bytes, CAIRN_READ_VERIFY,
                                   &err));
        if (memcmp(got, cases[i].data, cases[i].bytes) != 0) {
            CHECK(!"tensor bits differ after the round trip");
            fprintf(stderr, "  tensor '%s'\n", cases[i].name);
        }
    }
    cairn_value *back = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &back, &err));
    char *a = json_of(tree), *b = json_of(back);
    CHECK(a && b && strcmp(a, b) == 0);
    CHECK_OK(cairn_file_verify(f, &err));
    /* The values as text: what people and json.load see. */
    const char *text = mem;
    CHECK(strstr(text, "[0.1, -0.0, \"NaN\", \"NaN:0xfff8000000000001\", \"-Infinity\", "
                       "4.94065645841247e-324]") != NULL);
    CHECK(strstr(text, "\"-NaN\"") && strstr(text, "18446744073709551615") &&
          strstr(text, "-9223372036854775808") && strstr(text, "[[], []]"));
    CHECK(strstr(text, "\"name \\\"quoted\\\"\\u000a\xc3\xa9\\\\\"") != NULL);
    cairn_free(a);
    cairn_free(b);
    cairn_value_free(back);
    cairn_value_free(tree);
    cairn_file_close(f);

    /* Every prefix of the document is refused cleanly; random byte flips
     * never crash (ASan watches). */
    int refused = 0;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
        cairn_file *g = NULL;
        cairn_status st = cairn_file_open_memory(mem, cut, &json_open, &g, &err);
        refused += st != CAIRN_OK;
        cairn_file_close(g);
    }
    size_t tries = 0;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 64)
        tries++;
    CHECK(refused == (int)tries);
    uint64_t rng = 12345;
    uint8_t *copy = malloc(len);
    for (int round = 0; copy && round < 3000; round++) {
        memcpy(copy, mem, len);
        copy[tu_rand(&rng) % len] ^= (uint8_t)(1u << (tu_rand(&rng) % 8));
        cairn_file *g = NULL;
        if (cairn_file_open_memory(copy, len, &json_open, &g, &err) == CAIRN_OK) {
            for (uint64_t i = 0; i < cairn_file_count(g); i++) {
                cairn_tensor_info t;
                uint8_t got[64];
                if (cairn_tensor_info_at(g, i, &t, &err) == CAIRN_OK && t.raw_size <= sizeof got)
                    cairn_tensor_read(g, i, t.dtype, got, (size_t)t.raw_size, 0, &err);
            }
            cairn_value *m = NULL;
            cairn_file_read_metadata(g, &m, &err);
            cairn_value_free(m);
        }
        cairn_file_close(g);
    }
    free(copy);
    cairn_free(mem);
}

typedef struct bad_doc {
    const char *what, *text;
    cairn_status want;
    const char *says;
} bad_doc;

#define HEAD "{\"format\": \"cairn-json\", \"version\": 1, \"tensors\": ["
#define T(dtype, shape, data) "{\"name\": \"w\", \"dtype\": \"" dtype "\", \"shape\": " shape \
                              ", \"data\": " data "}"

static const bad_doc bad_docs[] = {
    {"not json", "hello", CAIRN_E_CORRUPT, "expected '{'"},
    {"another format", "{\"format\": \"other\", \"version\": 1, \"tensors\": []}",
     CAIRN_E_FORMAT, "is not \"cairn-json\""},
    {"first key", "{\"version\": 1}", CAIRN_E_FORMAT, "first key"},
    {"version 2", "{\"format\": \"cairn-json\", \"version\": 2, \"tensors\": []}",
     CAIRN_E_UNSUPPORTED, "version 2"},
    {"no tensors", "{\"format\": \"cairn-json\", \"version\": 1}", CAIRN_E_CORRUPT, "needs"},
    {"unknown key", HEAD "], \"extra\": 1}", CAIRN_E_CORRUPT, "unknown key"},
    {"key twice", HEAD "], \"tensors\": []}", CAIRN_E_CORRUPT, "twice"},
    {"trailing bytes", HEAD "]} x", CAIRN_E_CORRUPT, "after the document"},
    {"trailing comma", HEAD T("F32", "[1]", "[1.0]") ",]}", CAIRN_E_CORRUPT, "expected '{'"},
    {"too few", HEAD T("F32", "[3]", "[1.0, 2.0]") "]}", CAIRN_E_CORRUPT, "expected ','"},
    {"too many", HEAD T("F32", "[1]", "[1.0, 2.0]") "]}", CAIRN_E_CORRUPT, "more than the 1"},
    {"ragged", HEAD T("I8", "[2, 2]", "[[1, 2], [3]]") "]}", CAIRN_E_CORRUPT, "expected ','"},
    {"huge shape", HEAD T("F64", "[1000000000000]", "[1.0]") "]}", CAIRN_E_CORRUPT,
     "more elements than the rest"},
    {"overflowing shape", HEAD T("F64", "[4294967296, 4294967296, 4294967296]", "[]") "]}",
     CAIRN_E_CORRUPT, "more elements than the rest"},
    {"dimension too large", HEAD T("F64", "[18446744073709551616]", "[]") "]}",
     CAIRN_E_CORRUPT, "2^64-1"},
    {"rank 9", HEAD T("U8", "[1,1,1,1,1,1,1,1,1]", "[[[[[[[[[1]]]]]]]]]") "]}", CAIRN_E_LIMIT,
     "more than 8 dimensions"},
    {"keys out of order", HEAD "{\"dtype\": \"F32\"}]}", CAIRN_E_CORRUPT, "in this order"},
    {"unknown dtype", HEAD T("F128", "[1]", "[1.0]") "]}", CAIRN_E_UNSUPPORTED, "unknown dtype"},
    {"int out of range", HEAD T("I8", "[1]", "[128]") "]}", CAIRN_E_CORRUPT, "not a I8"},
    {"negative unsigned", HEAD T("U64", "[1]", "[-1]") "]}", CAIRN_E_CORRUPT, "not a U64"},
    {"u64 overflow", HEAD T("U64", "[1]", "[18446744073709551616]") "]}", CAIRN_E_CORRUPT,
     "not a U64"},
    {"fraction for an int", HEAD T("I32", "[1]", "[1.5]") "]}", CAIRN_E_CORRUPT, "not a I32"},
    {"leading zero", HEAD T("I32", "[1]", "[01]") "]}", CAIRN_E_CORRUPT, "expected ']'"},
    {"bare dot", HEAD T("F32", "[1]", "[1.]") "]}", CAIRN_E_CORRUPT, "digit must follow"},
    {"NaN literal", HEAD T("F32", "[1]", "[NaN]") "]}", CAIRN_E_CORRUPT, "expected a number"},
    {"bad special", HEAD T("F32", "[1]", "[\"nan\"]") "]}", CAIRN_E_CORRUPT, "\"NaN\""},
    {"payload not a NaN", HEAD T("F32", "[1]", "[\"NaN:0x3f800000\"]") "]}", CAIRN_E_CORRUPT,
     "hex digits of a NaN"},
    {"Inf for e4m3", HEAD T("F8_E4M3", "[1]", "[\"Infinity\"]") "]}", CAIRN_E_CORRUPT,
     "F8_E4M3"},
    {"bool as int", HEAD T("BOOL", "[1]", "[1]") "]}", CAIRN_E_CORRUPT, "true or false"},
    {"complex as number", HEAD T("C64", "[1]", "[1.0]") "]}", CAIRN_E_CORRUPT, "expected '['"},
    {"duplicate tensor", HEAD T("U8", "[1]", "[1]") "," T("U8", "[1]", "[2]") "]}",
     CAIRN_E_CORRUPT, "appears twice"},
    {"lone surrogate", HEAD "{\"name\": \"\\ud800\", \"dtype\": \"U8\"}]}", CAIRN_E_CORRUPT,
     "unpaired surrogate"},
    {"nul in a name", HEAD "{\"name\": \"a\\u0000\", \"dtype\": \"U8\"}]}", CAIRN_E_UNSUPPORTED,
     "\\u0000"},
    {"raw control byte", HEAD "{\"name\": \"a\tb\"}]}", CAIRN_E_CORRUPT, "control byte"},
    {"bad utf-8", HEAD "{\"name\": \"\xc3\x28\"}]}", CAIRN_E_CORRUPT, "not valid UTF-8"},
    {"bad escape", HEAD "{\"name\": \"\\x41\"}]}", CAIRN_E_CORRUPT, "unknown escape"},
    {"metadata not an object", HEAD "], \"metadata\": [1]}", CAIRN_E_CORRUPT, "must be an object"},
    {"metadata duplicate key", HEAD "], \"metadata\": {\"a\": 1, \"a\": 2}}", CAIRN_E_CORRUPT,
     "duplicate"},
    {"metadata bad $float", HEAD "], \"metadata\": {\"a\": {\"$float\": \"pi\"}}}",
     CAIRN_E_CORRUPT, "$float"},
    {"metadata bad $bytes", HEAD "], \"metadata\": {\"a\": {\"$bytes\": \"A\"}}}",
     CAIRN_E_CORRUPT, "JSON view"},
    {"metadata unterminated", HEAD "], \"metadata\": {\"a\": [1, 2}}", CAIRN_E_CORRUPT,
     "expected ','"},
};

static void test_malformed(void)
{
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
        const bad_doc *b = &bad_docs[i];
        cairn_error err = {0};
        cairn_file *f = NULL;
        cairn_status st = cairn_file_open_memory(b->text, strlen(b->text), &json_open, &f, &err);
        CHECK(st == b->want && strstr(err.message, b->says) != NULL);
        if (st != b->want || !strstr(err.message, b->says))
            fprintf(stderr, "  %s: status %d (wanted %d): %s\n", b->what, st, b->want,
                    err.message);
        cairn_file_close(f);
    }
    /* A number token longer than the bound. */
    char num[700];
    size_t n = (size_t)snprintf(num, sizeof num, "%s", HEAD "{\"name\": \"w\", \"dtype\": \"F64\", "
                                "\"shape\": [1], \"data\": [1.");
    while (n < 600)
        num[n++] = '0';
    n += (size_t)snprintf(num + n, sizeof num - n, "1]}]}");
    cairn_error nerr = {0};
    cairn_file *nf = NULL;
    CHECK_ST(cairn_file_open_memory(num, n, &json_open, &nf, &nerr), CAIRN_E_LIMIT);
    CHECK(strstr(nerr.message, "more than 400 characters") != NULL);
    if (!strstr(nerr.message, "more than 400 characters"))
        fprintf(stderr, "  long number: %s\n", nerr.message);
    /* Metadata nested past the bound: refused before jansson sees it. */
    char deep[600];
    size_t o = (size_t)snprintf(deep, sizeof deep, HEAD "], \"metadata\": ");
    for (int d = 0; d < 70; d++)
        deep[o++] = d ? '[' : '{', o += d ? 0 : (size_t)snprintf(deep + o, sizeof deep - o,
                                                                 "\"k\": ");
    for (int d = 69; d >= 0; d--)
        deep[o++] = d ? ']' : '}';
    deep[o++] = '}';
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open_memory(deep, o, &json_open, &f, &err), CAIRN_E_LIMIT);
    CHECK(strstr(err.message, "nested more than 64") != NULL);
}

static void test_writer_refusals(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint8_t x[4] = {0};
    uint64_t big[2] = {1ull << 30, 0};
    CHECK_OK(cairn_writer_open_memory(&json_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, x, &err));
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, x, &err), CAIRN_E_EXISTS);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&json_mem, &w, &err));
    CHECK_ST(cairn_writer_add_alias(w, "y", "x", &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&json_mem, &w, &err));
    CHECK_ST(cairn_writer_add(w, "e", CAIRN_F32, 2, big, NULL, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "empty lists") != NULL);
    cairn_writer_abort(w);
}

int main(void)
{
    test_round_trip();
    test_malformed();
    test_writer_refusals();
    TEST_MAIN_END();
}
