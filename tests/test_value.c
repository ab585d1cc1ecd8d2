/* test_value.c -- the metadata tree: API, binary encoding, decoding of hostile input, JSON view. */
#include "testutil.h"
#include "common/value_internal.h"

#include <float.h>
#include <jansson.h>
#include <math.h>

/* ------------------------------------------------------------- helpers */

static uint64_t bits_of(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static double double_of(uint64_t b)
{
    double d;
    memcpy(&d, &b, 8);
    return d;
}

/* Structural equality; floats compare by bit pattern. Test trees are shallow. */
static int tree_equal(const cairn_value *a, const cairn_value *b)
{
    cairn_value_type t = cairn_value_get_type(a);
    if (t != cairn_value_get_type(b))
        return 0;
    int ba, bb;
    int64_t ia, ib;
    double da, db;
    const void *pa, *pb;
    size_t la, lb;
    switch (t) {
    case CAIRN_VALUE_NULL:
        return 1;
    case CAIRN_VALUE_BOOL:
        return cairn_value_get_bool(a, &ba) == CAIRN_OK && cairn_value_get_bool(b, &bb) == CAIRN_OK &&
               ba == bb;
    case CAIRN_VALUE_INT:
        return cairn_value_get_int(a, &ia) == CAIRN_OK && cairn_value_get_int(b, &ib) == CAIRN_OK &&
               ia == ib;
    case CAIRN_VALUE_FLOAT:
        return cairn_value_get_float(a, &da) == CAIRN_OK &&
               cairn_value_get_float(b, &db) == CAIRN_OK && bits_of(da) == bits_of(db);
    case CAIRN_VALUE_STRING:
    case CAIRN_VALUE_BYTES:
    case CAIRN_VALUE_TENSOR:
        return cairn_value_get_data(a, &pa, &la) == CAIRN_OK &&
               cairn_value_get_data(b, &pb, &lb) == CAIRN_OK && la == lb &&
               memcmp(pa, pb, la) == 0 && ((const char *)pa)[la] == '\0' &&
               ((const char *)pb)[lb] == '\0';
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP:
        if (cairn_value_count(a) != cairn_value_count(b))
            return 0;
        for (size_t i = 0; i < cairn_value_count(a); i++) {
            if (t == CAIRN_VALUE_MAP &&
                strcmp(cairn_value_key_at(a, i), cairn_value_key_at(b, i)) != 0)
                return 0;
            if (!tree_equal(cairn_value_at(a, i), cairn_value_at(b, i)))
                return 0;
        }
        return 1;
    }
    return 0;
}

static void set_ok(cairn_value *map, const char *key, cairn_value *child)
{
    CHECK(child != NULL);
    CHECK_OK(cairn_value_set(map, key, child, NULL));
}

static void append_ok(cairn_value *list, cairn_value *child)
{
    CHECK(child != NULL);
    CHECK_OK(cairn_value_append(list, child, NULL));
}

#define NAN_PAYLOAD 0x7ff8000000000001ull

/* A tree with every type and the awkward values. */
static cairn_value *sample_tree(void)
{
    cairn_value *root = cairn_value_map();
    set_ok(root, "null", cairn_value_null());
    set_ok(root, "yes", cairn_value_bool(1));
    set_ok(root, "no", cairn_value_bool(0));
    set_ok(root, "imin", cairn_value_int(INT64_MIN));
    set_ok(root, "imax", cairn_value_int(INT64_MAX));
    set_ok(root, "zero", cairn_value_int(0));
    cairn_value *floats = cairn_value_list();
    append_ok(floats, cairn_value_float(double_of(NAN_PAYLOAD)));
    append_ok(floats, cairn_value_float(NAN));
    append_ok(floats, cairn_value_float(-0.0));
    append_ok(floats, cairn_value_float(INFINITY));
    append_ok(floats, cairn_value_float(-INFINITY));
    append_ok(floats, cairn_value_float(DBL_MIN));
    append_ok(floats, cairn_value_float(DBL_TRUE_MIN));
    append_ok(floats, cairn_value_float(DBL_MAX));
    append_ok(floats, cairn_value_float(0.1));
    set_ok(root, "floats", floats);
    set_ok(root, "text", cairn_value_string("h\xc3\xa9llo \xf0\x9f\x98\x80"));
    set_ok(root, "nul", cairn_value_string_n("a\0b", 3));
    set_ok(root, "empty", cairn_value_string(""));
    set_ok(root, "raw", cairn_value_bytes("\x00\xff\x10", 3));
    set_ok(root, "noraw", cairn_value_bytes(NULL, 0));
    set_ok(root, "weight", cairn_value_tensor_ref("layer.0.weight"));
    cairn_value *nested = cairn_value_map();
    cairn_value *inner = cairn_value_list();
    append_ok(inner, cairn_value_map());
    append_ok(inner, cairn_value_list());
    set_ok(nested, "inner", inner);
    set_ok(nested, "\xc3\xa9t\xc3\xa9", cairn_value_int(-5));
    set_ok(root, "nested", nested);
    return root;
}

static cairn_status decode(const uint8_t *p, size_t len, cairn_value **out, cairn_error *err)
{
    return cairn__meta_decode(p, len, "t.cairn", 0, NULL, NULL, out, err);
}

/* Decoding must fail with `expected`, leave *out NULL and say where. */
static void expect_decode_error(const uint8_t *p, size_t len, cairn_status expected,
                                const char *needle)
{
    cairn_value *v = (cairn_value *)1;
    cairn_error err;
    memset(&err, 0, sizeof err);
    CHECK_ST(decode(p, len, &v, &err), expected);
    CHECK(v == NULL);
    CHECK(err.status == expected);
    CHECK(strstr(err.message, "t.cairn: metadata at offset ") == err.message);
    if (needle && !strstr(err.message, needle)) {
        CHECK(!"message lacks the expected text");
        fprintf(stderr, "  message: %s\n  wanted: %s\n", err.message, needle);
    }
    cairn_value_free(v == (cairn_value *)1 ? NULL : v);
}

static void expect_decode_ok(const uint8_t *p, size_t len)
{
    cairn_value *v = NULL;
    cairn_error err;
    memset(&err, 0, sizeof err);
    CHECK_OK(decode(p, len, &v, &err));
    if (!v)
        fprintf(stderr, "  decode failed: %s\n", err.message);
    cairn_value_free(v);
}

/* A small byte builder for hand-made encodings. */
typedef struct buf {
    uint8_t b[4096];
    size_t n;
} buf;

static void b_u8(buf *b, uint8_t v) { b->b[b->n++] = v; }
static void b_u32(buf *b, uint32_t v)
{
    cairn__put32(b->b + b->n, v);
    b->n += 4;
}
static void b_raw(buf *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
/* A root map with one entry "k" whose value the caller appends. */
static void b_root1(buf *b)
{
    b->n = 0;
    b_u8(b, 0x08);
    b_u32(b, 1);
    b_u32(b, 1);
    b_u8(b, 'k');
}

/* ------------------------------------------------------------- the API */

static void test_scalars(void)
{
    int b;
    int64_t i;
    double d;
    const void *data;
    size_t len;

    cairn_value *v = cairn_value_null();
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_NULL);
    b = 7;
    CHECK_ST(cairn_value_get_bool(v, &b), CAIRN_E_ARG);
    CHECK(b == 0);
    CHECK(cairn_value_count(v) == 0);
    CHECK(cairn_value_at(v, 0) == NULL);
    cairn_value_free(v);

    v = cairn_value_bool(42);
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_BOOL);
    CHECK_OK(cairn_value_get_bool(v, &b));
    CHECK(b == 1);
    i = 9;
    CHECK_ST(cairn_value_get_int(v, &i), CAIRN_E_ARG);
    CHECK(i == 0);
    cairn_value_free(v);

    v = cairn_value_int(INT64_MIN);
    CHECK_OK(cairn_value_get_int(v, &i));
    CHECK(i == INT64_MIN);
    d = 1;
    CHECK_ST(cairn_value_get_float(v, &d), CAIRN_E_ARG);
    CHECK(d == 0);
    cairn_value_free(v);

    v = cairn_value_float(double_of(NAN_PAYLOAD));
    CHECK_OK(cairn_value_get_float(v, &d));
    CHECK(bits_of(d) == NAN_PAYLOAD);
    data = v;
    len = 3;
    CHECK_ST(cairn_value_get_data(v, &data, &len), CAIRN_E_ARG);
    CHECK(data == NULL && len == 0);
    cairn_value_free(v);

    v = cairn_value_string_n("a\0b", 3);
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_STRING);
    CHECK_OK(cairn_value_get_data(v, &data, &len));
    CHECK(len == 3 && memcmp(data, "a\0b", 4) == 0);
    cairn_value_free(v);

    v = cairn_value_string("");
    CHECK_OK(cairn_value_get_data(v, &data, &len));
    CHECK(len == 0 && data != NULL && *(const char *)data == '\0');
    cairn_value_free(v);

    v = cairn_value_bytes("\x00\x01", 2);
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_BYTES);
    CHECK_OK(cairn_value_get_data(v, &data, &len));
    CHECK(len == 2 && memcmp(data, "\x00\x01", 2) == 0);
    cairn_value_free(v);
    CHECK(cairn_value_bytes(NULL, 1) == NULL);

    v = cairn_value_tensor_ref("w");
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_TENSOR);
    CHECK_OK(cairn_value_get_data(v, &data, &len));
    CHECK(len == 1 && strcmp(data, "w") == 0);
    cairn_value_free(v);

    /* Invalid UTF-8: overlong, surrogate, above U+10FFFF, truncated. */
    const char *bad[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        CHECK(cairn_value_string(bad[k]) == NULL);
        CHECK(cairn_value_tensor_ref(bad[k]) == NULL);
    }
    CHECK(cairn_value_string(NULL) == NULL);
    CHECK(cairn_value_string_n(NULL, 1) == NULL);
    CHECK(cairn_value_tensor_ref("") == NULL);
    CHECK(cairn_value_tensor_ref(NULL) == NULL);

    char name[4098];
    memset(name, 'n', sizeof name);
    name[4096] = '\0';
    v = cairn_value_tensor_ref(name);
    CHECK(v != NULL);
    cairn_value_free(v);
    name[4096] = 'n';
    name[4097] = '\0';
    CHECK(cairn_value_tensor_ref(name) == NULL);

    CHECK(cairn_value_get_type(NULL) == CAIRN_VALUE_NULL);
    CHECK_ST(cairn_value_get_int(NULL, &i), CAIRN_E_ARG);
    cairn_value_free(NULL);
    CHECK(cairn_value_clone(NULL) == NULL);
}

