/* test_torch_read.c -- the PyTorch .pt reader and its restricted pickle
 * machine: files real torch writes (compared byte for byte with what torch
 * says each tensor holds), the public corpus, skorch directories, and
 * hand-assembled hostile pickles that must be refused with a message naming
 * the global, the opcode or the offset. */
#include "corpus.h"
#include "container/pickle.h"
#include "testutil.h"

#include <cairn.h>
#include <zlib.h>

static const char *tmp;

/* --------------------------------------------------------------- helpers */

/* A growable byte buffer for pickles and ZIP images. */
typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void op(buf *b, uint8_t code) { put(b, &code, 1); }

static void u32le(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void u16le(buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}

static void pstr(buf *b, const char *s)
{
    op(b, 'X');
    u32le(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}

static void pint(buf *b, int32_t v)
{
    op(b, 'J');
    u32le(b, (uint32_t)v);
}

static void pglobal(buf *b, const char *mod, const char *name)
{
    op(b, 'c');
    put(b, mod, strlen(mod));
    op(b, '\n');
    put(b, name, strlen(name));
    op(b, '\n');
}

static void pstack_global(buf *b, const char *mod, const char *name)
{
    op(b, 0x8c);
    op(b, (uint8_t)strlen(mod));
    put(b, mod, strlen(mod));
    op(b, 0x8c);
    op(b, (uint8_t)strlen(name));
    put(b, name, strlen(name));
    op(b, 0x93);
}

static void pints(buf *b, const int32_t *v, int n)
{
    op(b, '(');
    for (int i = 0; i < n; i++)
        pint(b, v[i]);
    op(b, 't');
}

/* torch's way to pickle one tensor: _rebuild_tensor_v2 over a storage id. */
static void ptensor(buf *b, const char *type, const char *key, int32_t numel, int32_t offset,
                    const int32_t *size, const int32_t *stride, int rank)
{
    pglobal(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '(');
    op(b, '(');
    pstr(b, "storage");
    pglobal(b, "torch", type);
    pstr(b, key);
    pstr(b, "cpu");
    pint(b, numel);
    op(b, 't');
    op(b, 'Q');
    pint(b, offset);
    pints(b, size, rank);
    pints(b, stride, rank);
    op(b, 0x89);
    pglobal(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, 't');
    op(b, 'R');
}

/* PROTO 2, an OrderedDict of {"w": 2x3 float32 tensor over storage "0"},
 * then whatever `extra` adds as key/value pairs, then SETITEMS and STOP. */
static void state_dict_head(buf *b)
{
    op(b, 0x80);
    op(b, 2);
    pglobal(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, '(');
    pstr(b, "w");
    int32_t size[2] = {2, 3}, stride[2] = {3, 1};
    ptensor(b, "FloatStorage", "0", 6, 0, size, stride, 2);
}

static void state_dict_tail(buf *b)
{
    op(b, 'u');
    op(b, '.');
}

/* A stored ZIP image (no data descriptors) of n members. */
typedef struct member {
    const char *name;
    const void *data;
    size_t len;
} member;

static uint8_t *zip_image(const member *ms, size_t n, size_t *out_len)
{
    buf b = {0}, cd = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, ms[i].data, (uInt)ms[i].len);
        uint32_t at = (uint32_t)b.len;
        uint16_t nl = (uint16_t)strlen(ms[i].name);
        u32le(&b, 0x04034b50);
        u16le(&b, 20), u16le(&b, 0), u16le(&b, 0), u16le(&b, 0), u16le(&b, 0x21);
        u32le(&b, crc), u32le(&b, (uint32_t)ms[i].len), u32le(&b, (uint32_t)ms[i].len);
        u16le(&b, nl), u16le(&b, 0);
        put(&b, ms[i].name, nl);
        put(&b, ms[i].data, ms[i].len);
        u32le(&cd, 0x02014b50);
        u16le(&cd, 20), u16le(&cd, 20), u16le(&cd, 0), u16le(&cd, 0), u16le(&cd, 0);
        u16le(&cd, 0x21);
        u32le(&cd, crc), u32le(&cd, (uint32_t)ms[i].len), u32le(&cd, (uint32_t)ms[i].len);
        u16le(&cd, nl), u16le(&cd, 0), u16le(&cd, 0), u16le(&cd, 0), u16le(&cd, 0);
        u32le(&cd, 0), u32le(&cd, at);
        put(&cd, ms[i].name, nl);
    }
    uint32_t cd_at = (uint32_t)b.len;
    put(&b, cd.p, cd.len);
    u32le(&b, 0x06054b50);
    u16le(&b, 0), u16le(&b, 0), u16le(&b, (uint16_t)n), u16le(&b, (uint16_t)n);
    u32le(&b, (uint32_t)cd.len), u32le(&b, cd_at), u16le(&b, 0);
    free(cd.p);
    *out_len = b.len;
    return b.p;
}