static void test_containers(void)
{
    cairn_error err;
    cairn_value *list = cairn_value_list();
    for (int k = 0; k < 100; k++)
        append_ok(list, cairn_value_int(k));
    CHECK(cairn_value_count(list) == 100);
    int ordered = 1;
    for (size_t k = 0; k < 100; k++) {
        int64_t i;
        ordered &= cairn_value_get_int(cairn_value_at(list, k), &i) == CAIRN_OK && i == (int64_t)k;
    }
    CHECK(ordered);
    CHECK(cairn_value_at(list, 100) == NULL);
    CHECK(cairn_value_key_at(list, 0) == NULL);
    CHECK(cairn_value_get(list, "0") == NULL);

    cairn_value *map = cairn_value_map();
    set_ok(map, "zeta", cairn_value_int(1));
    set_ok(map, "alpha", cairn_value_int(2));
    set_ok(map, "mid", cairn_value_int(3));
    CHECK(cairn_value_count(map) == 3);
    CHECK(strcmp(cairn_value_key_at(map, 0), "zeta") == 0);
    CHECK(strcmp(cairn_value_key_at(map, 1), "alpha") == 0);
    CHECK(strcmp(cairn_value_key_at(map, 2), "mid") == 0);
    CHECK(cairn_value_key_at(map, 3) == NULL);
    CHECK(cairn_value_get(map, "alpha") == cairn_value_at(map, 1));
    CHECK(cairn_value_get(map, "nope") == NULL);
    CHECK(cairn_value_get(map, NULL) == NULL);

    /* Replacing keeps the position; the old value is freed (ASan checks). */
    set_ok(map, "alpha", cairn_value_string("two"));
    CHECK(cairn_value_count(map) == 3);
    CHECK(strcmp(cairn_value_key_at(map, 1), "alpha") == 0);
    CHECK(cairn_value_get_type(cairn_value_at(map, 1)) == CAIRN_VALUE_STRING);
    /* Setting the node that is already there keeps it alive. */
    cairn_value *same = (cairn_value *)cairn_value_at(map, 1);
    CHECK_OK(cairn_value_set(map, "alpha", same, NULL));
    CHECK(cairn_value_at(map, 1) == same);

    /* Errors leave ownership with the caller. */
    cairn_value *orphan = cairn_value_int(5);
    memset(&err, 0, sizeof err);
    CHECK_ST(cairn_value_append(map, orphan, &err), CAIRN_E_ARG);
    CHECK(err.status == CAIRN_E_ARG && err.message[0]);
    CHECK_ST(cairn_value_set(list, "k", orphan, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_value_set(map, "", orphan, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_value_set(map, "\xc3", orphan, &err), CAIRN_E_ARG);
    CHECK(strstr(err.message, "UTF-8") != NULL);
    CHECK_ST(cairn_value_set(map, NULL, orphan, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_value_set(map, "k", NULL, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_value_append(NULL, orphan, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_value_append(orphan, cairn_value_at(list, 0) ? orphan : NULL, NULL),
             CAIRN_E_ARG);
    CHECK_ST(cairn_value_append(list, list, NULL), CAIRN_E_ARG);
    CHECK_ST(cairn_value_set(map, "self", map, NULL), CAIRN_E_ARG);
    CHECK(cairn_value_count(map) == 3);
    cairn_value_free(orphan);

    set_ok(map, "list", list);
    CHECK(cairn_value_count(map) == 4);
    cairn_value_free(map);
}

static void test_clone(void)
{
    cairn_value *a = sample_tree();
    cairn_value *b = cairn_value_clone(a);
    CHECK(b != NULL && b != a);
    CHECK(tree_equal(a, b));
    /* Deep: changing the original leaves the copy alone. */
    set_ok(a, "text", cairn_value_int(1));
    CHECK(!tree_equal(a, b));
    CHECK(cairn_value_get_type(cairn_value_get(b, "text")) == CAIRN_VALUE_STRING);
    const void *pa, *pb;
    size_t la, lb;
    CHECK_OK(cairn_value_get_data(cairn_value_get(a, "raw"), &pa, &la));
    CHECK_OK(cairn_value_get_data(cairn_value_get(b, "raw"), &pb, &lb));
    CHECK(pa != pb && la == lb);
    cairn_value_free(a);
    cairn_value_free(b);

    cairn_value *s = cairn_value_float(-0.0);
    cairn_value *t = cairn_value_clone(s);
    CHECK(tree_equal(s, t));
    cairn_value_free(s);
    cairn_value_free(t);
}

/* 1e6 nested lists (and maps): freeing, cloning, encoding and printing must
 * not use the C stack in proportion to the depth. */
static void test_deep_tree(void)
{
    const int depth = 1000000;
    int built = 1;
    cairn_value *cur = cairn_value_list();
    for (int k = 1; k < depth && cur; k++) {
        cairn_value *parent = (k & 1) ? cairn_value_list() : cairn_value_map();
        int is_list = cairn_value_get_type(parent) == CAIRN_VALUE_LIST;
        built &= (is_list ? cairn_value_append(parent, cur, NULL)
                          : cairn_value_set(parent, "d", cur, NULL)) == CAIRN_OK;
        if (k % 3 == 0) {
            cairn_value *sib = cairn_value_string("x");
            built &= (is_list ? cairn_value_append(parent, sib, NULL)
                              : cairn_value_set(parent, "s", sib, NULL)) == CAIRN_OK;
        }
        cur = parent;
    }
    CHECK(built);
    cairn_value *root = cairn_value_map();
    CHECK_OK(cairn_value_set(root, "deep", cur, NULL));

    cairn_value *copy = cairn_value_clone(root);
    CHECK(copy != NULL);
    size_t levels = 0;
    for (const cairn_value *v = copy; cairn_value_count(v) > 0; v = cairn_value_at(v, 0))
        levels++;
    CHECK(levels == (size_t)depth);

    uint8_t *enc = (uint8_t *)1;
    size_t enc_len = 7;
    cairn_error err;
    CHECK_ST(cairn__meta_encode(root, NULL, NULL, &enc, &enc_len, &err), CAIRN_E_LIMIT);
    CHECK(enc == NULL && enc_len == 0);
    CHECK(strstr(err.message, "64") != NULL);
    char *json = (char *)1;
    CHECK_ST(cairn_value_to_json(root, 2, &json, &err), CAIRN_E_LIMIT);
    CHECK(json == NULL);

    cairn_value_free(root);
    cairn_value_free(copy);
}

/* ------------------------------------------------------------- encoding */

static void test_golden_encoding(void)
{
    cairn_value *root = cairn_value_map();
    set_ok(root, "a", cairn_value_int(-2));
    cairn_value *list = cairn_value_list();
    append_ok(list, cairn_value_bool(1));
    append_ok(list, cairn_value_null());
    append_ok(list, cairn_value_float(1.0));
    set_ok(root, "b", list);
    set_ok(root, "s", cairn_value_string("hi"));
    set_ok(root, "r", cairn_value_bytes("\x01", 1));
    set_ok(root, "t", cairn_value_tensor_ref("w"));
    set_ok(root, "f", cairn_value_bool(0));
    static const uint8_t expected[] = {
        0x08, 0x06, 0x00, 0x00, 0x00,                                           /* map, 6 */
        0x01, 0x00, 0x00, 0x00, 'a',                                            /* "a" */
        0x03, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,                   /* int -2 */
        0x01, 0x00, 0x00, 0x00, 'b',                                            /* "b" */
        0x07, 0x03, 0x00, 0x00, 0x00,                                           /* list, 3 */
        0x02,                                                                   /* true */
        0x00,                                                                   /* null */
        0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF0, 0x3F,                   /* 1.0 */
        0x01, 0x00, 0x00, 0x00, 's', 0x05, 0x02, 0x00, 0x00, 0x00, 'h', 'i',    /* "hi" */
        0x01, 0x00, 0x00, 0x00, 'r', 0x06, 0x01, 0x00, 0x00, 0x00, 0x01,        /* bytes */
        0x01, 0x00, 0x00, 0x00, 't', 0x09, 0x01, 0x00, 0x00, 0x00, 'w',         /* tensor */
        0x01, 0x00, 0x00, 0x00, 'f', 0x01,                                      /* false */
    };
    uint8_t *enc = NULL;
    size_t len = 0;
    CHECK_OK(cairn__meta_encode(root, NULL, NULL, &enc, &len, NULL));
    CHECK(len == sizeof expected);
    CHECK(enc && len == sizeof expected && memcmp(enc, expected, len) == 0);
    cairn_value *back = NULL;
    CHECK_OK(decode(expected, sizeof expected, &back, NULL));
    CHECK(tree_equal(root, back));
    free(enc);
    cairn_value_free(back);
    cairn_value_free(root);

    /* The empty map. */
    root = cairn_value_map();
    CHECK_OK(cairn__meta_encode(root, NULL, NULL, &enc, &len, NULL));
    CHECK(len == 5 && memcmp(enc, "\x08\0\0\0\0", 5) == 0);
    free(enc);
    cairn_value_free(root);
}

static void test_roundtrip(void)
{
    cairn_value *root = sample_tree();
    uint8_t *e1 = NULL, *e2 = NULL, *e3 = NULL;
    size_t n1 = 0, n2 = 0, n3 = 0;
    CHECK_OK(cairn__meta_encode(root, NULL, NULL, &e1, &n1, NULL));
    CHECK_OK(cairn__meta_encode(root, NULL, NULL, &e2, &n2, NULL));
    CHECK(n1 == n2 && e1 && e2 && memcmp(e1, e2, n1) == 0);
    cairn_value *back = NULL;
    CHECK_OK(decode(e1, n1, &back, NULL));
    CHECK(tree_equal(root, back));
    CHECK_OK(cairn__meta_encode(back, NULL, NULL, &e3, &n3, NULL));
    CHECK(n1 == n3 && e3 && memcmp(e1, e3, n1) == 0);

    /* Spot checks on the decoded values, not just equality with the input. */
    const cairn_value *floats = cairn_value_get(back, "floats");
    double d;
    CHECK_OK(cairn_value_get_float(cairn_value_at(floats, 0), &d));
    CHECK(bits_of(d) == NAN_PAYLOAD);
    CHECK_OK(cairn_value_get_float(cairn_value_at(floats, 2), &d));
    CHECK(bits_of(d) == 0x8000000000000000ull);
    CHECK_OK(cairn_value_get_float(cairn_value_at(floats, 6), &d));
    CHECK(bits_of(d) == 1);
    int64_t i;
    CHECK_OK(cairn_value_get_int(cairn_value_get(back, "imin"), &i));
    CHECK(i == INT64_MIN);
    CHECK_OK(cairn_value_get_int(cairn_value_get(back, "imax"), &i));
    CHECK(i == INT64_MAX);
    CHECK(strcmp(cairn_value_key_at(back, 0), "null") == 0);
    CHECK(strcmp(cairn_value_key_at(back, cairn_value_count(back) - 1), "nested") == 0);

    free(e1);
    free(e2);
    free(e3);
    cairn_value_free(back);
    cairn_value_free(root);
}

static int exists_w(void *ctx, const char *name, size_t len)
{
    int *calls = ctx;
    (*calls)++;
    return len == 1 && name[0] == 'w';
}

static void test_encode_errors(void)
{
    uint8_t *enc = (uint8_t *)1;
    size_t len = 1;
    cairn_error err;
    cairn_value *list = cairn_value_list();
    CHECK_ST(cairn__meta_encode(list, NULL, NULL, &enc, &len, &err), CAIRN_E_ARG);
    CHECK(enc == NULL && len == 0);
    cairn_value_free(list);
    CHECK_ST(cairn__meta_encode(NULL, NULL, NULL, &enc, &len, &err), CAIRN_E_ARG);

    /* Tensor references are checked against the archive. */
    int calls = 0;
    cairn_value *root = cairn_value_map();
    set_ok(root, "ok", cairn_value_tensor_ref("w"));
    CHECK_OK(cairn__meta_encode(root, exists_w, &calls, &enc, &len, &err));
    CHECK(calls == 1);
    free(enc);
    cairn_value *deep = cairn_value_list();
    append_ok(deep, cairn_value_tensor_ref("x"));
    set_ok(root, "bad", deep);
    CHECK_ST(cairn__meta_encode(root, exists_w, &calls, &enc, &len, &err), CAIRN_E_NOT_FOUND);
    CHECK(enc == NULL);
    CHECK(strcmp(err.message,
                 "metadata: tensor reference 'x' names no tensor of the archive") == 0);
    CHECK_OK(cairn__meta_encode(root, NULL, NULL, &enc, &len, &err));
    free(enc);
    cairn_value_free(root);

    /* Depth: the root map is level 1; 64 levels encode, 65 do not. */
    for (int levels = 63; levels <= 65; levels++) {
        cairn_value *cur = cairn_value_list();
        for (int k = 2; k < levels; k++) {
            cairn_value *parent = cairn_value_list();
            append_ok(parent, cur);
            cur = parent;
        }
        root = cairn_value_map();
        set_ok(root, "k", cur);
        cairn_status st = cairn__meta_encode(root, NULL, NULL, &enc, &len, &err);
        CHECK_ST(st, levels <= 64 ? CAIRN_OK : CAIRN_E_LIMIT);
        /* The JSON view has the same bound (jansson prints recursively). */
        char *json = NULL;
        CHECK_ST(cairn_value_to_json(root, 1, &json, NULL), levels <= 64 ? CAIRN_OK : CAIRN_E_LIMIT);
        cairn_free(json);
        if (st == CAIRN_OK) {
            cairn_value *back = NULL;
            CHECK_OK(decode(enc, len, &back, NULL));
            CHECK(tree_equal(root, back));
            cairn_value_free(back);
            free(enc);
        }
        cairn_value_free(root);
    }

    /* The 256 MiB size limit: 5 (map) + 4 + 3 (key) + 5 (bytes header) + n. */
    size_t big = (size_t)CAIRN_META_MAX_SIZE;
    uint8_t *zeros = calloc(1, big + 1);
    CHECK(zeros != NULL);
    if (zeros) {
        root = cairn_value_map();
        set_ok(root, "big", cairn_value_bytes(zeros, big - 16));
        CHECK_ST(cairn__meta_encode(root, NULL, NULL, &enc, &len, &err), CAIRN_E_LIMIT);
        CHECK(enc == NULL && len == 0);
        CHECK(strstr(err.message, "256 MiB") != NULL);
        cairn_value_free(root);
        /* The decoder refuses a section above the limit before reading it. */
        cairn_value *v = (cairn_value *)1;
        zeros[0] = 0x08;
        CHECK_ST(cairn__meta_decode(zeros, big + 1, "t.cairn", 0, NULL, NULL, &v, &err),
                 CAIRN_E_LIMIT);
        CHECK(v == NULL);
        free(zeros);
    }
}

/* ------------------------------------------------------------- decoding */

static void test_decode_truncation_and_corruption(void)
{
    cairn_value *root = sample_tree();
    uint8_t *enc = NULL;
    size_t len = 0;
    CHECK_OK(cairn__meta_encode(root, NULL, NULL, &enc, &len, NULL));
    cairn_value_free(root);
    if (!enc)
        return;

    /* Every strict prefix is an error, never a crash. Length 0 is "no metadata". */
    int all_fail = 1;
    for (size_t n = 1; n < len; n++) {
        cairn_value *v = NULL;
        cairn_error err;
        cairn_status st = decode(enc, n, &v, &err);
        all_fail &= st == CAIRN_E_CORRUPT && v == NULL && err.status == st &&
                    strstr(err.message, "metadata at offset") != NULL;
        cairn_value_free(v);
    }
    CHECK(all_fail);

    /* Every single-byte change decodes or fails cleanly; what decodes
     * re-encodes to exactly the changed bytes (the encoding is canonical). */
    uint8_t *copy = malloc(len);
    int clean = 1, canonical = 1;
    size_t decoded = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (int val = 0; val < 256; val++) {
            if (val == enc[pos])
                continue;
            memcpy(copy, enc, len);
            copy[pos] = (uint8_t)val;
            cairn_value *v = NULL;
            cairn_error err;
            cairn_status st = decode(copy, len, &v, &err);
            if (st != CAIRN_OK) {
                clean &= (st == CAIRN_E_CORRUPT || st == CAIRN_E_LIMIT) && v == NULL &&
                         err.message[0] != '\0';
                continue;
            }
            decoded++;
            uint8_t *re = NULL;
            size_t re_len = 0;
            if (cairn__meta_encode(v, NULL, NULL, &re, &re_len, NULL) != CAIRN_OK)
                canonical = 0;
            else if (!(copy[pos] >= 0x40 && copy[pos] <= 0x7F))
                canonical &= re_len == len && memcmp(re, copy, len) == 0;
            free(re);
            cairn_value_free(v);
        }
    }
    CHECK(clean);
    CHECK(canonical);
    CHECK(decoded > 0);
    free(copy);
    free(enc);
}

static void test_decode_depth(void)
{
    /* Root map (level 1) -> "k" -> nested lists (levels 2..). */
    for (int levels = 63; levels <= 66; levels++) {
        buf b;
        b_root1(&b);
        for (int l = 2; l <= levels; l++) {
            b_u8(&b, 0x07);
            b_u32(&b, l == levels ? 0 : 1);
        }
        if (levels <= 64)
            expect_decode_ok(b.b, b.n);
        else
            expect_decode_error(b.b, b.n, CAIRN_E_LIMIT, "nesting deeper than 64 levels");
    }
    /* Depth counts maps too, and scalars inside level 64 are fine. */
    buf b;
    b_root1(&b);
    for (int l = 2; l <= 64; l++) {
        b_u8(&b, 0x08);
        b_u32(&b, 1);
        b_u32(&b, 1);
        b_u8(&b, 'm');
    }
    b_u8(&b, 0x02);
    expect_decode_ok(b.b, b.n);
    /* The offset names the container that is one level too deep. */
    b_root1(&b);
    for (int l = 2; l <= 65; l++) {
        b_u8(&b, 0x07);
        b_u32(&b, 1);
    }
    b_u8(&b, 0x00);
    char want[64];
    snprintf(want, sizeof want, "offset %d:", 10 + 63 * 5);
    expect_decode_error(b.b, b.n, CAIRN_E_LIMIT, want);
}

static void test_decode_duplicates(void)
{
    buf b;
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 3);
    b_u32(&b, 1);
    b_u8(&b, 'a');
    b_u8(&b, 0x00);
    b_u32(&b, 2);
    b_raw(&b, "ab", 2);
    b_u8(&b, 0x00);
    b_u32(&b, 1);
    b_u8(&b, 'a');
    b_u8(&b, 0x01);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "offset 18: duplicate key 'a'");
    /* Same keys in different maps are fine. */
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 2);
    b_u32(&b, 1);
    b_u8(&b, 'a');
    b_u8(&b, 0x08);
    b_u32(&b, 1);
    b_u32(&b, 1);
    b_u8(&b, 'a');
    b_u8(&b, 0x00);
    b_u32(&b, 1);
    b_u8(&b, 'b');
    b_u8(&b, 0x00);
    expect_decode_ok(b.b, b.n);

    /* A big map: unique keys decode, one duplicate at the end does not. */
    const uint32_t n = 20000;
    size_t cap = 5 + (size_t)n * 14 + 64;
    uint8_t *p = malloc(cap);
    size_t o = 0;
    p[o++] = 0x08;
    cairn__put32(p + o, n + 1);
    o += 4;
    for (uint32_t k = 0; k < n; k++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "k%u", (unsigned)((k * 7919u) % n));
        cairn__put32(p + o, (uint32_t)kl);
        o += 4;
        memcpy(p + o, key, (size_t)kl);
        o += (size_t)kl;
        p[o++] = 0x00;
    }
    size_t last = o;
    cairn__put32(p + o, 3);
    memcpy(p + o + 4, "new", 3);
    p[o + 7] = 0x00;
    o += 8;
    expect_decode_ok(p, o);
    memcpy(p + last + 4, "k17", 3);
    char want[64];
    snprintf(want, sizeof want, "offset %zu: duplicate key 'k17'", last);
    expect_decode_error(p, o, CAIRN_E_CORRUPT, want);
    free(p);
}

static void test_decode_bounds(void)
{
    buf b;
    /* Counts and lengths larger than what remains, refused before allocating. */
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 0xFFFFFFFFu);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "map count 4294967295");
    b_root1(&b);
    b_u8(&b, 0x07);
    b_u32(&b, 0xFFFFFFFFu);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "offset 11: list count 4294967295");
    b_root1(&b);
    b_u8(&b, 0x05);
    b_u32(&b, 99999);
    b_raw(&b, "0123456789", 10);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT,
                        "string length 99999 runs past the end of the section (10 bytes left)");
    b_root1(&b);
    b_u8(&b, 0x06);
    b_u32(&b, 2);
    b_u8(&b, 0);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "bytes length 2 runs past");
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 1);
    b_u32(&b, 0x7FFFFFFF);
    b_u8(&b, 'k');
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "key length 2147483647 runs past");
    /* Exactly enough bytes for the count is fine. */
    b_root1(&b);
    b_u8(&b, 0x07);
    b_u32(&b, 3);
    b_u8(&b, 0x00);
    b_u8(&b, 0x01);
    b_u8(&b, 0x02);
    expect_decode_ok(b.b, b.n);
    /* A map count that passes the 5-bytes rule but not the data. */
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 2);
    b_u32(&b, 5);
    b_raw(&b, "kkkkk", 5);
    b_u8(&b, 0x00);
    b_raw(&b, "\0\0\0", 3);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT,
                        "offset 15: key length runs past the end of the section (3 bytes left)");
    /* Map count 2 in 9 bytes: refused by the 5-bytes-per-entry rule. */
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 2);
    b_u32(&b, 1);
    b_u8(&b, 'k');
    b_raw(&b, "\0\0\0\0", 4);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT,
                        "offset 1: map count 2 needs at least 10 bytes but the section has 9 left");
    /* Truncated fixed-size values. */
    b_root1(&b);
    b_u8(&b, 0x03);
    b_raw(&b, "\0\0\0", 3);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "offset 10: int runs past");
    b_root1(&b);
    b_u8(&b, 0x04);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "float runs past");
    b_root1(&b);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "tag runs past");
}