static const float storage0[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* A torch-like archive "ck/..." with data.pkl = pickle and one 64-byte storage. */
static uint8_t *torch_zip(const buf *pickle, size_t *n)
{
    member ms[3] = {{"ck/data.pkl", pickle->p, pickle->len},
                    {"ck/data/0", storage0, sizeof storage0},
                    {"ck/version", "3\n", 2}};
    return zip_image(ms, 3, n);
}

/* Opens a crafted image; expects `want`, and on failure a message holding
 * every string of `says` (NULL-terminated). */
static void expect_open(const uint8_t *img, size_t n, cairn_status want, const char *const *says,
                        const char *label)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open_memory(img, n, NULL, &f, &err);
    CHECK_ST(st, want);
    int ok = st == want;
    for (size_t i = 0; says && says[i] && st != CAIRN_OK; i++)
        if (!strstr(err.message, says[i])) {
            ok = 0;
            fprintf(stderr, "  %s: message lacks '%s'\n", label, says[i]);
        }
    CHECK(ok);
    if (!ok || getenv("CAIRN_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %s\n", label, st ? err.message : "opened");
    cairn_file_close(f);
}

/* -------------------------------------------- 1. the machine on raw pickles */

static cairn_status fake_storage(void *ctx, const char *key, size_t key_len, cairn_dtype dtype,
                                 uint64_t numel, uint64_t nbytes, uint64_t at, uint32_t *index,
                                 cairn_error *err)
{
    (void)ctx, (void)dtype, (void)numel;
    if (key_len != 1 || key[0] < '0' || key[0] > '3' || nbytes > 64)
        return cairn__fail(err, CAIRN_E_CORRUPT, "fake: offset %llu: no storage '%.*s' of %llu "
                           "bytes", (unsigned long long)at, (int)key_len, key,
                           (unsigned long long)nbytes);
    *index = (uint32_t)(key[0] - '0');
    return CAIRN_OK;
}

static const cairn__pickle_host fake_host = {NULL, cairn__pickle_torch_global, fake_storage, 0,
                                             NULL, 0, 0};

/* Runs a pickle and walks it; returns the first failure. */
static cairn_status run(const buf *b, cairn_error *err, size_t *tensors)
{
    cairn__pickle vm;
    cairn__pk_flat flat;
    cairn__pickle_init(&vm, &fake_host, "test: member 'data.pkl'", 0);
    cairn_status st = cairn__pickle_run(&vm, b->p, b->len, NULL, err);
    if (st == CAIRN_OK)
        st = cairn__pickle_flatten(&vm, b->len, &flat, err);
    if (st == CAIRN_OK) {
        if (tensors)
            *tensors = flat.count;
        cairn__pk_flat_free(&flat);
    }
    cairn__pickle_free(&vm);
    return st;
}

static void expect_run(buf *b, cairn_status want, const char *say1, const char *say2,
                       const char *label)
{
    cairn_error err = {0};
    cairn_status st = run(b, &err, NULL);
    CHECK_ST(st, want);
    int ok = st == want && (!say1 || strstr(err.message, say1)) &&
             (!say2 || strstr(err.message, say2)) &&
             (st == CAIRN_OK || strstr(err.message, "offset"));
    CHECK(ok);
    if (!ok || getenv("CAIRN_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %s\n", label, st ? err.message : "ok");
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void test_forbidden_globals(void)
{
    static const char *const globals[][2] = {
        {"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"builtins", "exec"},
        {"subprocess", "Popen"}, {"__builtin__", "eval"}, {"torch", "load"},
        {"collections", "defaultdict"}, {"numpy.core.multiarray", "_reconstruct"}};
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "global %s.%s is not allowed", globals[i][0], globals[i][1]);
        for (int stack = 0; stack < 2; stack++) {
            buf b = {0};
            state_dict_head(&b);
            pstr(&b, "bias");
            if (stack)
                pstack_global(&b, globals[i][0], globals[i][1]);
            else
                pglobal(&b, globals[i][0], globals[i][1]);
            pstr(&b, "echo must-not-run");
            op(&b, 0x85);
            op(&b, 'R');
            state_dict_tail(&b);
            expect_run(&b, CAIRN_E_UNSUPPORTED, want, stack ? "STACK_GLOBAL" : "GLOBAL", want);
        }
    }
}

static void test_forbidden_opcodes(void)
{
    static const struct { uint8_t code; const char *name; } ops[] = {
        {'i', "INST"}, {'o', "OBJ"}, {0x81, "NEWOBJ"}, {0x92, "NEWOBJ_EX"}, {'P', "PERSID"},
        {0x82, "EXT1"}, {'I', "INT"}, {'S', "STRING"}, {'l', "LIST"}, {'d', "DICT"},
        {'p', "PUT"}, {'g', "GET"}, {'0', "POP"}, {'2', "DUP"}, {0x96, "BYTEARRAY8"},
        {0x97, "NEXT_BUFFER"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        buf b = {0};
        state_dict_head(&b);
        pstr(&b, "x");
        op(&b, ops[i].code);
        put(&b, "os\nsystem\n", 10);
        char want[64];
        snprintf(want, sizeof want, "opcode %s (0x%02x) is not allowed", ops[i].name,
                 ops[i].code);
        expect_run(&b, CAIRN_E_UNSUPPORTED, want, NULL, ops[i].name);
    }
    buf b = {0};
    op(&b, 0x80), op(&b, 2), op(&b, 0xff);
    expect_run(&b, CAIRN_E_CORRUPT, "unknown opcode 0xff", "offset 2", "unknown opcode");
}

/* REDUCE only on allowed callables; BUILD only on OrderedDicts and tensors. */
static void test_reduce_build(void)
{
    buf b = {0};
    state_dict_head(&b);
    pstr(&b, "x");
    pglobal(&b, "torch", "FloatStorage");
    op(&b, ')');
    op(&b, 'R');
    state_dict_tail(&b);
    expect_run(&b, CAIRN_E_UNSUPPORTED, "REDUCE on torch.FloatStorage", NULL, "REDUCE on a type");

    op(&b, 0x80), op(&b, 2), pstr(&b, "os.system"), op(&b, ')'), op(&b, 'R'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "REDUCE on a str", NULL, "REDUCE on a str");

    op(&b, 0x80), op(&b, 2), pglobal(&b, "collections", "OrderedDict");
    pstr(&b, "a"), op(&b, 0x85), op(&b, 'R'), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "OrderedDict with 1 arguments", NULL, "OrderedDict(args)");

    op(&b, 0x80), op(&b, 2), op(&b, ']'), op(&b, '}'), op(&b, 'b'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "BUILD on a list", NULL, "BUILD on a list");

    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, '}'), op(&b, 'b'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "BUILD on a plain dict", NULL, "BUILD on a dict");

    op(&b, 0x80), op(&b, 2), pglobal(&b, "collections", "OrderedDict"), op(&b, ')'), op(&b, 'R');
    op(&b, ']'), op(&b, 'b'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "BUILD with a list", NULL, "BUILD with a list state");

    /* What torch writes for a state_dict's _metadata: accepted, and dropped. */
    state_dict_head(&b);
    state_dict_tail(&b);
    b.len--; /* before STOP: the BUILD */
    op(&b, '}'), pstr(&b, "_metadata"), pglobal(&b, "collections", "OrderedDict"), op(&b, ')');
    op(&b, 'R'), op(&b, 's'), op(&b, 'b'), op(&b, '.');
    expect_run(&b, CAIRN_OK, NULL, NULL, "state_dict BUILD");

    /* Tensor metadata that changes the meaning of the bytes is refused. */
    op(&b, 0x80), op(&b, 2);
    int32_t sz[1] = {2}, st1[1] = {1};
    ptensor(&b, "FloatStorage", "0", 2, 0, sz, st1, 1);
    b.len -= 2; /* reopen the argument tuple: add the metadata dict */
    op(&b, '}'), pstr(&b, "conj"), op(&b, 0x88), op(&b, 's'), op(&b, 't'), op(&b, 'R'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "tensor metadata 'conj' is set", NULL, "conj tensor");
}

static void test_bounds(void)
{
    buf b = {0};
    /* A huge memo index: refused before any memo grows. */
    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, 'r'), u32le(&b, 0xFFFFFFF0u), op(&b, '.');
    expect_run(&b, CAIRN_E_LIMIT, "memo index 4294967280", NULL, "huge memo index");
    op(&b, 0x80), op(&b, 2), op(&b, 'j'), u32le(&b, 7), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "memo index 7 was never set", NULL, "unset memo");

    /* MARK nesting past 1000. */
    op(&b, 0x80), op(&b, 2);
    for (int i = 0; i < 1001; i++)
        op(&b, '(');
    expect_run(&b, CAIRN_E_LIMIT, "more than 1000 open marks", NULL, "deep marks");

    /* Lists nested 100 deep (no marks): the walker stops at 64 levels. */
    op(&b, 0x80), op(&b, 2);
    for (int i = 0; i < 100; i++)
        op(&b, ']');
    for (int i = 0; i < 99; i++)
        op(&b, 'a');
    op(&b, '.');
    expect_run(&b, CAIRN_E_LIMIT, "deeper than the metadata tree's 64 levels", NULL, "deep lists");

    /* A list that holds itself. */
    op(&b, 0x80), op(&b, 2), op(&b, ']'), op(&b, 'q'), op(&b, 0), op(&b, 'h'), op(&b, 0);
    op(&b, 'a'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "reference cycle", NULL, "cycle");

    /* Each tuple holds the previous one twice: 2^40 values if expanded. */
    op(&b, 0x80), op(&b, 2), op(&b, ']'), op(&b, 'q'), op(&b, 0);
    for (int i = 1; i <= 40; i++)
        op(&b, 'h'), op(&b, (uint8_t)(i - 1)), op(&b, 0x86), op(&b, 'q'), op(&b, (uint8_t)i);
    op(&b, '.');
    expect_run(&b, CAIRN_E_LIMIT, "shared objects expand too far", NULL, "sharing bomb");

    /* A memoized long text: copied by REDUCE, or referenced from a list, again and again. */
    char *text = malloc(60001);
    memset(text, 'a', 60000);
    text[60000] = '\0';
    op(&b, 0x80), op(&b, 2), pglobal(&b, "_codecs", "encode"), op(&b, 'q'), op(&b, 0);
    pstr(&b, text), pstr(&b, "latin1"), op(&b, 0x86), op(&b, 'q'), op(&b, 1), op(&b, ']');
    op(&b, '(');
    for (int i = 0; i < 40; i++)
        op(&b, 'h'), op(&b, 0), op(&b, 'h'), op(&b, 1), op(&b, 'R');
    op(&b, 'e'), op(&b, '.');
    expect_run(&b, CAIRN_E_LIMIT, "copied bytes (twice its size)", NULL, "bytes bomb");
    op(&b, 0x80), op(&b, 2), op(&b, ']'), op(&b, '('), pstr(&b, text), op(&b, 'q'), op(&b, 0);
    for (int i = 0; i < 4000; i++)
        op(&b, 'h'), op(&b, 0);
    op(&b, 'e'), op(&b, '.');
    expect_run(&b, CAIRN_E_LIMIT, "shared objects expand too far", NULL, "string bomb");
    free(text);

    /* Integers past 64 bits, truncated arguments, no STOP, leftovers. */
    op(&b, 0x80), op(&b, 2), op(&b, 0x8a), op(&b, 9), put(&b, "\1\2\3\4\5\6\7\x8\x9", 9);
    op(&b, '.');
    expect_run(&b, CAIRN_E_LIMIT, "an integer of 9 bytes", NULL, "LONG1 9 bytes");
    op(&b, 0x80), op(&b, 2), op(&b, 'X'), u32le(&b, 1000000), put(&b, "abc", 3);
    expect_run(&b, CAIRN_E_CORRUPT, "BINUNICODE needs 1000000 argument bytes", NULL, "short str");
    op(&b, 0x80), op(&b, 2), op(&b, '}');
    expect_run(&b, CAIRN_E_CORRUPT, "without STOP", NULL, "no STOP");
    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, '}'), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "STOP with 2 values", NULL, "two values at STOP");
    op(&b, 0x80), op(&b, 2), op(&b, 'a'), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "APPEND: the pickle stack is empty", NULL, "underflow");
    op(&b, 0x80), op(&b, 2), op(&b, ')'), pint(&b, 1), op(&b, 'a'), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "APPEND on a tuple", NULL, "append to a tuple");
    op(&b, 0x80), op(&b, 9), op(&b, '}'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "pickle protocol 9", NULL, "protocol 9");

    /* Tensors outside their storage (64 bytes), and negative strides. */
    int32_t big[2] = {64, 64}, rows[2] = {64, 1}, one[1] = {4}, neg[1] = {-1}, off[1] = {1};
    op(&b, 0x80), op(&b, 2), ptensor(&b, "FloatStorage", "0", 16, 0, big, rows, 2), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "size (64, 64) stride (64, 1)", "reaches byte 16384",
               "size beyond storage");
    op(&b, 0x80), op(&b, 2), ptensor(&b, "FloatStorage", "0", 16, 13, one, off, 1), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "at storage offset 13 reaches byte 68", NULL, "offset");
    op(&b, 0x80), op(&b, 2), ptensor(&b, "FloatStorage", "0", 16, 3, one, neg, 1), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "not an int >= 0", NULL, "negative stride");
    op(&b, 0x80), op(&b, 2), ptensor(&b, "FloatStorage", "7", 16, 0, one, off, 1), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "no storage '7'", NULL, "missing storage");
    op(&b, 0x80), op(&b, 2), ptensor(&b, "QInt8Storage", "0", 16, 0, one, off, 1), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "torch.QInt8Storage", NULL, "quantized storage");
}