static void test_decode_text_rules(void)
{
    buf b;
    /* Strings: UTF-8 required, NUL allowed. */
    b_root1(&b);
    b_u8(&b, 0x05);
    b_u32(&b, 2);
    b_raw(&b, "\xc0\x80", 2);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "offset 15: string is not valid UTF-8");
    b_root1(&b);
    b_u8(&b, 0x05);
    b_u32(&b, 3);
    b_raw(&b, "a\0b", 3);
    expect_decode_ok(b.b, b.n);
    /* Bytes: anything. */
    b_root1(&b);
    b_u8(&b, 0x06);
    b_u32(&b, 2);
    b_raw(&b, "\xc0\x80", 2);
    expect_decode_ok(b.b, b.n);
    /* Keys: non-empty, no NUL, UTF-8. */
    const struct {
        const char *key;
        uint32_t len;
        const char *msg;
    } keys[] = {
        {"", 0, "empty key"},
        {"a\0", 2, "key contains a NUL byte"},
        {"\xed\xa0\x80", 3, "key is not valid UTF-8"},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        b.n = 0;
        b_u8(&b, 0x08);
        b_u32(&b, 1);
        b_u32(&b, keys[k].len);
        b_raw(&b, keys[k].key, keys[k].len);
        b_u8(&b, 0x00);
        expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, keys[k].msg);
    }
    /* Tensor names: §4 rule 1. */
    const struct {
        const char *name;
        uint32_t len;
        const char *msg;
    } names[] = {
        {"", 0, "empty name"},
        {"w\0", 2, "NUL"},
        {"\xff", 1, "UTF-8"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        b_root1(&b);
        b_u8(&b, 0x09);
        b_u32(&b, names[k].len);
        b_raw(&b, names[k].name, names[k].len);
        expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, names[k].msg);
    }
    uint8_t *p = malloc(16 + 4097);
    memcpy(p, "\x08\x01\0\0\0\x01\0\0\0k\x09", 11);
    cairn__put32(p + 11, 4097);
    memset(p + 15, 'n', 4097);
    expect_decode_error(p, 15 + 4097, CAIRN_E_CORRUPT, "longer than 4096");
    cairn__put32(p + 11, 4096);
    expect_decode_ok(p, 15 + 4096);
    free(p);
}