/* Names: paths of keys and indexes; refusals of what cannot name. */
static void test_names(void)
{
    buf b = {0};
    size_t n = 0;
    cairn_error err = {0};
    int32_t sz[1] = {2}, st1[1] = {1};
    /* {1: t, "1.0"?} : int keys become text; a str key "1" next to int 1 is refused. */
    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, '('), pint(&b, 1);
    ptensor(&b, "FloatStorage", "0", 2, 0, sz, st1, 1);
    pstr(&b, "1"), pint(&b, 5), op(&b, 'u'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "an int key and a str key both read '1'", NULL,
               "int/str key clash");
    /* A repeated key keeps the first position and the last value, as Python does. */
    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, '('), pstr(&b, "a"), pint(&b, 1);
    pstr(&b, "a"), ptensor(&b, "FloatStorage", "0", 2, 0, sz, st1, 1), op(&b, 'u'), op(&b, '.');
    CHECK_OK(run(&b, &err, &n));
    CHECK(n == 1);
    free(b.p);
    memset(&b, 0, sizeof b);
    /* "a.b" and {"a": {"b": ...}} spell one name. */
    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, '('), pstr(&b, "a.b");
    ptensor(&b, "FloatStorage", "0", 2, 0, sz, st1, 1);
    pstr(&b, "a"), op(&b, '}'), pstr(&b, "b"), ptensor(&b, "FloatStorage", "1", 2, 0, sz, st1, 1);
    op(&b, 's'), op(&b, 'u'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "two tensors are both named 'a.b'", NULL, "name clash");
    op(&b, 0x80), op(&b, 2), op(&b, '}'), op(&b, ')'), pint(&b, 1), op(&b, 's'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "a dict key is a tuple", NULL, "tuple key");
    op(&b, 0x80), op(&b, 2), op(&b, '}'), pstr(&b, ""), pint(&b, 1), op(&b, 's'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "an empty dict key", NULL, "empty key");
    op(&b, 0x80), op(&b, 2), op(&b, 'X'), u32le(&b, 2), put(&b, "\xff\xfe", 2), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "not valid UTF-8", NULL, "bad UTF-8");
    /* A bare storage, and a protocol-2 bytes value. */
    op(&b, 0x80), op(&b, 2), op(&b, '('), pstr(&b, "storage"), pglobal(&b, "torch", "FloatStorage");
    pstr(&b, "0"), pstr(&b, "cpu"), pint(&b, 2), op(&b, 't'), op(&b, 'Q'), op(&b, '.');
    expect_run(&b, CAIRN_E_UNSUPPORTED, "a storage outside any tensor", NULL, "bare storage");
    /* torch.Size(()) is the empty tuple (a fuzzer found its NULL item array). */
    op(&b, 0x80), op(&b, 2), pglobal(&b, "torch", "Size"), op(&b, ')'), op(&b, 0x85), op(&b, 'R');
    op(&b, '.');
    expect_run(&b, CAIRN_OK, NULL, NULL, "empty torch.Size");
    op(&b, 0x80), op(&b, 2), pglobal(&b, "_codecs", "encode"), pstr(&b, "\xc4\x80");
    pstr(&b, "latin1"), op(&b, 0x86), op(&b, 'R'), op(&b, '.');
    expect_run(&b, CAIRN_E_CORRUPT, "above U+00FF", NULL, "latin1 overflow");
}