static void test_decode_structure(void)
{
    buf b;
    /* The root must be a map. */
    const uint8_t not_map[][5] = {{0x00}, {0x07, 0, 0, 0, 0}, {0x02}, {0x40, 0, 0, 0, 0}};
    const size_t not_map_len[] = {1, 5, 1, 5};
    for (size_t k = 0; k < 4; k++)
        expect_decode_error(not_map[k], not_map_len[k], CAIRN_E_CORRUPT,
                            "offset 0: the root value is not a map");
    /* Trailing bytes. */
    b.n = 0;
    b_u8(&b, 0x08);
    b_u32(&b, 0);
    b_u8(&b, 0x00);
    expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "offset 5: 1 trailing bytes after the root map");
    /* Unknown tags. */
    const uint8_t unknown[] = {0x0A, 0x3F, 0x80, 0xFF};
    for (size_t k = 0; k < sizeof unknown; k++) {
        b_root1(&b);
        b_u8(&b, unknown[k]);
        char want[64];
        snprintf(want, sizeof want, "offset 10: unknown tag 0x%02x", unknown[k]);
        expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, want);
    }
    /* Extension tags are skipped and read as null. */
    const uint8_t ext[] = {0x40, 0x55, 0x7F};
    for (size_t k = 0; k < sizeof ext; k++) {
        b_root1(&b);
        b_u8(&b, 0x07);
        b_u32(&b, 2);
        b_u8(&b, ext[k]);
        b_u32(&b, 3);
        b_raw(&b, "\x07\xff\xff", 3);
        b_u8(&b, 0x02);
        cairn_value *v = NULL;
        CHECK_OK(decode(b.b, b.n, &v, NULL));
        const cairn_value *list = cairn_value_get(v, "k");
        CHECK(cairn_value_count(list) == 2);
        CHECK(cairn_value_get_type(cairn_value_at(list, 0)) == CAIRN_VALUE_NULL);
        CHECK(cairn_value_get_type(cairn_value_at(list, 1)) == CAIRN_VALUE_BOOL);
        cairn_value_free(v);
        b.n -= 1;
        b.b[b.n - 7] = 0x04; /* extension length now runs past the end */
        expect_decode_error(b.b, b.n, CAIRN_E_CORRUPT, "extension length 4 runs past");
    }
    /* No metadata at all reads as an empty map. */
    cairn_value *v = NULL;
    CHECK_OK(decode(NULL, 0, &v, NULL));
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_MAP && cairn_value_count(v) == 0);
    cairn_value_free(v);
    /* Argument errors. */
    cairn_error err;
    CHECK_ST(decode(NULL, 3, &v, &err), CAIRN_E_ARG);
    CHECK_ST(decode(b.b, b.n, NULL, &err), CAIRN_E_ARG);
}