/* ------------------------------------------------ 2. crafted whole files */

static void test_crafted_files(void)
{
    buf b = {0};
    size_t n;
    uint8_t *img;
    state_dict_head(&b);
    pstr(&b, "bias");
    pglobal(&b, "os", "system");
    pstr(&b, "echo no"), op(&b, 0x85), op(&b, 'R');
    state_dict_tail(&b);
    img = torch_zip(&b, &n);
    const char *const sys[] = {"<memory>: member 'ck/data.pkl'", "offset", "global os.system",
                               NULL};
    expect_open(img, n, CAIRN_E_UNSUPPORTED, sys, "os.system in a zip");
    free(img);
    free(b.p);
    memset(&b, 0, sizeof b);

    /* A good file: a 2x3 tensor over storage 0, read through every path. */
    state_dict_head(&b);
    pstr(&b, "t");
    int32_t size[2] = {3, 2}, stride[2] = {1, 3};
    ptensor(&b, "FloatStorage", "0", 6, 0, size, stride, 2);
    state_dict_tail(&b);
    img = torch_zip(&b, &n);
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(img, n, NULL, &f, &err));
    uint64_t wi, ti;
    cairn_tensor_info in;
    CHECK_OK(cairn_tensor_find(f, "w", &wi, &in, &err));
    CHECK(in.zero_copy == (in.offset % 4 == 0)); /* element-aligned views only */
    CHECK(in.dtype == CAIRN_F32 && in.rank == 2 && in.dims[1] == 3);
    CHECK_OK(cairn_tensor_find(f, "t", &ti, &in, &err));
    CHECK(!in.zero_copy);
    float got[6], want[6] = {0, 3, 1, 4, 2, 5};
    CHECK_OK(cairn_tensor_read(f, ti, CAIRN_F32, got, sizeof got, CAIRN_READ_VERIFY, &err));
    CHECK(memcmp(got, want, sizeof got) == 0);
    double wide[6];
    CHECK_OK(cairn_tensor_read(f, ti, CAIRN_F64, wide, sizeof wide, 0, &err));
    CHECK(wide[1] == 3.0 && wide[5] == 5.0);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    /* Flip a storage byte: the CRC catches it on verify and on a strided read. */
    uint8_t *hit = memmem(img, n, storage0, sizeof storage0);
    CHECK(hit != NULL);
    if (hit) {
        hit[4] ^= 1;
        CHECK_OK(cairn_file_open_memory(img, n, NULL, &f, &err));
        CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_CHECKSUM);
        CHECK_ST(cairn_tensor_read(f, ti, CAIRN_F32, got, sizeof got, 0, &err), CAIRN_E_CHECKSUM);
        cairn_file_close(f);
    }
    free(img);

    /* byteorder "big": elements are swapped on read. */
    uint32_t be[16];
    for (int i = 0; i < 16; i++) {
        uint32_t v;
        memcpy(&v, &storage0[i], 4);
        be[i] = __builtin_bswap32(v);
    }
    member big[4] = {{"x/data.pkl", b.p, b.len}, {"x/data/0", be, sizeof be},
                     {"x/byteorder", "big", 3}, {"x/version", "3\n", 2}};
    img = zip_image(big, 4, &n);
    CHECK_OK(cairn_file_open_memory(img, n, NULL, &f, &err));
    CHECK_OK(cairn_tensor_find(f, "t", &ti, &in, &err));
    CHECK_OK(cairn_tensor_read(f, ti, CAIRN_F32, got, sizeof got, 0, &err));
    CHECK(memcmp(got, want, sizeof got) == 0);
    CHECK_OK(cairn_tensor_find(f, "w", &wi, &in, &err));
    CHECK(!in.zero_copy);
    CHECK_OK(cairn_tensor_read(f, wi, CAIRN_F32, got, sizeof got, 0, &err));
    CHECK(got[1] == 1.0f && got[5] == 5.0f);
    cairn_file_close(f);
    free(img);

    /* Missing record, two data.pkl, TorchScript, storage smaller than declared. */
    member miss[2] = {{"ck/data.pkl", b.p, b.len}, {"ck/version", "3\n", 2}};
    img = zip_image(miss, 2, &n);
    const char *const m1[] = {"storage '0' has no record", "no member 'ck/data/0'", "offset",
                              NULL};
    expect_open(img, n, CAIRN_E_CORRUPT, m1, "missing record");
    free(img);
    member two[3] = {{"a/data.pkl", b.p, b.len}, {"b/data.pkl", b.p, b.len},
                     {"a/data/0", storage0, sizeof storage0}};
    img = zip_image(two, 3, &n);
    const char *const m2[] = {"both hold a data.pkl", NULL};
    expect_open(img, n, CAIRN_E_CORRUPT, m2, "two pickles");
    free(img);
    member ts[3] = {{"m/data.pkl", b.p, b.len}, {"m/constants.pkl", "\x80\x02).", 4},
                    {"m/data/0", storage0, sizeof storage0}};
    img = zip_image(ts, 3, &n);
    const char *const m3[] = {"TorchScript", NULL};
    expect_open(img, n, CAIRN_E_UNSUPPORTED, m3, "TorchScript");
    free(img);
    member small[2] = {{"ck/data.pkl", b.p, b.len}, {"ck/data/0", storage0, 20}};
    img = zip_image(small, 2, &n);
    const char *const m4[] = {"declares 6 elements of F32 (24 bytes)", "holds 20 bytes", NULL};
    expect_open(img, n, CAIRN_E_CORRUPT, m4, "short storage");
    free(img);
    free(b.p);
}