static void test_decode_messages_and_refs(void)
{
    buf b;
    b_root1(&b);
    b_u8(&b, 0x05);
    b_u32(&b, 99999);
    b_raw(&b, "0123456789", 10);
    cairn_value *v = NULL;
    cairn_error err;
    CHECK_ST(cairn__meta_decode(b.b, b.n, "model.cairn", 1224, NULL, NULL, &v, &err),
             CAIRN_E_CORRUPT);
    CHECK(strcmp(err.message, "model.cairn: metadata at offset 1235: string length 99999 runs "
                              "past the end of the section (10 bytes left)") == 0);

    /* Tensor references must name a tensor of the archive. */
    int calls = 0;
    b_root1(&b);
    b_u8(&b, 0x07);
    b_u32(&b, 2);
    b_u8(&b, 0x09);
    b_u32(&b, 1);
    b_u8(&b, 'w');
    b_u8(&b, 0x09);
    b_u32(&b, 1);
    b_u8(&b, 'x');
    CHECK_ST(cairn__meta_decode(b.b, b.n, "m.cairn", 0, exists_w, &calls, &v, &err),
             CAIRN_E_CORRUPT);
    CHECK(v == NULL && calls == 2);
    CHECK(strcmp(err.message, "m.cairn: metadata at offset 26: tensor reference 'x' names no "
                              "tensor of the archive") == 0);
    b.b[b.n - 1] = 'w';
    CHECK_OK(cairn__meta_decode(b.b, b.n, "m.cairn", 0, exists_w, &calls, &v, &err));
    const void *data;
    size_t len;
    CHECK_OK(cairn_value_get_data(cairn_value_at(cairn_value_get(v, "k"), 1), &data, &len));
    CHECK(len == 1 && strcmp(data, "w") == 0);
    cairn_value_free(v);
}

/* ------------------------------------------------------------- JSON */

static void check_json(const cairn_value *v, int indent, const char *expected)
{
    char *json = NULL;
    cairn_error err;
    CHECK_OK(cairn_value_to_json(v, indent, &json, &err));
    CHECK(json != NULL);
    if (json && strcmp(json, expected) != 0) {
        CHECK(!"JSON differs");
        fprintf(stderr, "  got:    %s\n  wanted: %s\n", json, expected);
    }
    cairn_free(json);
}