/* A legacy stream: magic, protocol, sys_info, object, keys, storages. */
static void legacy_image(buf *b, int64_t count, size_t bytes)
{
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    put(b, magic, sizeof magic);
    op(b, 0x80), op(b, 2), op(b, 'M'), u16le(b, 1001), op(b, '.');
    op(b, 0x80), op(b, 2), op(b, '}'), pstr(b, "little_endian"), op(b, 0x88), op(b, 's');
    op(b, '.');
    op(b, 0x80), op(b, 2), op(b, '}'), pstr(b, "w");
    pglobal(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '('), op(b, '('), pstr(b, "storage"), pglobal(b, "torch", "FloatStorage");
    pstr(b, "9412"), pstr(b, "cpu"), pint(b, 4), op(b, 'N'), op(b, 't'), op(b, 'Q');
    int32_t sz[1] = {3}, st1[1] = {1};
    pint(b, 1), pints(b, sz, 1), pints(b, st1, 1), op(b, 0x89), op(b, '}'), op(b, 't');
    op(b, 'R'), op(b, 's'), op(b, '.');
    op(b, 0x80), op(b, 2), op(b, ']'), pstr(b, "9412"), op(b, 'a'), op(b, '.');
    uint8_t c[8];
    for (int i = 0; i < 8; i++)
        c[i] = (uint8_t)((uint64_t)count >> (8 * i));
    put(b, c, 8);
    put(b, storage0, bytes);
}

static void test_legacy_crafted(void)
{
    buf b = {0};
    legacy_image(&b, 4, 16);
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(b.p, b.len, NULL, &f, &err));
    uint64_t i;
    cairn_tensor_info in;
    float got[3];
    CHECK_OK(cairn_tensor_find(f, "w", &i, &in, &err));
    CHECK(in.zero_copy == (in.offset % 4 == 0) && in.dims[0] == 3);
    CHECK_OK(cairn_tensor_read(f, i, CAIRN_F32, got, sizeof got, 0, &err));
    CHECK(got[0] == 1.0f && got[2] == 3.0f);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_TORCH && fi.version_major == 1001);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    free(b.p);
    memset(&b, 0, sizeof b);
    legacy_image(&b, 5, 16);
    const char *const wrong[] = {"storage '9412' holds 5 elements, its id declared 4", NULL};
    expect_open(b.p, b.len, CAIRN_E_CORRUPT, wrong, "legacy count");
    free(b.p);
    memset(&b, 0, sizeof b);
    legacy_image(&b, 4, 12);
    const char *const cut[] = {"runs past the end of the file", NULL};
    expect_open(b.p, b.len, CAIRN_E_CORRUPT, cut, "legacy truncated");
    free(b.p);
}

/* ------------------------------------------- 3. files real torch writes */

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* Where check_torch_line reads: the generated files' directory, and the
 * cairn_open_opts flags to open them with. */
typedef struct torch_gen {
    const char *dir;
    unsigned open_flags;
} torch_gen;

/* One manifest line: FILE, hex(NAME), N, DTYPE, DIMS (ctx: a torch_gen);
 * counts the line. */
static int check_torch_line(void *ctx, char *line)
{
    const char *dir = ((const torch_gen *)ctx)->dir;
    unsigned open_flags = ((const torch_gen *)ctx)->open_flags;
    char *file = strtok(line, "\t"), *hex = strtok(NULL, "\t"), *num = strtok(NULL, "\t");
    char *dtype = strtok(NULL, "\t"), *dims = strtok(NULL, "\t\n");
    if (!file || !hex || !num || !dtype || !dims)
        return 1;
    char name[512] = {0}, path[4600];
    for (size_t i = 0; hex[2 * i] && i + 1 < sizeof name; i++)
        name[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cairn_open_opts o = {0};
    o.struct_size = sizeof o;
    o.flags = open_flags;
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, &o, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s: %s\n", path, err.message);
        return 1;
    }
    uint64_t idx;
    cairn_tensor_info in;
    CHECK_OK(cairn_tensor_find(f, name, &idx, &in, &err));
    size_t want_n = 0;
    snprintf(path, sizeof path, "%s/%s.bin", dir, num);
    uint8_t *want = tu_read_whole(path, &want_n);
    if (in.name && want) {
        CHECK(in.dtype == cairn_dtype_from_name(dtype));
        uint32_t rank = 0;
        for (char *d = dims; *dims != '-' && d; d = strchr(d, ','), d = d ? d + 1 : NULL)
            CHECK(in.dims[rank++] == strtoull(d, NULL, 10));
        CHECK(in.rank == rank && in.raw_size == want_n);
        uint8_t *got = malloc(want_n ? want_n : 1);
        CHECK_OK(cairn_tensor_read(f, idx, in.dtype, got, want_n, CAIRN_READ_VERIFY, &err));
        int same = memcmp(got, want, want_n) == 0;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  %s '%s': bytes differ from torch's\n", file, name);
        const void *view;
        if (in.zero_copy) {
            CHECK_OK(cairn_tensor_data(f, idx, &view, &err));
            CHECK(view && memcmp(view, want, want_n) == 0);
        }
        free(got);
    } else {
        fprintf(stderr, "  %s '%s': %s\n", file, name, err.message);
    }
    free(want);
    cairn_file_close(f);
    return 1;
}

static cairn_file *open_gen(const char *dir, const char *name)
{
    char path[4600];
    cairn_error err = {0};
    cairn_file *f = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f)
        fprintf(stderr, "  %s: %s\n", path, err.message);
    return f;
}

static int is_zero_copy(cairn_file *f, const char *name)
{
    cairn_tensor_info in;
    return cairn_tensor_find(f, name, NULL, &in, NULL) == CAIRN_OK && in.zero_copy;
}

/* What the metadata tree says about the generated files. */
static void check_torch_trees(const char *dir)
{
    cairn_error err = {0};
    cairn_value *meta = NULL;
    cairn_file *f = open_gen(dir, "ckpt.pt");
    CHECK(f && cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK);
    int64_t epoch = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_get(meta, "epoch"), &epoch));
    CHECK(epoch == 7);
    const cairn_value *hist = cairn_value_get(meta, "history");
    CHECK(cairn_value_count(hist) == 4);
    double loss = 0;
    CHECK_OK(cairn_value_get_float(cairn_value_get(cairn_value_at(hist, 1), "loss"), &loss));
    CHECK(loss == 0.5);
    const void *ref;
    size_t len;
    const cairn_value *w = cairn_value_get(cairn_value_get(meta, "model"), "0.weight");
    CHECK(cairn_value_get_type(w) == CAIRN_VALUE_TENSOR);
    CHECK(cairn_value_get_data(w, &ref, &len) == CAIRN_OK && !strcmp(ref, "model.0.weight"));
    const cairn_value *pg = cairn_value_get(cairn_value_get(meta, "optimizer"), "param_groups");
    CHECK(cairn_value_get_type(cairn_value_get(cairn_value_at(pg, 0), "betas")) ==
          CAIRN_VALUE_LIST);
    CHECK_OK(cairn_tensor_find(f, "optimizer.state.0.exp_avg_sq", NULL, NULL, &err));
    CHECK_OK(cairn_tensor_find(f, "rng", NULL, NULL, &err));
    cairn_value_free(meta);
    cairn_file_close(f);

    const char *misc[] = {"misc.pt", "proto4.pt", "proto5.pt"};
    for (int i = 0; i < 3; i++) {
        f = open_gen(dir, misc[i]);
        meta = NULL;
        CHECK(f && cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK);
        CHECK(cairn_value_get_data(cairn_value_get(meta, "dev"), &ref, &len) == CAIRN_OK &&
              !strcmp(ref, "cuda:1"));
        CHECK(cairn_value_get_data(cairn_value_get(meta, "dt"), &ref, &len) == CAIRN_OK &&
              !strcmp(ref, "torch.float16"));
        CHECK(cairn_value_get_data(cairn_value_get(meta, "bytes"), &ref, &len) == CAIRN_OK &&
              len == 4 && !memcmp(ref, "\0\xff" "ab", 4));
        CHECK(cairn_value_get_type(cairn_value_get(meta, "bytes")) == CAIRN_VALUE_BYTES);
        CHECK(cairn_value_count(cairn_value_get(meta, "set")) == 3);
        CHECK(cairn_value_count(cairn_value_get(meta, "size")) == 2);
        CHECK(cairn_value_get_data(cairn_value_get(meta, "7"), &ref, &len) == CAIRN_OK &&
              !strcmp(ref, "int key"));
        CHECK(cairn_value_get_type(cairn_value_get(meta, "none")) == CAIRN_VALUE_NULL);
        int64_t big = 0;
        CHECK(cairn_value_get_int(cairn_value_get(meta, "big"), &big) == CAIRN_OK &&
              big == (INT64_C(1) << 40));
        CHECK_OK(cairn_tensor_find(f, "nested.1.k.0", NULL, NULL, &err));
        CHECK_OK(cairn_tensor_find(f, "param", NULL, NULL, &err));
        cairn_value_free(meta);
        cairn_file_close(f);
    }

    f = open_gen(dir, "views.pt");
    CHECK(f && cairn_file_count(f) == 10);
    CHECK(is_zero_copy(f, "base") && is_zero_copy(f, "rows") && is_zero_copy(f, "flat"));
    CHECK(!is_zero_copy(f, "t") && !is_zero_copy(f, "col") && !is_zero_copy(f, "expand"));
    cairn_file_close(f);
    f = open_gen(dir, "tied.pt");
    cairn_tensor_info a, b2;
    CHECK(f && cairn_tensor_find(f, "embed.weight", NULL, &a, &err) == CAIRN_OK &&
          cairn_tensor_find(f, "head.weight", NULL, &b2, &err) == CAIRN_OK &&
          a.offset == b2.offset && a.zero_copy && b2.zero_copy);
    cairn_file_close(f);
    f = open_gen(dir, "lone.pt");
    CHECK(f && cairn_tensor_find(f, "tensor", NULL, NULL, &err) == CAIRN_OK);
    meta = NULL;
    CHECK(f && cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK &&
          cairn_value_get_type(cairn_value_get(meta, "object")) == CAIRN_VALUE_TENSOR);
    cairn_value_free(meta);
    cairn_file_close(f);
    f = open_gen(dir, "mlp.pt");
    CHECK(f && is_zero_copy(f, "0.weight") && is_zero_copy(f, "2.bias"));
    cairn_file_info fi;
    CHECK(f && cairn_file_get_info(f, &fi, &err) == CAIRN_OK && fi.format == CAIRN_FORMAT_TORCH &&
          fi.version_major == 3 && fi.tensor_count == 4 && fi.alignment >= 64);
    cairn_file_close(f);
}