static void test_json_golden(void)
{
    cairn_value *root = cairn_value_map();
    set_ok(root, "a", cairn_value_int(1));
    cairn_value *list = cairn_value_list();
    append_ok(list, cairn_value_bool(1));
    append_ok(list, cairn_value_null());
    append_ok(list, cairn_value_float(1.0));
    append_ok(list, cairn_value_float(0.5));
    set_ok(root, "b", list);
    set_ok(root, "s", cairn_value_string_n("h\xc3\xa9\"\0", 5));
    set_ok(root, "e", cairn_value_map());
    check_json(root, 0, "{\"a\":1,\"b\":[true,null,1.0,0.5],\"s\":\"h\xc3\xa9\\\"\\u0000\",\"e\":{}}");
    check_json(root, 2,
               "{\n"
               "  \"a\": 1,\n"
               "  \"b\": [\n"
               "    true,\n"
               "    null,\n"
               "    1.0,\n"
               "    0.5\n"
               "  ],\n"
               "  \"s\": \"h\xc3\xa9\\\"\\u0000\",\n"
               "  \"e\": {}\n"
               "}");
    cairn_value_free(root);

    root = cairn_value_map();
    cairn_value *f = cairn_value_list();
    append_ok(f, cairn_value_float(NAN));
    append_ok(f, cairn_value_float(double_of(NAN_PAYLOAD)));
    append_ok(f, cairn_value_float(double_of(0xfff8000000000000ull)));
    append_ok(f, cairn_value_float(INFINITY));
    append_ok(f, cairn_value_float(-INFINITY));
    append_ok(f, cairn_value_float(-0.0));
    append_ok(f, cairn_value_float(0.0));
    append_ok(f, cairn_value_float(0.1));
    append_ok(f, cairn_value_float(1e300));
    append_ok(f, cairn_value_float(-2.5e-300));
    append_ok(f, cairn_value_float(DBL_TRUE_MIN));
    set_ok(root, "f", f);
    cairn_value *ints = cairn_value_list();
    append_ok(ints, cairn_value_int(INT64_MIN));
    append_ok(ints, cairn_value_int(INT64_MAX));
    append_ok(ints, cairn_value_int(-1));
    set_ok(root, "i", ints);
    cairn_value *bytes = cairn_value_list();
    const char *rfc[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    for (int k = 0; k < 7; k++)
        append_ok(bytes, cairn_value_bytes(rfc[k], strlen(rfc[k])));
    append_ok(bytes, cairn_value_bytes("\xfb\xff\xbf", 3));
    set_ok(root, "by", bytes);
    set_ok(root, "t", cairn_value_tensor_ref("enc.w"));
    check_json(root, 0,
               "{\"f\":[{\"$float\":\"nan\"},{\"$float\":\"nan:0x7ff8000000000001\"},"
               "{\"$float\":\"nan:0xfff8000000000000\"},{\"$float\":\"inf\"},"
               "{\"$float\":\"-inf\"},{\"$float\":\"-0\"},0.0,0.10000000000000001,"
               "1.0000000000000001e300,-2.5e-300,4.9406564584124654e-324],"
               "\"i\":[-9223372036854775808,9223372036854775807,-1],"
               "\"by\":[{\"$bytes\":\"\"},{\"$bytes\":\"Zg==\"},{\"$bytes\":\"Zm8=\"},"
               "{\"$bytes\":\"Zm9v\"},{\"$bytes\":\"Zm9vYg==\"},{\"$bytes\":\"Zm9vYmE=\"},"
               "{\"$bytes\":\"Zm9vYmFy\"},{\"$bytes\":\"+/+/\"}],"
               "\"t\":{\"$tensor\":\"enc.w\"}}");
    cairn_value_free(root);

    /* Any node can be printed, not only maps. */
    cairn_value *s = cairn_value_int(7);
    check_json(s, 0, "7");
    check_json(s, 4, "7");
    cairn_value_free(s);
    s = cairn_value_float(-0.0);
    check_json(s, 0, "{\"$float\":\"-0\"}");
    cairn_value_free(s);
    s = cairn_value_list();
    append_ok(s, cairn_value_list());
    check_json(s, 1, "[\n []\n]");
    cairn_value_free(s);

    char *json = (char *)1;
    s = cairn_value_null();
    CHECK_ST(cairn_value_to_json(s, -1, &json, NULL), CAIRN_E_ARG);
    CHECK(json == NULL);
    CHECK_ST(cairn_value_to_json(s, 32, &json, NULL), CAIRN_E_ARG);
    CHECK_ST(cairn_value_to_json(NULL, 0, &json, NULL), CAIRN_E_ARG);
    CHECK_ST(cairn_value_to_json(s, 0, NULL, NULL), CAIRN_E_ARG);
    cairn_value_free(s);
}

/* Random finite doubles print as text that parses back to the same bits. */
static void test_json_float_exact(void)
{
    uint64_t seed = 12345;
    int exact = 1;
    for (int k = 0; k < 20000; k++) {
        double d = double_of(tu_rand(&seed));
        if (!isfinite(d) || d == 0)
            continue;
        cairn_value *v = cairn_value_float(d);
        char *json = NULL;
        CHECK_OK(cairn_value_to_json(v, 0, &json, NULL));
        json_error_t jerr;
        json_t *parsed = json ? json_loads(json, JSON_DECODE_ANY, &jerr) : NULL;
        exact &= parsed && json_is_real(parsed) &&
                 bits_of(json_real_value(parsed)) == bits_of(d) &&
                 strtod(json, NULL) == d;
        json_decref(parsed);
        cairn_free(json);
        cairn_value_free(v);
    }
    CHECK(exact);
}

/* ------------------------------------------------------------- random trees */

static cairn_value *random_tree(uint64_t *seed, int depth)
{
    static const char *const texts[] = {"", "a", "\xc3\xa9", "x\0y", "\xf0\x9f\x98\x80z", "key"};
    uint64_t r = tu_rand(seed);
    int kind = (int)(r % (depth >= 6 ? 7 : 9));
    switch (kind) {
    case 0: return cairn_value_null();
    case 1: return cairn_value_bool((int)(r >> 8) & 1);
    case 2: return cairn_value_int((int64_t)tu_rand(seed));
    case 3: return cairn_value_float(double_of(tu_rand(seed)));
    case 4: {
        size_t t = (r >> 8) % 6;
        return cairn_value_string_n(texts[t], t == 3 ? 3 : strlen(texts[t]));
    }
    case 5: {
        uint8_t raw[8];
        uint64_t x = tu_rand(seed);
        memcpy(raw, &x, 8);
        return cairn_value_bytes(raw, (r >> 8) % 9);
    }
    case 6: return cairn_value_tensor_ref((r >> 8) & 1 ? "w" : "layer.\xc3\xa9");
    case 7: {
        cairn_value *l = cairn_value_list();
        for (int k = (int)((r >> 8) % 5); k > 0; k--)
            append_ok(l, random_tree(seed, depth + 1));
        return l;
    }
    default: {
        cairn_value *m = cairn_value_map();
        for (int k = (int)((r >> 8) % 5); k > 0; k--) {
            char key[24];
            snprintf(key, sizeof key, "k%u", (unsigned)(tu_rand(seed) % 8));
            set_ok(m, key, random_tree(seed, depth + 1));
        }
        return m;
    }
    }
}

static void test_random_roundtrips(void)
{
    uint64_t seed = 99;
    int ok = 1;
    for (int k = 0; k < 500; k++) {
        cairn_value *root = cairn_value_map();
        for (int e = (int)(tu_rand(&seed) % 6); e > 0; e--) {
            char key[24];
            snprintf(key, sizeof key, "r%d", e);
            set_ok(root, key, random_tree(&seed, 1));
        }
        uint8_t *e1 = NULL, *e2 = NULL;
        size_t n1 = 0, n2 = 0;
        cairn_value *back = NULL, *copy = cairn_value_clone(root);
        ok &= cairn__meta_encode(root, NULL, NULL, &e1, &n1, NULL) == CAIRN_OK;
        ok &= e1 && decode(e1, n1, &back, NULL) == CAIRN_OK;
        ok &= back && tree_equal(root, back) && tree_equal(root, copy);
        ok &= back && cairn__meta_encode(back, NULL, NULL, &e2, &n2, NULL) == CAIRN_OK;
        ok &= e2 && n1 == n2 && memcmp(e1, e2, n1) == 0;
        char *json = NULL;
        ok &= cairn_value_to_json(root, k % 3, &json, NULL) == CAIRN_OK;
        json_t *parsed = json ? json_loads(json, JSON_ALLOW_NUL, NULL) : NULL;
        ok &= parsed && json_is_object(parsed) && json_object_size(parsed) == cairn_value_count(root);
        json_decref(parsed);
        cairn_free(json);
        free(e1);
        free(e2);
        cairn_value_free(back);
        cairn_value_free(copy);
        cairn_value_free(root);
    }
    CHECK(ok);
}


/* ------------------------------------------------------------ packed lists */

/* The JSON text jansson prints for a tree built node by node: the reference
 * the streaming printer of value_json.c must match byte for byte. */
static json_t *ref_tagged(const char *tag, const char *text, size_t len)
{
    json_t *o = json_object();
    json_object_set_new(o, tag, json_stringn(text, len));
    return o;
}

static json_t *ref_json(const cairn_value *v)
{
    const void *d = NULL;
    size_t len = 0;
    int b = 0;
    int64_t i = 0;
    double x = 0;
    char text[64];
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_NULL: return json_null();
    case CAIRN_VALUE_BOOL: cairn_value_get_bool(v, &b); return json_boolean(b);
    case CAIRN_VALUE_INT: cairn_value_get_int(v, &i); return json_integer(i);
    case CAIRN_VALUE_FLOAT:
        cairn_value_get_float(v, &x);
        if (isnan(x)) {
            if (bits_of(x) == 0x7FF8000000000000ull)
                return ref_tagged("$float", "nan", 3);
            int n = snprintf(text, sizeof text, "nan:0x%016llx", (unsigned long long)bits_of(x));
            return ref_tagged("$float", text, (size_t)n);
        }
        if (isinf(x))
            return x > 0 ? ref_tagged("$float", "inf", 3) : ref_tagged("$float", "-inf", 4);
        if (x == 0 && signbit(x))
            return ref_tagged("$float", "-0", 2);
        return json_real(x);
    case CAIRN_VALUE_STRING: cairn_value_get_data(v, &d, &len); return json_stringn(d, len);
    case CAIRN_VALUE_BYTES: { /* the tests' bytes are short: base64 by jansson-free code */
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        cairn_value_get_data(v, &d, &len);
        const uint8_t *p = d;
        char out[512];
        size_t o = 0;
        for (size_t k = 0; k < len && o + 4 < sizeof out; k += 3) {
            uint32_t n = (uint32_t)p[k] << 16 | (k + 1 < len ? (uint32_t)p[k + 1] << 8 : 0) |
                         (k + 2 < len ? p[k + 2] : 0);
            out[o++] = a[(n >> 18) & 63];
            out[o++] = a[(n >> 12) & 63];
            out[o++] = k + 1 < len ? a[(n >> 6) & 63] : '=';
            out[o++] = k + 2 < len ? a[n & 63] : '=';
        }
        return ref_tagged("$bytes", out, o);
    }
    case CAIRN_VALUE_TENSOR: cairn_value_get_data(v, &d, &len); return ref_tagged("$tensor", d, len);
    case CAIRN_VALUE_LIST:
    case CAIRN_VALUE_MAP: {
        int map = cairn_value_get_type(v) == CAIRN_VALUE_MAP;
        json_t *c = map ? json_object() : json_array();
        for (size_t k = 0; k < cairn_value_count(v); k++) {
            cairn_value scratch;
            json_t *child = ref_json(cairn__value_item(v, k, &scratch));
            if (map)
                json_object_set_new(c, cairn_value_key_at(v, k), child);
            else
                json_array_append_new(c, child);
        }
        return c;
    }
    }
    return NULL;
}