static void test_real_torch(void)
{
    char dir[4300];
    if (!tu_python_imports("torch", "real-torch checks"))
        return;
    snprintf(dir, sizeof dir, "%s/gen", tmp);
    mkdir(dir, 0777);
    CHECK(tu_run_python(tu_tests_file("torch_read_gen.py"), dir, NULL) == 0);
    int lines = 0;
    for (unsigned flags = 0; flags <= CAIRN_OPEN_NO_MMAP; flags += CAIRN_OPEN_NO_MMAP) {
        torch_gen gen = {dir, flags};
        int n = tu_each_line(tu_path(dir, "manifest.txt"), check_torch_line, &gen);
        CHECK(n >= 0); /* the manifest exists */
        lines += n > 0 ? n : 0;
    }
    CHECK(lines >= 2 * 70);
    check_torch_trees(dir);
    fprintf(stderr, "real torch: %d tensors matched byte for byte (mapped and pread)\n",
            lines / 2);
}

/* ---------------------------------------------------- 4. the public corpus */

static void check_expected_tensors(cairn_file *f, const char *prefix, json_t *tensors,
                                   const char *label)
{
    const char *key;
    json_t *t;
    cairn_error err = {0};
    json_object_foreach(tensors, key, t) {
        char name[600];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        uint64_t idx;
        cairn_tensor_info in;
        cairn_status st = cairn_tensor_find(f, name, &idx, &in, &err);
        CHECK_OK(st);
        if (st != CAIRN_OK) {
            fprintf(stderr, "  %s: %s\n", label, err.message);
            continue;
        }
        CHECK(!strcmp(cairn_dtype_name(in.dtype), json_string_value(json_object_get(t, "dtype"))));
        json_t *shape = json_object_get(t, "shape");
        CHECK(json_array_size(shape) == in.rank);
        for (size_t d = 0; d < json_array_size(shape); d++)
            CHECK((uint64_t)json_integer_value(json_array_get(shape, d)) == in.dims[d]);
        uint8_t *got = malloc(in.raw_size ? (size_t)in.raw_size : 1);
        CHECK_OK(cairn_tensor_read(f, idx, in.dtype, got, (size_t)in.raw_size, CAIRN_READ_VERIFY,
                                   &err));
        char hex[65] = {0};
        CHECK(tu_sha256_hex(tmp, got, (size_t)in.raw_size, hex) == 0);
        int same = !strcmp(hex, json_string_value(json_object_get(t, "sha256")));
        CHECK(same);
        if (!same)
            fprintf(stderr, "  %s '%s': sha256 differs\n", label, name);
        free(got);
    }
}

/* "values": every largest tensor-free sub-tree at its dotted path. */
static int tensor_free(const cairn_value *v)
{
    if (cairn_value_get_type(v) == CAIRN_VALUE_TENSOR)
        return 0;
    for (size_t i = 0; i < cairn_value_count(v); i++)
        if (!tensor_free(cairn_value_at(v, i)))
            return 0;
    return 1;
}

static void collect_values(const cairn_value *v, const char *path, int top, json_t *out)
{
    if (!top && tensor_free(v)) {
        char *text = NULL;
        if (cairn_value_to_json(v, 0, &text, NULL) == CAIRN_OK)
            json_object_set_new(out, path, json_loads(text, JSON_DECODE_ANY, NULL));
        cairn_free(text);
        return;
    }
    int map = cairn_value_get_type(v) == CAIRN_VALUE_MAP;
    for (size_t i = 0; i < cairn_value_count(v); i++) {
        char sub[1024], idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "",
                 map ? cairn_value_key_at(v, i) : idx);
        collect_values(cairn_value_at(v, i), sub, 0, out);
    }
}

static int json_close(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x == y || (x - y < 1e-12 * (x < 0 ? -x : x) && y - x < 1e-12 * (x < 0 ? -x : x));
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_close(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, k, v) if (!json_close(v, json_object_get(b, k))) return 0;
        return 1;
    }
    return json_equal(a, b);
}

static void check_corpus_file(const char *path, json_t *root)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s: %s\n", path, err.message);
        return;
    }
    json_t *tensors = json_object_get(root, "tensors");
    CHECK(cairn_file_count(f) == json_object_size(tensors));
    check_expected_tensors(f, "", tensors, path);
    json_t *aliases = json_object_get(root, "aliases");
    for (size_t g = 0; g < json_array_size(aliases); g++) {
        json_t *group = json_array_get(aliases, g);
        for (size_t k = 0; k < json_array_size(group); k++)
            CHECK_OK(cairn_tensor_find(f, json_string_value(json_array_get(group, k)), NULL,
                                       NULL, &err));
    }
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    json_t *values = json_object(), *want = json_object_get(root, "values");
    collect_values(meta, "", 1, values);
    int same = json_close(values, want);
    if (strstr(path, "skorch/")) /* skorch's values summarise; their keys are not paths */
        same = 1;
    CHECK(same);
    if (!same) {
        char *a = json_dumps(values, JSON_COMPACT), *b = json_dumps(want, JSON_COMPACT);
        fprintf(stderr, "  %s: values %s, expected %s\n", path, a, b);
        free(a), free(b);
    }
    json_decref(values);
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
}

/* A corpus file expected to read is checked; every file counts. */
static int corpus_ok(void *ctx, const char *path, json_t *root)
{
    (void)ctx;
    const char *expect = json_string_value(json_object_get(root, "expect"));
    if (expect && !strcmp(expect, "ok"))
        check_corpus_file(path, root);
    return 1;
}

/* A malicious torch_ file must be refused, naming what it tried; every file
 * of the directory counts. */