static int json_matches_jansson(const cairn_value *v, int indent)
{
    char *mine = NULL;
    json_t *ref = ref_json(v);
    size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(17) |
                   (indent ? JSON_INDENT(indent) : JSON_COMPACT);
    char *theirs = json_dumps(ref, flags);
    int ok = cairn_value_to_json(v, indent, &mine, NULL) == CAIRN_OK && theirs &&
             strcmp(mine, theirs) == 0;
    if (!ok)
        fprintf(stderr, "JSON differs (indent %d):\n mine:   %.300s\n jansson: %.300s\n", indent,
                mine ? mine : "(null)", theirs ? theirs : "(null)");
    free(theirs);
    json_decref(ref);
    cairn_free(mine);
    return ok;
}

/* A list of `n` random scalars of one kind (0 int, 1 float, 2 bool, 3
 * string), or mixed (4). */
static cairn_value *scalar_list(uint64_t *seed, int kind, size_t n)
{
    static const double specials[] = {0.5, -0.0, 1e300, 3.0};
    cairn_value *l = cairn_value_list();
    for (size_t i = 0; i < n; i++) {
        int k = kind == 4 ? (int)(tu_rand(seed) % 4) : kind;
        uint64_t r = tu_rand(seed);
        cairn_value *c;
        char text[16];
        if (k == 0)
            c = cairn_value_int((int64_t)(r >> (r % 64)) * ((r & 1) ? -1 : 1));
        else if (k == 1)
            c = cairn_value_float(r % 5 == 0 ? double_of(0x7FF8000000000001ull | (r << 20 >> 20))
                                  : r % 7 == 0 ? specials[r % 4] : (double)(int64_t)r / 7.0);
        else if (k == 2)
            c = cairn_value_bool((int)(r & 1));
        else {
            snprintf(text, sizeof text, "%.*s", (int)(r % 5), "ab\"\n\xc3\xa9");
            c = cairn_value_string(text);
        }
        append_ok(l, c ? c : cairn_value_null());
    }
    return l;
}

/* Lists decoded from the binary encoding are packed; they encode to the
 * same bytes, print the same JSON (equal to jansson's) and read the same
 * through the public accessors as lists of nodes. */
static void test_packed_lists(void)
{
    uint64_t seed = 7;
    int ok = 1;
    for (int k = 0; k < 300; k++) {
        cairn_value *root = cairn_value_map();
        for (int e = 0; e < 5; e++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", e);
            set_ok(root, key, scalar_list(&seed, (k + e) % 5, tu_rand(&seed) % 40));
        }
        set_ok(root, "tree", random_tree(&seed, 1));
        uint8_t *e1 = NULL, *e2 = NULL;
        size_t n1 = 0, n2 = 0;
        cairn_value *back = NULL;
        ok &= cairn__meta_encode(root, NULL, NULL, &e1, &n1, NULL) == CAIRN_OK;
        ok &= e1 && decode(e1, n1, &back, NULL) == CAIRN_OK;
        for (size_t i = 0; back && i < 5; i++) { /* a list of one scalar kind is packed */
            const cairn_value *l = cairn_value_get(back, cairn_value_key_at(back, i));
            if ((k + (int)i) % 5 != 4 && cairn_value_count(l) > 0)
                ok &= l->pack != 0;
        }
        cairn_value *copy = back ? cairn_value_clone(back) : NULL;
        ok &= back && cairn__meta_encode(back, NULL, NULL, &e2, &n2, NULL) == CAIRN_OK;
        ok &= e2 && n1 == n2 && memcmp(e1, e2, n1) == 0;
        for (int indent = 0; back && indent <= 4; indent += 2) {
            char *a = NULL, *b = NULL;
            ok &= cairn_value_to_json(root, indent, &a, NULL) == CAIRN_OK;
            ok &= cairn_value_to_json(back, indent, &b, NULL) == CAIRN_OK;
            ok &= a && b && strcmp(a, b) == 0;
            ok &= json_matches_jansson(back, indent) && json_matches_jansson(root, indent);
            cairn_free(a);
            cairn_free(b);
        }
        ok &= copy && tree_equal(root, copy) && tree_equal(root, back); /* unpacks both */
        free(e1);
        free(e2);
        cairn_value_free(copy);
        cairn_value_free(back);
        cairn_value_free(root);
    }
    CHECK(ok);

    /* Widening, mixing, appending, and 2M empty strings in ~20 MB. */
    cairn_value *l = cairn_value_list();
    CHECK_OK(cairn__value_list_add_int(l, 5));
    CHECK(l->pack == CAIRN__PACK_I8);
    CHECK_OK(cairn__value_list_add_int(l, 300));
    CHECK_OK(cairn__value_list_add_int(l, -70000));
    CHECK_OK(cairn__value_list_add_int(l, INT64_MIN));
    CHECK(l->pack == CAIRN__PACK_I64 && cairn_value_count(l) == 4);
    CHECK_OK(cairn__value_list_add(l, cairn_value_string("x")));
    CHECK(l->pack == 0 && cairn_value_count(l) == 5);
    int64_t i = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_at(l, 2), &i));
    CHECK(i == -70000);
    CHECK_OK(cairn_value_get_int(cairn_value_at(l, 3), &i));
    CHECK(i == INT64_MIN);
    cairn_value_free(l);
    l = cairn_value_list();
    for (int k = 0; k < 2000000; k++)
        if (cairn__value_list_add_string(l, "", 0) != CAIRN_OK)
            break;
    CHECK(l->pack == CAIRN__PACK_STR && cairn_value_count(l) == 2000000);
    cairn_value scratch;
    const void *d = NULL;
    size_t len = 1;
    CHECK_OK(cairn_value_get_data(cairn__value_item(l, 1999999, &scratch), &d, &len));
    CHECK(len == 0 && ((const char *)d)[0] == '\0');
    cairn_value *copy = cairn_value_scalar_at(l, 1999999); /* a copy; the list stays packed */
    CHECK(copy && cairn_value_get_type(copy) == CAIRN_VALUE_STRING && l->pack == CAIRN__PACK_STR);
    cairn_value_free(copy);
    CHECK(cairn_value_scalar_at(l, 2000000) == NULL);
    CHECK_OK(cairn_value_append(l, cairn_value_int(1), NULL)); /* unpacks, then appends */
    CHECK_OK(cairn_value_append(l, cairn_value_list(), NULL));
    CHECK(cairn_value_scalar_at(l, 2000001) == NULL); /* a list: cairn_value_at's business */
    copy = cairn_value_scalar_at(l, 2000000);
    CHECK(copy && cairn_value_get_int(copy, &i) == CAIRN_OK && i == 1);
    cairn_value_free(copy);
    CHECK(l->pack == 0 && cairn_value_count(l) == 2000002);
    cairn_value_free(l);
}

int main(void)
{
    test_scalars();
    test_containers();
    test_clone();
    test_deep_tree();
    test_golden_encoding();
    test_roundtrip();
    test_encode_errors();
    test_decode_truncation_and_corruption();
    test_decode_depth();
    test_decode_duplicates();
    test_decode_bounds();
    test_decode_text_rules();
    test_decode_structure();
    test_decode_messages_and_refs();
    test_json_golden();
    test_json_float_exact();
    test_random_roundtrips();
    test_packed_lists();
    TEST_MAIN_END();
}