static int corpus_reject(void *ctx, const char *path, json_t *root)
{
    (void)ctx;
    if (!strstr(path, "/torch_"))
        return 1;
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open(path, NULL, &f, &err);
    CHECK(st != CAIRN_OK && f == NULL);
    json_t *check = json_object_get(root, "check");
    const char *kind = json_string_value(json_object_get(check, "kind"));
    const char *need = NULL;
    char need_buf[128];
    if (kind && !strcmp(kind, "pickle_forbidden_global")) {
        const char *g = json_string_value(json_array_get(json_object_get(check, "globals"), 0));
        snprintf(need_buf, sizeof need_buf, "global %s is not allowed", g);
        char *sp = strchr(need_buf + 7, ' ');
        if (sp)
            *sp = '.';
        need = need_buf;
    } else if (kind && !strcmp(kind, "torch_missing_record")) {
        snprintf(need_buf, sizeof need_buf, "%s",
                 json_string_value(json_object_get(check, "record")));
        need = need_buf;
    } else if (kind && !strcmp(kind, "torch_out_of_bounds")) {
        snprintf(need_buf, sizeof need_buf, "reaches byte %lld",
                 (long long)json_integer_value(json_object_get(check, "needed_bytes")));
        need = need_buf;
    }
    CHECK(need && strstr(err.message, need) && strstr(err.message, "offset"));
    fprintf(stderr, "  rejected as expected: %s\n", err.message);
    return 1;
}

static void check_skorch_dir(const char *dir)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(dir, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s: %s\n", dir, err.message);
        return;
    }
    static const char *const parts[][2] = {{"params.pt", "params."},
                                           {"optimizer.pt", "optimizer."},
                                           {"criterion.pt", "criterion."}};
    size_t total = 0;
    for (int p = 0; p < 3; p++) {
        char jpath[4600];
        snprintf(jpath, sizeof jpath, "%s/%s.expect.json", dir, parts[p][0]);
        json_t *root = json_load_file(jpath, 0, NULL);
        json_t *tensors = json_object_get(root, "tensors");
        total += json_object_size(tensors);
        check_expected_tensors(f, parts[p][1], tensors, dir);
        json_decref(root);
    }
    CHECK(cairn_file_count(f) == total);
    cairn_file_info fi;
    CHECK(cairn_file_get_info(f, &fi, &err) == CAIRN_OK && fi.format == CAIRN_FORMAT_TORCH);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    const cairn_value *hist = cairn_value_get(meta, "history");
    CHECK(cairn_value_count(hist) == 4);
    int64_t epoch = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_get(cairn_value_at(hist, 3), "epoch"), &epoch));
    CHECK(epoch == 4);
    const void *ref;
    size_t len;
    CHECK(cairn_value_get_data(cairn_value_get(cairn_value_get(meta, "params"), "0.weight"),
                               &ref, &len) == CAIRN_OK && !strcmp(ref, "params.0.weight"));
    CHECK(cairn_value_get(cairn_value_get(meta, "optimizer"), "param_groups") != NULL);
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    fprintf(stderr, "skorch directory: %zu tensors, history of 4 epochs\n", total);
}

static void test_corpus(void)
{
    const char *vec = getenv("CAIRN_VECTORS");
    char dir[4200];
    if (!vec || !*vec) {
        fprintf(stderr, "vectors absent: skipped\n");
        return;
    }
    snprintf(dir, sizeof dir, "%s/torch", vec);
    int ok = tu_each_expect(dir, "", ".pt.expect.json", corpus_ok, NULL);
    if (!ok) {
        fprintf(stderr, "vectors absent: skipped\n");
        return;
    }
    snprintf(dir, sizeof dir, "%s/skorch/exp1", vec);
    ok += tu_each_expect(dir, "", ".pt.expect.json", corpus_ok, NULL);
    snprintf(dir, sizeof dir, "%s/malicious", vec);
    int bad = tu_each_expect(dir, "", ".pt.expect.json", corpus_reject, NULL);
    snprintf(dir, sizeof dir, "%s/skorch/exp1", vec);
    check_skorch_dir(dir);
    fprintf(stderr, "corpus: %d torch files read, %d malicious ones rejected\n", ok, bad);
    CHECK(ok >= 13 && bad >= 5);
}

/* A skorch layout made here: TrainEndCheckpoint's prefix only, and refusals. */
static void test_skorch_layouts(void)
{
    char dir[4300], path[4400];
    snprintf(dir, sizeof dir, "%s/skorch", tmp);
    mkdir(dir, 0777);
    buf b = {0};
    state_dict_head(&b);
    state_dict_tail(&b);
    size_t n;
    uint8_t *img = torch_zip(&b, &n);
    snprintf(path, sizeof path, "%s/train_end_params.pt", dir);
    CHECK(tu_write_file(path, img, n) == 0);
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open(dir, NULL, &f, &err), CAIRN_E_IO); /* no history: not skorch */
    CHECK(strstr(err.message, "not a regular file") != NULL);
    snprintf(path, sizeof path, "%s/train_end_history.json", dir);
    const char *hist = "[{\"epoch\": 1, \"batches\": [{\"loss\": 0.5}], \"v\": null}]";
    CHECK(tu_write_file(path, hist, strlen(hist)) == 0);
    CHECK_OK(cairn_file_open(dir, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 1);
    CHECK_OK(cairn_tensor_find(f, "params.w", NULL, NULL, &err));
    cairn_file_close(f);
    snprintf(path, sizeof path, "%s/history.json", dir);
    CHECK(tu_write_file(path, "{\"a\": [1,", 9) == 0);
    snprintf(path, sizeof path, "%s/params.pt", dir);
    CHECK(tu_write_file(path, img, n) == 0);
    CHECK_ST(cairn_file_open(dir, NULL, &f, &err), CAIRN_E_CORRUPT); /* bad history.json */
    CHECK(strstr(err.message, "history.json") != NULL);
    free(img);
    free(b.p);
}

int main(void)
{
    tmp = tu_tmpdir("test_torch_read");
    test_forbidden_globals();
    test_forbidden_opcodes();
    test_reduce_build();
    test_bounds();
    test_names();
    test_crafted_files();
    test_legacy_crafted();
    test_skorch_layouts();
    test_real_torch();
    test_corpus();
    TEST_MAIN_END();
}
