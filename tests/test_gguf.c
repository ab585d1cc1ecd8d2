/* test_gguf.c -- the GGUF reader and writer: round trips of every dtype and
 * of block-quantized tensors, every metadata value type, version 2 files,
 * an independent Python reader and writer, and hostile inputs. */
#include "testutil.h"

#include <cairn.h>
#include <math.h>

/* ------------------------------------------------------------- helpers */

static const char *tmp;
static const cairn_write_opts no_sync = {.struct_size = sizeof(cairn_write_opts),
                                         .flags = CAIRN_WRITE_NO_SYNC};
static const cairn_write_opts gguf_mem = {.struct_size = sizeof(cairn_write_opts),
                                          .format = CAIRN_FORMAT_GGUF};
static const cairn_open_opts no_mmap = {.struct_size = sizeof(cairn_open_opts),
                                        .flags = CAIRN_OPEN_NO_MMAP};

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)tu_rand(&seed);
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t f64_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static double f64_from(uint64_t b)
{
    double d;
    memcpy(&d, &b, 8);
    return d;
}

/* ------------------------------------------------ a GGUF builder (tests) */

/* Writes GGUF bytes by hand, straight from the spec, so the reader is
 * tested against files cairn's writer did not make. */
typedef struct gb {
    uint8_t *p;
    size_t len, cap;
} gb;

static void gb_put(gb *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void gb_u8(gb *b, uint8_t v) { gb_put(b, &v, 1); }
static void gb_u16(gb *b, uint16_t v) { gb_put(b, &v, 2); }
static void gb_u32(gb *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_strn(gb *b, const char *s, size_t n)
{
    gb_u64(b, n);
    gb_put(b, s, n);
}
static void gb_str(gb *b, const char *s) { gb_strn(b, s, strlen(s)); }
static void gb_pad(gb *b, size_t a)
{
    while (b->len % a)
        gb_u8(b, 0);
}

static void gb_header(gb *b, uint32_t version, uint64_t tensors, uint64_t kvs)
{
    gb_put(b, "GGUF", 4);
    gb_u32(b, version);
    gb_u64(b, tensors);
    gb_u64(b, kvs);
}

/* kv helpers: key, type, value */
static void kv_u32(gb *b, const char *k, uint32_t type, uint32_t v)
{
    gb_str(b, k);
    gb_u32(b, type);
    gb_u32(b, v);
}

typedef struct gt {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    uint64_t bytes;
} gt;

/* Tensor infos and data laid out as ggml does (info order, each padded). */
static void gb_tensors(gb *b, const gt *t, size_t n, size_t align, uint8_t **data)
{
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        gb_str(b, t[i].name);
        gb_u32(b, t[i].n_dims);
        for (uint32_t d = 0; d < t[i].n_dims; d++)
            gb_u64(b, t[i].ne[d]);
        gb_u32(b, t[i].type);
        gb_u64(b, at);
        at = (at + t[i].bytes + align - 1) / align * align;
    }
    gb_pad(b, align);
    for (size_t i = 0; i < n; i++) {
        gb_put(b, data[i], t[i].bytes);
        gb_pad(b, align);
    }
}

/* ------------------------------------------------------ reading helpers */

static cairn_status open_mem(const gb *b, cairn_file **f, cairn_error *err)
{
    return cairn_file_open_memory(b->p, b->len, NULL, f, err);
}

/* Opens, reads every tensor (as stored), the metadata and verifies: the
 * status of the first failure. Used for hostile inputs. */
static cairn_status try_all(const void *buf, size_t n, const cairn_open_opts *oo,
                            cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open_memory(buf, n, oo, &f, err);
    for (uint64_t i = 0; st == CAIRN_OK && i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        st = cairn_tensor_info_at(f, i, &in, err);
        if (st != CAIRN_OK)
            break;
        uint8_t *got = malloc(in.raw_size ? (size_t)in.raw_size : 1);
        st = cairn_tensor_read(f, i, in.dtype, got, (size_t)in.raw_size, 0, err);
        free(got);
    }
    cairn_value *meta = NULL;
    if (st == CAIRN_OK)
        st = cairn_file_read_metadata(f, &meta, err);
    if (st == CAIRN_OK) {
        char *json = NULL;
        st = cairn_value_to_json(meta, 0, &json, err);
        cairn_free(json);
    }
    cairn_value_free(meta);
    if (st == CAIRN_OK)
        st = cairn_file_verify(f, err);
    cairn_file_close(f);
    return st;
}

static const cairn_value *gget(const cairn_value *root, const char *member, const char *key)
{
    const cairn_value *g = cairn_value_get(cairn_value_get(root, "gguf"), member);
    return key ? cairn_value_get(g, key) : g;
}

static int str_is(const cairn_value *v, const char *s)
{
    const void *d;
    size_t n;
    return v && cairn_value_get_type(v) == CAIRN_VALUE_STRING &&
           cairn_value_get_data(v, &d, &n) == CAIRN_OK && n == strlen(s) && memcmp(d, s, n) == 0;
}

static int int_is(const cairn_value *v, int64_t want)
{
    int64_t i;
    return v && cairn_value_get_int(v, &i) == CAIRN_OK && i == want;
}

static int float_bits_is(const cairn_value *v, uint64_t bits)
{
    double d;
    return v && cairn_value_get_float(v, &d) == CAIRN_OK && f64_bits(d) == bits;
}

/* Writes every tensor of f (as stored) and `meta` to a GGUF in memory. */
static cairn_status rewrite(cairn_file *f, const cairn_value *meta, const cairn_write_opts *wo,
                            void **out, size_t *out_len, cairn_error *err)
{
    cairn_writer *w = NULL;
    cairn_status st = cairn_writer_open_memory(wo ? wo : &gguf_mem, &w, err);
    for (uint64_t i = 0; st == CAIRN_OK && i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        const void *view = NULL;
        st = cairn_tensor_info_at(f, i, &in, err);
        if (st == CAIRN_OK)
            st = cairn_tensor_data(f, i, &view, err);
        if (st == CAIRN_OK)
            st = cairn_writer_add(w, in.name, in.dtype, in.rank, in.dims, view, err);
    }
    if (st == CAIRN_OK && meta)
        st = cairn_writer_set_metadata(w, meta, err);
    if (st == CAIRN_OK)
        return cairn_writer_commit_memory(w, out, out_len, err);
    cairn_writer_abort(w);
    return st;
}

/* Sets `meta` on w and commits it to memory; a writer that refuses the tree
 * is aborted (most refusals come from set_metadata, as values are typed when
 * the tree is set). The status of the first failure. */
static cairn_status commit_with_meta(cairn_writer *w, const cairn_value *meta, void **mem,
                                     size_t *len, cairn_error *err)
{
    cairn_status st = cairn_writer_set_metadata(w, meta, err);
    if (st == CAIRN_OK)
        return cairn_writer_commit_memory(w, mem, len, err);
    cairn_writer_abort(w);
    return st;
}

/* A new tree {"gguf": {"kv": kv, "types": types, "tensor_types": tt}}, taking
 * the members given and leaving out the NULL ones. */
static cairn_value *gguf_tree(cairn_value *kv, cairn_value *types, cairn_value *tt)
{
    cairn_error err = {0};
    cairn_value *root = cairn_value_map(), *g = cairn_value_map();
    if (kv)
        cairn_value_set(g, "kv", kv, &err);
    if (types)
        cairn_value_set(g, "types", types, &err);
    if (tt)
        cairn_value_set(g, "tensor_types", tt, &err);
    cairn_value_set(root, "gguf", g, &err);
    return root;
}

/* ------------------------------------------------ 1. dtype round trips */

static const cairn_dtype mapped[] = {CAIRN_F32, CAIRN_F16, CAIRN_BF16, CAIRN_F64,
                                     CAIRN_I8,  CAIRN_I16, CAIRN_I32,  CAIRN_I64};
static const uint32_t mapped_ids[] = {0, 1, 30, 28, 24, 25, 26, 27};

static void check_tensor(cairn_file *f, uint64_t i, const char *name, cairn_dtype dtype,
                         uint32_t rank, const uint64_t *dims, const uint8_t *data, size_t bytes,
                         uint64_t align)
{
    cairn_error err = {0};
    cairn_tensor_info in;
    CHECK_OK(cairn_tensor_info_at(f, i, &in, &err));
    CHECK(strcmp(in.name, name) == 0);
    CHECK(in.dtype == dtype && in.rank == rank);
    for (uint32_t d = 0; d < CAIRN_MAX_RANK; d++)
        CHECK(in.dims[d] == (d < rank ? dims[d] : 0));
    CHECK(in.raw_size == bytes && in.stored_size == bytes);
    CHECK(in.offset % align == 0 && in.alignment == align);
    uint8_t *got = malloc(bytes ? bytes : 1);
    CHECK_OK(cairn_tensor_read(f, i, dtype, got, bytes, 0, &err));
    CHECK(memcmp(got, data, bytes) == 0);
    free(got);
    uint64_t idx = 99;
    CHECK_OK(cairn_tensor_find(f, name, &idx, NULL, &err));
    CHECK(idx == i);
}

static void test_dtype_round_trips(void)
{
    static const uint64_t shapes[][4] = {{0}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {4, 0}};
    static const uint32_t ranks[] = {0, 1, 2, 3, 4, 2};
    const size_t ns = sizeof ranks / sizeof ranks[0];
    uint8_t *data[8 * 6];
    char names[8 * 6][32];
    size_t sizes[8 * 6];
    cairn_error err = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/dtypes.gguf", tmp);
    cairn_writer *w = NULL, *wm = NULL;
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &wm, &err));
    size_t n = 0;
    for (size_t d = 0; d < 8; d++) {
        for (size_t s = 0; s < ns; s++, n++) {
            uint64_t count = 1;
            for (uint32_t k = 0; k < ranks[s]; k++)
                count *= shapes[s][k];
            sizes[n] = (size_t)count * cairn_dtype_size(mapped[d]);
            data[n] = malloc(sizes[n] ? sizes[n] : 1);
            fill(data[n], sizes[n], n + 1);
            snprintf(names[n], sizeof names[n], "t.%s.%zu", cairn_dtype_name(mapped[d]), s);
            CHECK_OK(cairn_writer_add(w, names[n], mapped[d], ranks[s], shapes[s], data[n], &err));
            CHECK_OK(cairn_writer_add(wm, names[n], mapped[d], ranks[s], shapes[s], data[n],
                                      &err));
        }
    }
    CHECK_OK(cairn_writer_commit(w, &err));
    void *mem = NULL;
    size_t mem_len = 0, file_len = 0;
    CHECK_OK(cairn_writer_commit_memory(wm, &mem, &mem_len, &err));
    uint8_t *file = tu_read_whole(path, &file_len);
    CHECK(file && mem_len == file_len && memcmp(file, mem, file_len) == 0);
    CHECK(file_len % 32 == 0);
    free(file);
    cairn_free(mem);

    for (int pass = 0; pass < 2; pass++) {
        cairn_file *f = NULL;
        CHECK_OK(cairn_file_open(path, pass ? &no_mmap : NULL, &f, &err));
        if (!f) {
            fprintf(stderr, "  %s\n", err.message);
            break;
        }
        cairn_file_info fi;
        CHECK_OK(cairn_file_get_info(f, &fi, &err));
        CHECK(fi.format == CAIRN_FORMAT_GGUF && fi.version_major == 3);
        CHECK(fi.tensor_count == n && fi.alignment == 32 && !fi.has_metadata);
        n = 0;
        for (size_t d = 0; d < 8; d++)
            for (size_t s = 0; s < ns; s++, n++)
                check_tensor(f, n, names[n], mapped[d], ranks[s], shapes[s], data[n], sizes[n],
                             32);
        cairn_tensor_info in;
        CHECK_OK(cairn_tensor_info_at(f, 1, &in, &err));
        CHECK(in.zero_copy == !pass);
        CHECK_OK(cairn_file_verify(f, &err));
        cairn_value *meta = NULL;
        CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
        CHECK(int_is(gget(meta, "version", NULL), 3));
        CHECK(cairn_value_count(gget(meta, "kv", NULL)) == 0);
        CHECK(cairn_value_count(gget(meta, "tensor_types", NULL)) == 0);
        cairn_value_free(meta);
        CHECK_ST(cairn_tensor_find(f, "nope", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
        cairn_file_close(f);
    }
    for (size_t i = 0; i < n; i++)
        free(data[i]);

    /* Conversion works as for any dtype: F16 read as F32. */
    uint16_t h[2] = {0x3C00, 0xC000}; /* 1.0, -2.0 */
    uint64_t dims[1] = {2};
    float fl[2];
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &wm, &err));
    CHECK_OK(cairn_writer_add(wm, "h", CAIRN_F16, 1, dims, h, &err));
    CHECK_OK(cairn_writer_commit_memory(wm, &mem, &mem_len, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, mem_len, NULL, &f, &err));
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_F32, fl, sizeof fl, 0, &err));
    CHECK(fl[0] == 1.0f && fl[1] == -2.0f);
    cairn_file_close(f);
    cairn_free(mem);
}

/* ne[0] is the fastest-varying dimension: cairn dims [2, 3] are ne [3, 2]. */
static void test_dim_order(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[2] = {2, 3};
    float v[6] = {0, 1, 2, 3, 4, 5};
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "m", CAIRN_F32, 2, dims, v, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    const uint8_t *p = mem;
    /* header 24 | name len 8 + "m" | n_dims | ne0 | ne1 | type | offset */
    CHECK(len == 128 && memcmp(p, "GGUF", 4) == 0 && le32(p + 4) == 3);
    CHECK(le64(p + 8) == 1 && le64(p + 16) == 0);
    CHECK(le64(p + 24) == 1 && p[32] == 'm' && le32(p + 33) == 2);
    CHECK(le64(p + 37) == 3 && le64(p + 45) == 2);
    CHECK(le32(p + 53) == 0 && le64(p + 57) == 0);
    CHECK(memcmp(p + 96, v, sizeof v) == 0); /* the data section starts 32-aligned */
    for (size_t i = 65; i < 96; i++)
        CHECK(p[i] == 0);
    cairn_free(mem);

    /* Each dtype gets its ggml type id (the u32 after ne[0]). */
    uint8_t zeros[16] = {0};
    for (size_t i = 0; i < sizeof mapped / sizeof mapped[0]; i++) {
        CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
        CHECK_OK(cairn_writer_add(w, "m", mapped[i], 1, dims, zeros, &err));
        CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
        p = mem;
        CHECK(len > 49 && le32(p + 33) == 1 && le64(p + 37) == 2 && le32(p + 45) == mapped_ids[i]);
        cairn_free(mem);
    }
}

/* ------------------------------------------ 2. quantized block tensors */

typedef struct qcase {
    const char *name;
    uint32_t id, block, size;
} qcase;

static const qcase qcases[] = {
    {"Q4_0", 2, 32, 18},     {"Q4_1", 3, 32, 20},     {"Q5_0", 6, 32, 22},
    {"Q5_1", 7, 32, 24},     {"Q8_0", 8, 32, 34},     {"Q8_1", 9, 32, 36},
    {"Q2_K", 10, 256, 84},   {"Q3_K", 11, 256, 110},  {"Q4_K", 12, 256, 144},
    {"Q5_K", 13, 256, 176},  {"Q6_K", 14, 256, 210},  {"Q8_K", 15, 256, 292},
    {"IQ2_XXS", 16, 256, 66}, {"IQ2_XS", 17, 256, 74}, {"IQ3_XXS", 18, 256, 98},
    {"IQ1_S", 19, 256, 50},  {"IQ4_NL", 20, 32, 18},  {"IQ3_S", 21, 256, 110},
    {"IQ2_S", 22, 256, 82},  {"IQ4_XS", 23, 256, 136}, {"IQ1_M", 29, 256, 56},
    {"TQ1_0", 34, 256, 54},  {"TQ2_0", 35, 256, 66},  {"MXFP4", 39, 32, 17},
    {"NVFP4", 40, 64, 36},   {"Q1_0", 41, 128, 18},   {"Q2_0", 42, 64, 18},
};
#define N_Q (sizeof qcases / sizeof qcases[0])

static void test_quantized(void)
{
    gt t[N_Q + 1];
    uint8_t *data[N_Q + 1];
    char names[N_Q][32];
    gb b = {0};
    for (size_t i = 0; i < N_Q; i++) {
        snprintf(names[i], sizeof names[i], "blk.%zu.%s", i, qcases[i].name);
        /* ne = [2 blocks, 3 rows] or [1 block, 2, 2] */
        t[i] = (gt){names[i], qcases[i].id, i % 2 ? 3 : 2, {0}, 0};
        t[i].ne[0] = (uint64_t)qcases[i].block * (i % 2 ? 1 : 2);
        t[i].ne[1] = i % 2 ? 2 : 3;
        t[i].ne[2] = 2;
        uint64_t rows = t[i].ne[1] * (i % 2 ? 2 : 1);
        t[i].bytes = t[i].ne[0] / qcases[i].block * qcases[i].size * rows;
        data[i] = malloc(t[i].bytes);
        fill(data[i], t[i].bytes, 1000 + i);
    }
    float plain[4] = {1, 2, 3, 4};
    t[N_Q] = (gt){"plain", 0, 1, {4}, 16};
    data[N_Q] = (uint8_t *)plain;
    gb_header(&b, 3, N_Q + 1, 1);
    gb_str(&b, "general.architecture");
    gb_u32(&b, 8);
    gb_str(&b, "llama");
    gb_tensors(&b, t, N_Q + 1, 32, data);

    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(open_mem(&b, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s\n", err.message);
        return;
    }
    CHECK(cairn_file_count(f) == N_Q + 1);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    for (size_t i = 0; i < N_Q; i++) {
        uint64_t dims[3];
        uint32_t rank = t[i].n_dims;
        uint64_t row = t[i].ne[0] / qcases[i].block * qcases[i].size;
        if (rank == 2) {
            dims[0] = t[i].ne[1];
            dims[1] = row;
        } else {
            dims[0] = t[i].ne[2];
            dims[1] = t[i].ne[1];
            dims[2] = row;
        }
        check_tensor(f, i, names[i], CAIRN_U8, rank, dims, data[i], t[i].bytes, 32);
        const cairn_value *e = gget(meta, "tensor_types", names[i]);
        CHECK(str_is(cairn_value_get(e, "type"), qcases[i].name));
        CHECK(int_is(cairn_value_get(e, "type_id"), qcases[i].id));
        const cairn_value *ne = cairn_value_get(e, "ne");
        CHECK(cairn_value_count(ne) == rank);
        for (uint32_t k = 0; k < rank; k++)
            CHECK(int_is(cairn_value_at(ne, k), (int64_t)t[i].ne[k]));
    }
    uint64_t pd[1] = {4};
    check_tensor(f, N_Q, "plain", CAIRN_F32, 1, pd, (const uint8_t *)plain, 16, 32);
    CHECK(gget(meta, "tensor_types", "plain") == NULL);
    CHECK(str_is(gget(meta, "kv", "general.architecture"), "llama"));
    CHECK(str_is(gget(meta, "types", "general.architecture"), "STRING"));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.has_metadata);

    /* Back to GGUF: byte for byte the file ggml's layout gives. */
    void *out = NULL;
    size_t out_len = 0;
    CHECK_OK(rewrite(f, meta, NULL, &out, &out_len, &err));
    CHECK(out_len == b.len && out && memcmp(out, b.p, b.len) == 0);
    cairn_free(out);

    /* Through the native format and back: still the same bytes. */
    cairn_writer *w = NULL;
    const cairn_write_opts native = {.struct_size = sizeof native, .format = CAIRN_FORMAT_NATIVE};
    CHECK_OK(cairn_writer_open_memory(&native, &w, &err));
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        const void *view;
        cairn_tensor_info_at(f, i, &in, &err);
        cairn_tensor_data(f, i, &view, &err);
        CHECK_OK(cairn_writer_add(w, in.name, in.dtype, in.rank, in.dims, view, &err));
    }
    CHECK_OK(cairn_writer_set_metadata(w, meta, &err));
    void *nat = NULL;
    size_t nat_len = 0;
    CHECK_OK(cairn_writer_commit_memory(w, &nat, &nat_len, &err));
    cairn_file *g = NULL;
    CHECK_OK(cairn_file_open_memory(nat, nat_len, NULL, &g, &err));
    cairn_value *meta2 = NULL;
    CHECK_OK(cairn_file_read_metadata(g, &meta2, &err));
    /* The native index is name-sorted; write in GGUF order by name lookup. */
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        uint64_t j;
        const void *view = NULL;
        cairn_tensor_info_at(f, i, &in, &err);
        CHECK_OK(cairn_tensor_find(g, in.name, &j, &in, &err));
        CHECK_OK(cairn_tensor_data(g, j, &view, &err));
        CHECK_OK(cairn_writer_add(w, in.name, in.dtype, in.rank, in.dims, view, &err));
    }
    CHECK_OK(cairn_writer_set_metadata(w, meta2, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &out, &out_len, &err));
    CHECK(out_len == b.len && out && memcmp(out, b.p, b.len) == 0);
    cairn_free(out);
    cairn_value_free(meta2);
    cairn_file_close(g);
    cairn_free(nat);

    /* Without the tensor_types record a U8 tensor has no GGUF type. */
    cairn_value *bare = cairn_value_clone(meta);
    cairn_value_set((cairn_value *)cairn_value_get(bare, "gguf"), "tensor_types",
                    cairn_value_map(), &err);
    CHECK_ST(rewrite(f, bare, NULL, &out, &out_len, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "blk.0.Q4_0") && strstr(err.message, "tensor_types"));
    cairn_value_free(bare);
    cairn_value_free(meta);
    cairn_file_close(f);
    for (size_t i = 0; i < N_Q; i++)
        free(data[i]);
    free(b.p);
}

/* A tensor_types record must describe the U8 tensor exactly. */
static void test_tensor_types_checks(void)
{
    static const struct {
        const char *json_type;
        int64_t type_id;
        int64_t ne[3];
        int n;
        cairn_status want;
    } cases[] = {
        {"Q8_0", 8, {64, 3}, 2, CAIRN_OK},
        {"Q8_0", -1, {64, 3}, 2, CAIRN_OK},       /* type_id optional */
        {"Q8_0", 9, {64, 3}, 2, CAIRN_E_ARG},     /* type_id disagrees */
        {"Q8_0", 8, {64, 4}, 2, CAIRN_E_ARG},     /* rows differ */
        {"Q8_0", 8, {32, 3}, 2, CAIRN_E_ARG},     /* row bytes differ */
        {"Q8_0", 8, {48, 3}, 2, CAIRN_E_ARG},     /* not a multiple of the block */
        {"Q8_0", 8, {64, 3, 1}, 3, CAIRN_E_ARG},  /* rank differs */
        {"Q4_2", 4, {64, 3}, 2, CAIRN_E_UNSUPPORTED}, /* removed type */
        {"q8_0", 8, {64, 3}, 2, CAIRN_E_UNSUPPORTED}, /* names are exact */
        {"F32", 0, {17, 3}, 2, CAIRN_E_ARG},      /* F32 needs an F32 tensor */
    };
    uint8_t data[3 * 68] = {0};
    uint64_t dims[2] = {3, 68}; /* Q8_0: 64 elements = 2 blocks of 34 bytes */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cairn_error err = {0};
        cairn_writer *w = NULL;
        cairn_value *tt = cairn_value_map(), *e = cairn_value_map(), *ne = cairn_value_list();
        cairn_value_set(e, "type", cairn_value_string(cases[i].json_type), &err);
        if (cases[i].type_id >= 0)
            cairn_value_set(e, "type_id", cairn_value_int(cases[i].type_id), &err);
        for (int k = 0; k < cases[i].n; k++)
            cairn_value_append(ne, cairn_value_int(cases[i].ne[k]), &err);
        cairn_value_set(e, "ne", ne, &err);
        cairn_value_set(tt, "q", e, &err);
        cairn_value *root = gguf_tree(NULL, NULL, tt);
        void *mem = NULL;
        size_t len = 0;
        CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
        CHECK_OK(cairn_writer_add(w, "q", CAIRN_U8, 2, dims, data, &err));
        CHECK_OK(cairn_writer_set_metadata(w, root, &err));
        CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), cases[i].want);
        if (cases[i].want == CAIRN_OK) {
            cairn_file *f = NULL;
            cairn_tensor_info in;
            CHECK_OK(cairn_file_open_memory(mem, len, NULL, &f, &err));
            CHECK_OK(cairn_tensor_info_at(f, 0, &in, &err));
            CHECK(in.dtype == CAIRN_U8 && in.rank == 2 && in.dims[0] == 3 && in.dims[1] == 68);
            cairn_file_close(f);
        } else {
            CHECK(strstr(err.message, "'q'") != NULL);
        }
        cairn_free(mem);
        cairn_value_free(root);
    }

    /* A record for a tensor that was never added. */
    cairn_error err = {0};
    cairn_writer *w = NULL;
    cairn_value *tt = cairn_value_map();
    cairn_value_set(tt, "ghost", cairn_value_map(), &err);
    cairn_value *root = gguf_tree(NULL, NULL, tt);
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, root, &err));
    CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), CAIRN_E_NOT_FOUND);
    CHECK(strstr(err.message, "ghost") != NULL);
    cairn_value_free(root);
}

/* ------------------------------------------- 3. every metadata value type */

/* Appends one kv of every type and shape to b (with `nested`, also two
 * arrays of arrays, which cairn reads but never writes); returns the count. */
static uint64_t all_kvs(gb *b, int nested)
{
    uint64_t n = 0;
    float f;
    double d;
#define KEY(k, t) (gb_str(b, k), gb_u32(b, t), n++)
    KEY("t.u8", 0), gb_u8(b, 200);
    KEY("t.i8", 1), gb_u8(b, 0x80);
    KEY("t.u16", 2), gb_u16(b, 65535);
    KEY("t.i16", 3), gb_u16(b, 0x8000);
    KEY("t.u32", 4), gb_u32(b, 4000000000u);
    KEY("t.i32", 5), gb_u32(b, 0x80000000u);
    KEY("t.f32", 6), f = 0.1f, gb_put(b, &f, 4);
    KEY("t.bool", 7), gb_u8(b, 1);
    KEY("t.false", 7), gb_u8(b, 0);
    KEY("t.str", 8), gb_str(b, "h\xc3\xa9llo");
    KEY("t.empty_str", 8), gb_str(b, "");
    KEY("t.nul_str", 8), gb_strn(b, "a\0b", 3);
    KEY("t.bad_utf8", 8), gb_strn(b, "\xff\xfe", 2);
    KEY("t.u64max", 10), gb_u64(b, UINT64_MAX);
    KEY("t.i64min", 11), gb_u64(b, (uint64_t)INT64_MIN);
    KEY("t.f64", 12), d = -0.0, gb_put(b, &d, 8);
    KEY("t.f32nan", 6), gb_u32(b, 0x7FC00001u);  /* quiet NaN with payload */
    KEY("t.f32snan", 6), gb_u32(b, 0xFF800001u); /* negative signalling NaN */
    KEY("t.f32inf", 6), gb_u32(b, 0xFF800000u);
    KEY("t.f64nan", 12), gb_u64(b, 0x7FF0000000000001ull);
    KEY("t.f64inf", 12), gb_u64(b, 0x7FF0000000000000ull);
    KEY("general.alignment", 4), gb_u32(b, 64);
    /* arrays */
    KEY("a.f32", 9), gb_u32(b, 6), gb_u64(b, 3);
    for (int i = 0; i < 3; i++)
        f = (float)i / 4, gb_put(b, &f, 4);
    KEY("a.str", 9), gb_u32(b, 8), gb_u64(b, 3), gb_str(b, "<s>"), gb_str(b, ""),
        gb_str(b, "\xe2\x96\x81the");
    KEY("a.empty", 9), gb_u32(b, 5), gb_u64(b, 0);
    KEY("a.bool", 9), gb_u32(b, 7), gb_u64(b, 2), gb_u8(b, 0), gb_u8(b, 1);
    KEY("a.u8", 9), gb_u32(b, 0), gb_u64(b, 2), gb_u8(b, 0), gb_u8(b, 255);
    KEY("a.u64", 9), gb_u32(b, 10), gb_u64(b, 1), gb_u64(b, UINT64_MAX);
    if (!nested)
        return n;
    /* [[1, 2] INT32, ["x"] STRING, [] FLOAT64, [[-1] INT8]] */
    KEY("a.nested", 9), gb_u32(b, 9), gb_u64(b, 4);
    gb_u32(b, 5), gb_u64(b, 2), gb_u32(b, 1), gb_u32(b, 2);
    gb_u32(b, 8), gb_u64(b, 1), gb_str(b, "x");
    gb_u32(b, 12), gb_u64(b, 0);
    gb_u32(b, 9), gb_u64(b, 1), gb_u32(b, 1), gb_u64(b, 1), gb_u8(b, 0xFF);
    KEY("a.empty_nested", 9), gb_u32(b, 9), gb_u64(b, 0);
#undef KEY
    return n;
}

static void check_all_kvs(const cairn_value *meta, int nested)
{
    const cairn_value *kv = gget(meta, "kv", NULL), *ty = gget(meta, "types", NULL);
    CHECK(cairn_value_count(kv) == cairn_value_count(ty) &&
          cairn_value_count(kv) == (nested ? 30u : 28u));
    CHECK(int_is(cairn_value_get(kv, "t.u8"), 200) && str_is(cairn_value_get(ty, "t.u8"), "UINT8"));
    CHECK(int_is(cairn_value_get(kv, "t.i8"), -128) && str_is(cairn_value_get(ty, "t.i8"), "INT8"));
    CHECK(int_is(cairn_value_get(kv, "t.u16"), 65535));
    CHECK(int_is(cairn_value_get(kv, "t.i16"), -32768));
    CHECK(int_is(cairn_value_get(kv, "t.u32"), 4000000000ll));
    CHECK(int_is(cairn_value_get(kv, "t.i32"), INT32_MIN));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f32"), f64_bits((double)0.1f)));
    CHECK(str_is(cairn_value_get(ty, "t.f32"), "FLOAT32"));
    int bv = 0;
    CHECK(cairn_value_get_bool(cairn_value_get(kv, "t.bool"), &bv) == CAIRN_OK && bv == 1);
    CHECK(cairn_value_get_bool(cairn_value_get(kv, "t.false"), &bv) == CAIRN_OK && bv == 0);
    CHECK(str_is(cairn_value_get(kv, "t.str"), "h\xc3\xa9llo"));
    CHECK(str_is(cairn_value_get(kv, "t.empty_str"), ""));
    const void *p;
    size_t len;
    const cairn_value *v = cairn_value_get(kv, "t.nul_str");
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_STRING);
    CHECK(cairn_value_get_data(v, &p, &len) == CAIRN_OK && len == 3 && memcmp(p, "a\0b", 3) == 0);
    v = cairn_value_get(kv, "t.bad_utf8");
    CHECK(cairn_value_get_type(v) == CAIRN_VALUE_BYTES);
    CHECK(cairn_value_get_data(v, &p, &len) == CAIRN_OK && len == 2 && memcmp(p, "\xff\xfe", 2) == 0);
    CHECK(str_is(cairn_value_get(ty, "t.bad_utf8"), "STRING"));
    CHECK(int_is(cairn_value_get(kv, "t.u64max"), -1));
    CHECK(str_is(cairn_value_get(ty, "t.u64max"), "UINT64"));
    CHECK(int_is(cairn_value_get(kv, "t.i64min"), INT64_MIN));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f64"), 0x8000000000000000ull));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f32nan"), 0x7FF8000020000000ull));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f32snan"), 0xFFF0000020000000ull));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f32inf"), f64_bits(-INFINITY)));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f64nan"), 0x7FF0000000000001ull));
    CHECK(float_bits_is(cairn_value_get(kv, "t.f64inf"), f64_bits(INFINITY)));
    CHECK(int_is(cairn_value_get(kv, "general.alignment"), 64));
    v = cairn_value_get(kv, "a.f32");
    CHECK(cairn_value_count(v) == 3 && float_bits_is(cairn_value_at(v, 2), f64_bits(0.5)));
    CHECK(str_is(cairn_value_get(ty, "a.f32"), "ARRAY[FLOAT32]"));
    v = cairn_value_get(kv, "a.str");
    CHECK(cairn_value_count(v) == 3 && str_is(cairn_value_at(v, 0), "<s>") &&
          str_is(cairn_value_at(v, 1), "") && str_is(cairn_value_at(v, 2), "\xe2\x96\x81the"));
    CHECK(str_is(cairn_value_get(ty, "a.str"), "ARRAY[STRING]"));
    CHECK(cairn_value_count(cairn_value_get(kv, "a.empty")) == 0);
    CHECK(cairn_value_get_type(cairn_value_get(kv, "a.empty")) == CAIRN_VALUE_LIST);
    CHECK(str_is(cairn_value_get(ty, "a.empty"), "ARRAY[INT32]"));
    CHECK(str_is(cairn_value_get(ty, "a.bool"), "ARRAY[BOOL]"));
    CHECK(int_is(cairn_value_at(cairn_value_get(kv, "a.u8"), 1), 255));
    CHECK(int_is(cairn_value_at(cairn_value_get(kv, "a.u64"), 0), -1));
    if (!nested)
        return;
    v = cairn_value_get(kv, "a.nested");
    const cairn_value *t = cairn_value_get(ty, "a.nested");
    CHECK(cairn_value_count(v) == 4 && cairn_value_get_type(t) == CAIRN_VALUE_LIST &&
          cairn_value_count(t) == 4);
    CHECK(int_is(cairn_value_at(cairn_value_at(v, 0), 1), 2));
    CHECK(str_is(cairn_value_at(t, 0), "ARRAY[INT32]") && str_is(cairn_value_at(t, 1), "ARRAY[STRING]"));
    CHECK(str_is(cairn_value_at(cairn_value_at(v, 1), 0), "x"));
    CHECK(cairn_value_count(cairn_value_at(v, 2)) == 0 && str_is(cairn_value_at(t, 2), "ARRAY[FLOAT64]"));
    CHECK(int_is(cairn_value_at(cairn_value_at(cairn_value_at(v, 3), 0), 0), -1));
    CHECK(cairn_value_get_type(cairn_value_at(t, 3)) == CAIRN_VALUE_LIST &&
          str_is(cairn_value_at(cairn_value_at(t, 3), 0), "ARRAY[INT8]"));
    CHECK(cairn_value_count(cairn_value_get(kv, "a.empty_nested")) == 0);
    CHECK(cairn_value_get_type(cairn_value_get(ty, "a.empty_nested")) == CAIRN_VALUE_LIST);
}

/* Arrays of arrays are read (the spec has them), but a tree holding one is
 * refused as UNSUPPORTED, naming the key: ggml's reader refuses such files. */
static void test_nested_read_not_written(uint32_t version)
{
    gb b = {0};
    gb_header(&b, version, 0, 0);
    uint64_t n = all_kvs(&b, 1);
    memcpy(b.p + 16, &n, 8);
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    void *out = NULL;
    size_t out_len = 0;
    CHECK_OK(open_mem(&b, &f, &err));
    if (f && cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK) {
        check_all_kvs(meta, 1);
        CHECK_ST(rewrite(f, meta, NULL, &out, &out_len, &err), CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, "a.nested") && strstr(err.message, "array of arrays"));
    }
    cairn_value_free(meta);
    cairn_file_close(f);
    free(b.p);
}

static void test_kv_types(uint32_t version)
{
    gb b = {0};
    gb_header(&b, version, 1, 0);
    uint64_t n = all_kvs(&b, 0);
    memcpy(b.p + 16, &n, 8);
    int32_t ints[5] = {1, -2, 3, -4, 5};
    uint8_t *data[1] = {(uint8_t *)ints};
    gt t[1] = {{"ints", 26, 1, {5}, 20}};
    gb_tensors(&b, t, 1, 64, data);

    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(open_mem(&b, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s\n", err.message);
        free(b.p);
        return;
    }
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.version_major == version && fi.alignment == 64 && fi.has_metadata);
    uint64_t dims[1] = {5};
    check_tensor(f, 0, "ints", CAIRN_I32, 1, dims, (const uint8_t *)ints, 20, 64);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    check_all_kvs(meta, 0);
    CHECK(int_is(gget(meta, "version", NULL), version));
    char *json = NULL;
    CHECK_OK(cairn_value_to_json(meta, 0, &json, &err));
    CHECK(json && strstr(json, "\"ARRAY[STRING]\"") != NULL);
    cairn_free(json);

    /* Writing it back (as version 3) gives the same bytes. */
    void *out = NULL;
    size_t out_len = 0;
    CHECK_OK(rewrite(f, meta, NULL, &out, &out_len, &err));
    if (version == 2 && out)
        ((uint8_t *)out)[4] = 2;
    CHECK(out && out_len == b.len && memcmp(out, b.p, b.len) == 0);
    cairn_free(out);

    /* An explicit writer alignment replaces general.alignment in place. */
    const cairn_write_opts a128 = {.struct_size = sizeof a128, .format = CAIRN_FORMAT_GGUF,
                                   .alignment = 128};
    CHECK_OK(rewrite(f, meta, &a128, &out, &out_len, &err));
    cairn_file *g = NULL;
    CHECK_OK(cairn_file_open_memory(out, out_len, NULL, &g, &err));
    cairn_value *m2 = NULL;
    CHECK_OK(cairn_file_read_metadata(g, &m2, &err));
    CHECK(int_is(gget(m2, "kv", "general.alignment"), 128));
    CHECK(cairn_value_count(gget(m2, "kv", NULL)) == 28);
    CHECK_OK(cairn_file_get_info(g, &fi, &err));
    CHECK(fi.alignment == 128 && out_len % 128 == 0);
    cairn_value_free(m2);
    cairn_file_close(g);
    cairn_free(out);

    /* Through JSON and the native format: the tree survives, so does the file. */
    cairn_writer *w = NULL;
    const cairn_write_opts native = {.struct_size = sizeof native, .format = CAIRN_FORMAT_NATIVE};
    void *nat = NULL;
    size_t nat_len = 0;
    CHECK_OK(cairn_writer_open_memory(&native, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, meta, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &nat, &nat_len, &err));
    CHECK_OK(cairn_file_open_memory(nat, nat_len, NULL, &g, &err));
    CHECK_OK(cairn_file_read_metadata(g, &m2, &err));
    CHECK_OK(rewrite(f, m2, NULL, &out, &out_len, &err));
    if (version == 2 && out)
        ((uint8_t *)out)[4] = 2;
    CHECK(out && out_len == b.len && memcmp(out, b.p, b.len) == 0);
    cairn_free(out);
    cairn_value_free(m2);
    cairn_file_close(g);
    cairn_free(nat);

    cairn_value_free(meta);
    cairn_file_close(f);
    free(b.p);
}

/* ------------------------------------------------ 4. plain trees written */

static void test_plain_tree(void)
{
    cairn_error err = {0};
    cairn_value *root = cairn_value_map(), *cfg = cairn_value_map(), *opt = cairn_value_map();
    cairn_value *l = cairn_value_list();
    cairn_value_set(root, "name", cairn_value_string("mlp"), &err);
    cairn_value_set(root, "epoch", cairn_value_int(-7), &err);
    cairn_value_set(root, "lr", cairn_value_float(1e-3), &err);
    cairn_value_set(root, "done", cairn_value_bool(1), &err);
    cairn_value_set(root, "rng", cairn_value_bytes("\x01\x02\x03", 3), &err);
    cairn_value_set(cfg, "hidden", cairn_value_int(128), &err);
    cairn_value_set(opt, "betas", l, &err);
    cairn_value_append(l, cairn_value_float(0.9), &err);
    cairn_value_append(l, cairn_value_float(0.999), &err);
    cairn_value_set(cfg, "optimizer", opt, &err);
    cairn_value_set(root, "config", cfg, &err);
    cairn_value_set(root, "none", cairn_value_list(), &err);

    cairn_writer *w = NULL;
    void *mem = NULL;
    size_t len = 0;
    float x = 1;
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, &x, &err));
    CHECK_OK(cairn_writer_set_metadata(w, root, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_open_memory(mem, len, NULL, &f, &err));
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    const cairn_value *kv = gget(meta, "kv", NULL), *ty = gget(meta, "types", NULL);
    static const char *const keys[] = {"name", "epoch", "lr", "done", "rng",
                                       "config.hidden", "config.optimizer.betas", "none"};
    static const char *const types[] = {"STRING", "INT64", "FLOAT64", "BOOL", "ARRAY[UINT8]",
                                        "INT64", "ARRAY[FLOAT64]", "ARRAY[INT64]"};
    CHECK(cairn_value_count(kv) == 8);
    for (size_t i = 0; i < 8; i++) {
        CHECK(strcmp(cairn_value_key_at(kv, i), keys[i]) == 0);
        CHECK(str_is(cairn_value_get(ty, keys[i]), types[i]));
    }
    CHECK(int_is(cairn_value_get(kv, "epoch"), -7));
    CHECK(int_is(cairn_value_at(cairn_value_get(kv, "rng"), 2), 3));
    cairn_tensor_info in;
    CHECK_OK(cairn_tensor_info_at(f, 0, &in, &err));
    CHECK(in.rank == 0 && in.count == 1 && in.dtype == CAIRN_F32);
    cairn_value_free(meta);
    cairn_file_close(f);
    cairn_free(mem);
    cairn_value_free(root);

    /* What GGUF cannot hold is refused, naming the key. */
    static const struct {
        const char *what;
        cairn_status want;
    } bad[] = {{"null", CAIRN_E_UNSUPPORTED}, {"mixed", CAIRN_E_UNSUPPORTED},
               {"map_in_list", CAIRN_E_UNSUPPORTED}, {"collide", CAIRN_E_EXISTS},
               {"nested", CAIRN_E_UNSUPPORTED}, {"ref", CAIRN_E_UNSUPPORTED},
               {"align", CAIRN_E_ARG}, {"gguf_bad", CAIRN_E_ARG}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cairn_value *r = cairn_value_map(), *list = cairn_value_list(), *m = cairn_value_map();
        const char *key = bad[i].what;
        if (i == 0)
            cairn_value_set(r, key, cairn_value_null(), &err);
        if (i == 1) {
            cairn_value_append(list, cairn_value_int(1), &err);
            cairn_value_append(list, cairn_value_string("a"), &err);
        }
        if (i == 2)
            cairn_value_append(list, cairn_value_map(), &err);
        if (i == 1 || i == 2) {
            cairn_value_set(r, key, list, &err);
            list = NULL;
        }
        if (i == 3) {
            cairn_value_set(r, "collide.x", cairn_value_int(1), &err);
            cairn_value_set(m, "x", cairn_value_int(2), &err);
            cairn_value_set(r, "collide", m, &err);
            m = NULL;
        }
        if (i == 4) { /* [["a"], b"z"]: an array of arrays, which ggml refuses */
            cairn_value *inner = cairn_value_list();
            cairn_value_append(inner, cairn_value_string("a"), &err);
            cairn_value_append(list, inner, &err);
            cairn_value_append(list, cairn_value_bytes("z", 1), &err);
            cairn_value_set(r, key, list, &err);
            list = NULL;
        }
        if (i == 5)
            cairn_value_set(r, key, cairn_value_tensor_ref("x"), &err);
        if (i == 6)
            cairn_value_set(r, "general.alignment", cairn_value_int(48), &err);
        if (i == 7)
            cairn_value_set(r, "gguf", cairn_value_int(1), &err);
        cairn_value_free(list);
        cairn_value_free(m);
        CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
        CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, &x, &err));
        /* The alignment is settled at commit. */
        CHECK_ST(commit_with_meta(w, r, &mem, &len, &err), bad[i].want);
        CHECK(strstr(err.message, i == 6 ? "general.alignment" : i == 7 ? "gguf" : key) != NULL);
        cairn_value_free(r);
    }
}

/* Typed kv records coerce or refuse, naming the key. */
static void test_typed_writes(void)
{
    static const struct {
        const char *type;
        int kind; /* 0 int, 1 float, 2 string, 3 bool, 4 bytes */
        int64_t i;
        double d;
        cairn_status want;
    } cases[] = {
        {"UINT8", 0, 255, 0, CAIRN_OK},        {"UINT8", 0, 256, 0, CAIRN_E_ARG},
        {"INT8", 0, -129, 0, CAIRN_E_ARG},     {"UINT16", 0, -1, 0, CAIRN_E_ARG},
        {"UINT32", 0, 4294967295ll, 0, CAIRN_OK}, {"INT32", 0, 2147483648ll, 0, CAIRN_E_ARG},
        {"UINT64", 0, -1, 0, CAIRN_OK},        {"FLOAT32", 0, 3, 0, CAIRN_OK},
        {"FLOAT32", 1, 0, 1e300, CAIRN_OK},    {"FLOAT64", 2, 0, 0, CAIRN_E_ARG},
        {"STRING", 4, 0, 0, CAIRN_OK},         {"BOOL", 0, 1, 0, CAIRN_E_ARG},
        {"ARRAY[UINT8]", 4, 0, 0, CAIRN_OK},   {"ARRAY[INT16]", 4, 0, 0, CAIRN_E_ARG},
        {"ARRAY", 0, 1, 0, CAIRN_E_ARG},       {"ARRAY[ARRAY]", 0, 1, 0, CAIRN_E_ARG},
        {"uint8", 0, 1, 0, CAIRN_E_ARG},       {"STRING", 3, 1, 0, CAIRN_E_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cairn_error err = {0};
        cairn_value *kv = cairn_value_map(), *ty = cairn_value_map(), *v = NULL;
        switch (cases[i].kind) {
        case 0: v = cairn_value_int(cases[i].i); break;
        case 1: v = cairn_value_float(cases[i].d); break;
        case 2: v = cairn_value_string("s"); break;
        case 3: v = cairn_value_bool(1); break;
        default: v = cairn_value_bytes("\x80\x81", 2); break;
        }
        cairn_value_set(kv, "k.v", v, &err);
        cairn_value_set(ty, "k.v", cairn_value_string(cases[i].type), &err);
        cairn_value *root = gguf_tree(kv, ty, NULL);
        cairn_writer *w = NULL;
        void *mem = NULL;
        size_t len = 0;
        CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
        CHECK_ST(commit_with_meta(w, root, &mem, &len, &err), cases[i].want);
        if (cases[i].want != CAIRN_OK)
            CHECK(strstr(err.message, "'k.v'") != NULL);
        else {
            cairn_file *f = NULL;
            cairn_value *m = NULL;
            CHECK_OK(cairn_file_open_memory(mem, len, NULL, &f, &err));
            CHECK_OK(cairn_file_read_metadata(f, &m, &err));
            CHECK(str_is(gget(m, "types", "k.v"), cases[i].type));
            if (i == 8)
                CHECK(float_bits_is(gget(m, "kv", "k.v"), f64_bits(INFINITY)));
            cairn_value_free(m);
            cairn_file_close(f);
        }
        cairn_free(mem);
        cairn_value_free(root);
    }

    /* A types record without its kv, or an array record for a string. */
    for (int c = 0; c < 2; c++) {
        cairn_error err = {0};
        cairn_value *kv = cairn_value_map(), *ty = cairn_value_map();
        if (c == 0) {
            cairn_value_set(ty, "orphan", cairn_value_string("INT32"), &err);
        } else {
            cairn_value_set(kv, "k.v", cairn_value_string("s"), &err);
            cairn_value_set(ty, "k.v", cairn_value_string("ARRAY[INT32]"), &err);
        }
        cairn_value *root = gguf_tree(kv, ty, NULL);
        cairn_writer *w = NULL;
        void *mem = NULL;
        size_t len = 0;
        CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
        /* refused when the tree is set; the failed writer refuses commit */
        CHECK_ST(cairn_writer_set_metadata(w, root, &err), CAIRN_E_ARG);
        CHECK(strstr(err.message, c ? "'k.v'" : "orphan") != NULL);
        CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), CAIRN_E_STATE);
        cairn_value_free(root);
    }
}

static void test_writer_refusals(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[5] = {1, 1, 1, 1, 2};
    uint8_t data[16] = {0};
    static const cairn_dtype refused[] = {CAIRN_U16, CAIRN_U32, CAIRN_U64, CAIRN_BOOL,
                                          CAIRN_F8_E4M3, CAIRN_F8_E5M2, CAIRN_C64, CAIRN_C128};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
        CHECK_ST(cairn_writer_add(w, "x", refused[i], 1, dims, data, &err), CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, "GGUF has no type") != NULL);
        cairn_writer_abort(w);
    }
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_F32, 5, dims, data, &err), CAIRN_E_LIMIT);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 1, dims + 4, data, &err));
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_F32, 1, dims + 4, data, &err), CAIRN_E_EXISTS);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&gguf_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 1, dims + 4, data, &err));
    CHECK_ST(cairn_writer_add_alias(w, "y", "x", &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);

    /* .gguf picks the format; a failed commit leaves nothing behind. */
    char path[4200];
    snprintf(path, sizeof path, "%s/never.gguf", tmp);
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    CHECK_OK(cairn_writer_add(w, "u", CAIRN_U8, 1, dims + 4, data, &err));
    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_UNSUPPORTED);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/empty.gguf", tmp);
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    size_t n = 0;
    uint8_t *file = tu_read_whole(path, &n);
    CHECK(file && n == 32 && memcmp(file, "GGUF\x03\0\0\0", 8) == 0);
    free(file);
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 0);
    cairn_file_close(f);
}

/* ------------------------------------------------- 5. Python, both ways */

static const char py_check[] =
    "import sys, struct, hashlib\n"
    "import numpy as np\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "pos = 0\n"
    "def rd(fmt):\n"
    "    global pos\n"
    "    v = struct.unpack_from('<' + fmt, data, pos)[0]\n"
    "    pos += struct.calcsize('<' + fmt)\n"
    "    return v\n"
    "def rs():\n"
    "    global pos\n"
    "    n = rd('Q'); s = data[pos:pos + n]; pos += n\n"
    "    return s\n"
    "SC = {0:'B',1:'b',2:'H',3:'h',4:'I',5:'i',6:'I',7:'B',10:'Q',11:'q',12:'Q'}\n"
    "def rv(t):\n"
    "    if t == 8: return (8, rs())\n"
    "    if t == 9:\n"
    "        et = rd('I'); n = rd('Q')\n"
    "        return (9, et, [rv(et) for _ in range(n)])\n"
    "    return (t, rd(SC[t]))\n"
    "assert data[:4] == b'GGUF', 'magic'\n"
    "pos = 4\n"
    "ver = rd('I'); nt = rd('Q'); nkv = rd('Q')\n"
    "assert ver == 3, ver\n"
    "kv = {}\n"
    "for _ in range(nkv):\n"
    "    k = rs().decode('utf-8'); t = rd('I'); kv[k] = rv(t)\n"
    "want = {\n"
    "  'general.architecture': (8, b'llama'),\n"
    "  'general.alignment': (4, 64),\n"
    "  'u64': (10, 2**64 - 1),\n"
    "  'i8': (1, -5),\n"
    "  'f32nan': (6, 0x7fc00001),\n"
    "  'f64inf': (12, 0xfff0000000000000),\n"
    "  'b': (7, 1),\n"
    "  'toks': (9, 8, [(8, b'<s>'), (8, b''), (8, '\\u2581x'.encode())]),\n"
    "  'plain.int': (11, -3),\n"
    "  'plain.f': (12, struct.unpack('<Q', struct.pack('<d', 0.25))[0]),\n"
    "}\n"
    "bad = 0\n"
    "if kv != want:\n"
    "    print('kv differ:', kv); bad += 1\n"
    "if list(kv) != list(want):\n"
    "    print('kv order differs:', list(kv)); bad += 1\n"
    "align = 64\n"
    "infos = []\n"
    "for _ in range(nt):\n"
    "    name = rs().decode(); nd = rd('I'); ne = [rd('Q') for _ in range(nd)]\n"
    "    infos.append((name, ne, rd('I'), rd('Q')))\n"
    "start = (pos + align - 1) // align * align\n"
    "if any(data[pos:start]): print('padding not zero'); bad += 1\n"
    "def expect_bytes(seed, n):\n"
    "    return bytes((i * 31 + seed) % 251 for i in range(n))\n"
    "for name, ne, t, off in infos:\n"
    "    if off % align: print(name, 'misaligned'); bad += 1\n"
    "    at = start + off\n"
    "    if name == 'w':\n"
    "        if t != 0 or ne != [3, 2]: print('w info', t, ne); bad += 1\n"
    "        a = np.frombuffer(data, dtype='<f4', count=6, offset=at).reshape(ne[::-1])\n"
    "        if not np.array_equal(a, np.arange(6, dtype='<f4').reshape(2, 3)): print('w values'); bad += 1\n"
    "    elif name == 'q':\n"
    "        if t != 12 or ne != [512, 3]: print('q info', t, ne); bad += 1\n"
    "        n = 512 // 256 * 144 * 3\n"
    "        if data[at:at + n] != expect_bytes(7, n): print('q bytes'); bad += 1\n"
    "    elif name == 'h':\n"
    "        if t != 30 or ne != [4]: print('h info', t, ne); bad += 1\n"
    "        if data[at:at + 8] != expect_bytes(3, 8): print('h bytes'); bad += 1\n"
    "    else:\n"
    "        print('unexpected tensor', name); bad += 1\n"
    "if len(infos) != 3: print('tensor count', len(infos)); bad += 1\n"
    "print('python checked %d kvs, %d tensors: %d problems' % (len(kv), len(infos), bad))\n"
    "sys.exit(1 if bad else 0)\n";

static const char py_write[] =
    "import sys, struct\n"
    "import numpy as np\n"
    "out, version = sys.argv[1], int(sys.argv[2])\n"
    "def s(b): return struct.pack('<Q', len(b)) + b\n"
    "kvs = [\n"
    "  (b'general.architecture', 8, s(b'gpt2')),\n"
    "  (b'general.alignment', 4, struct.pack('<I', 16)),\n"
    "  (b'x.u16', 2, struct.pack('<H', 40000)),\n"
    "  (b'x.f32', 6, struct.pack('<f', -1.5)),\n"
    "  (b'x.scores', 9, struct.pack('<IQ', 6, 3) + struct.pack('<3f', 0.0, -1.0, 2.5)),\n"
    "  (b'x.tokens', 9, struct.pack('<IQ', 8, 2) + s(b'a') + s('\\u00e9'.encode())),\n"
    "  (b'x.i64', 11, struct.pack('<q', -(2**62))),\n"
    "]\n"
    "rng = np.random.default_rng(5)\n"
    "f = np.arange(24, dtype='<f4').reshape(2, 3, 4)\n"
    "q = rng.integers(0, 256, 3 * 2 * 34, dtype=np.uint8)\n"
    "i = np.array([[1, -2], [3, -4]], dtype='<i2')\n"
    "tensors = [(b'f', f.shape[::-1], 0, f.tobytes()), (b'q8', (64, 3), 8, q.tobytes()),\n"
    "           (b'i16', i.shape[::-1], 25, i.tobytes())]\n"
    "align = 16\n"
    "head = b'GGUF' + struct.pack('<IQQ', version, len(tensors), len(kvs))\n"
    "for k, t, v in kvs: head += s(k) + struct.pack('<I', t) + v\n"
    "off = 0\n"
    "body = b''\n"
    "for name, ne, t, raw in tensors:\n"
    "    head += s(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<Q', n) for n in ne)\n"
    "    head += struct.pack('<IQ', t, off)\n"
    "    body += raw + b'\\0' * ((-len(raw)) % align)\n"
    "    off = len(body)\n"
    "head += b'\\0' * ((-len(head)) % align)\n"
    "open(out, 'wb').write(head + body)\n"
    "open(out + '.q8', 'wb').write(q.tobytes())\n";

static void bytes_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 31 + seed) % 251);
}

/* The file both independent readers check: typed kvs from a GGUF-style
 * tree, plain entries, an F32, a Q4_K and a BF16 tensor. */
static void write_cross_file(char *path, size_t size)
{
    cairn_error err = {0};
    cairn_value *kv = cairn_value_map();
    cairn_value *ty = cairn_value_map(), *tt = cairn_value_map(), *q = cairn_value_map();
    cairn_value *ne = cairn_value_list(), *toks = cairn_value_list();
    cairn_value_set(kv, "general.architecture", cairn_value_string("llama"), &err);
    cairn_value_set(kv, "general.alignment", cairn_value_int(64), &err);
    cairn_value_set(ty, "general.alignment", cairn_value_string("UINT32"), &err);
    cairn_value_set(kv, "u64", cairn_value_int(-1), &err);
    cairn_value_set(ty, "u64", cairn_value_string("UINT64"), &err);
    cairn_value_set(kv, "i8", cairn_value_int(-5), &err);
    cairn_value_set(ty, "i8", cairn_value_string("INT8"), &err);
    cairn_value_set(kv, "f32nan", cairn_value_float(f64_from(0x7FF8000020000000ull)), &err);
    cairn_value_set(ty, "f32nan", cairn_value_string("FLOAT32"), &err);
    cairn_value_set(kv, "f64inf", cairn_value_float(-INFINITY), &err);
    cairn_value_set(kv, "b", cairn_value_bool(1), &err);
    cairn_value_append(toks, cairn_value_string("<s>"), &err);
    cairn_value_append(toks, cairn_value_string(""), &err);
    cairn_value_append(toks, cairn_value_string("\xe2\x96\x81x"), &err);
    cairn_value_set(kv, "toks", toks, &err);
    cairn_value_set(q, "type", cairn_value_string("Q4_K"), &err);
    cairn_value_append(ne, cairn_value_int(512), &err);
    cairn_value_append(ne, cairn_value_int(3), &err);
    cairn_value_set(q, "ne", ne, &err);
    cairn_value_set(tt, "q", q, &err);
    cairn_value *root = gguf_tree(kv, ty, tt);
    cairn_value *plain = cairn_value_map();
    cairn_value_set(plain, "int", cairn_value_int(-3), &err);
    cairn_value_set(plain, "f", cairn_value_float(0.25), &err);
    cairn_value_set(root, "plain", plain, &err);

    float w[6] = {0, 1, 2, 3, 4, 5};
    uint64_t wd[2] = {2, 3}, qd[2] = {3, 288}, hd[1] = {4};
    uint8_t qb[3 * 288], hb[8];
    bytes_pattern(qb, sizeof qb, 7);
    bytes_pattern(hb, sizeof hb, 3);
    snprintf(path, size, "%s/cairn_written.gguf", tmp);
    cairn_writer *wr = NULL;
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &wr, &err));
    CHECK_OK(cairn_writer_add(wr, "w", CAIRN_F32, 2, wd, w, &err));
    CHECK_OK(cairn_writer_add(wr, "q", CAIRN_U8, 2, qd, qb, &err));
    CHECK_OK(cairn_writer_add(wr, "h", CAIRN_BF16, 1, hd, hb, &err));
    CHECK_OK(cairn_writer_set_metadata(wr, root, &err));
    CHECK_OK(cairn_writer_commit(wr, &err));
    if (err.status)
        fprintf(stderr, "  %s\n", err.message);
    cairn_value_free(root);
}

/* cairn writes; the Python reader checks every byte it cares about. */
static void python_reads_cairn(const char *script)
{
    char path[4200];
    write_cross_file(path, sizeof path);
    CHECK(tu_run_python(script, path, NULL) == 0);
}

/* Python writes (versions 2 and 3); cairn reads. */
static void cairn_reads_python(const char *script)
{
    for (int version = 2; version <= 3; version++) {
        char path[4200], ver[4], qpath[4300];
        snprintf(path, sizeof path, "%s/py_v%d.gguf", tmp, version);
        snprintf(qpath, sizeof qpath, "%s.q8", path);
        snprintf(ver, sizeof ver, "%d", version);
        CHECK(tu_run_python(script, path, ver) == 0);
        cairn_error err = {0};
        cairn_file *f = NULL;
        CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
        if (!f) {
            fprintf(stderr, "  %s\n", err.message);
            continue;
        }
        cairn_file_info fi;
        CHECK_OK(cairn_file_get_info(f, &fi, &err));
        CHECK(fi.version_major == (uint32_t)version && fi.alignment == 16 &&
              fi.tensor_count == 3);
        float fv[24];
        uint64_t fd[3] = {2, 3, 4};
        for (int i = 0; i < 24; i++)
            fv[i] = (float)i;
        check_tensor(f, 0, "f", CAIRN_F32, 3, fd, (const uint8_t *)fv, sizeof fv, 16);
        size_t qn = 0;
        uint8_t *qb = tu_read_whole(qpath, &qn);
        uint64_t qd[2] = {3, 68};
        CHECK(qn == 3 * 68);
        if (qb)
            check_tensor(f, 1, "q8", CAIRN_U8, 2, qd, qb, qn, 16);
        free(qb);
        int16_t iv[4] = {1, -2, 3, -4};
        uint64_t id[2] = {2, 2};
        check_tensor(f, 2, "i16", CAIRN_I16, 2, id, (const uint8_t *)iv, 8, 16);
        cairn_value *m = NULL;
        CHECK_OK(cairn_file_read_metadata(f, &m, &err));
        CHECK(str_is(gget(m, "kv", "general.architecture"), "gpt2"));
        CHECK(int_is(gget(m, "kv", "x.u16"), 40000) && str_is(gget(m, "types", "x.u16"), "UINT16"));
        CHECK(float_bits_is(gget(m, "kv", "x.f32"), f64_bits(-1.5)));
        CHECK(float_bits_is(cairn_value_at(gget(m, "kv", "x.scores"), 2), f64_bits(2.5)));
        CHECK(str_is(cairn_value_at(gget(m, "kv", "x.tokens"), 1), "\xc3\xa9"));
        CHECK(int_is(gget(m, "kv", "x.i64"), -(INT64_C(1) << 62)));
        CHECK(str_is(cairn_value_get(gget(m, "tensor_types", "q8"), "type"), "Q8_0"));
        CHECK_OK(cairn_file_verify(f, &err));
        /* Rewritten by cairn: the same file, apart from the version field. */
        size_t n = 0;
        uint8_t *orig = tu_read_whole(path, &n);
        void *out = NULL;
        size_t out_len = 0;
        cairn_file_close(f);
        CHECK_OK(cairn_file_open(path, NULL, &f, &err));
        CHECK_OK(rewrite(f, m, NULL, &out, &out_len, &err));
        if (out && orig && n > 4)
            orig[4] = 3;
        CHECK(out && orig && out_len == n && memcmp(out, orig, n) == 0);
        cairn_free(out);
        free(orig);
        cairn_value_free(m);
        cairn_file_close(f);
    }
}

static void test_python(void)
{
    char check[4300], writer[4300];
    if (!tu_python_imports("numpy", "Python cross-checks"))
        return;
    snprintf(check, sizeof check, "%s/check_gguf.py", tmp);
    snprintf(writer, sizeof writer, "%s/write_gguf.py", tmp);
    CHECK(tu_write_file(check, py_check, sizeof py_check - 1) == 0);
    CHECK(tu_write_file(writer, py_write, sizeof py_write - 1) == 0);
    python_reads_cairn(check);
    cairn_reads_python(writer);
}

/* A second independent reader: huggingface.js's @huggingface/gguf, installed
 * from the npm registry into the scratch directory (or found under
 * $CAIRN_GGUF_JS/node_modules). Skipped when node, npm or the network is
 * missing. */
static const char js_check[] =
    "import { gguf } from '@huggingface/gguf';\n"
    "import { readFileSync } from 'fs';\n"
    "import assert from 'assert/strict';\n"
    "const p = process.argv[2];\n"
    "const { metadata: m, tensorInfos: t, tensorDataOffset: off } =\n"
    "    await gguf(p, { allowLocalFile: true });\n"
    "assert.equal(m.version, 3);\n"
    "assert.equal(m['general.architecture'], 'llama');\n"
    "assert.equal(m['general.alignment'], 64);\n"
    "assert.equal(m.u64, 18446744073709551615n);\n"
    "assert.equal(m.i8, -5);\n"
    "assert.ok(Number.isNaN(m.f32nan));\n"
    "assert.equal(m.f64inf, -Infinity);\n"
    "assert.equal(m.b, true);\n"
    "assert.deepEqual(m.toks, ['<s>', '', '\\u2581x']);\n"
    "assert.equal(m['plain.int'], -3n);\n"
    "assert.equal(m['plain.f'], 0.25);\n"
    "assert.deepEqual(t.map(x => [x.name, x.shape.map(Number), x.dtype, Number(x.offset)]),\n"
    "    [['w', [3, 2], 0, 0], ['q', [512, 3], 12, 64], ['h', [4], 30, 960]]);\n"
    "const buf = readFileSync(p);\n"
    "const w = new Float32Array(buf.buffer.slice(buf.byteOffset + Number(off),\n"
    "                                              buf.byteOffset + Number(off) + 24));\n"
    "assert.deepEqual(Array.from(w), [0, 1, 2, 3, 4, 5]);\n"
    "for (let i = 0; i < 864; i++)\n"
    "    assert.equal(buf[Number(off) + 64 + i], (i * 31 + 7) % 251);\n"
    "console.log('huggingface.js read the cairn-written GGUF: all checks passed');\n";

static void test_huggingface_js(void)
{
    char dir[4200], cmd[9000], script[4300], path[4200];
    const char *given = getenv("CAIRN_GGUF_JS");
    if (system("command -v node >/dev/null 2>&1") != 0) {
        fprintf(stderr, "node missing: huggingface.js cross-check skipped\n");
        return;
    }
    if (given && *given) {
        snprintf(dir, sizeof dir, "%s", given);
    } else {
        snprintf(dir, sizeof dir, "%s/js", tmp);
        mkdir(dir, 0777);
        snprintf(cmd, sizeof cmd, "command -v npm >/dev/null 2>&1 && cd '%s' && timeout 120 npm "
                 "install --no-audit --no-fund --silent @huggingface/gguf >/dev/null 2>&1", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "npm install @huggingface/gguf failed: huggingface.js cross-check "
                    "skipped\n");
            return;
        }
    }
    snprintf(script, sizeof script, "%s/check_gguf.mjs", dir);
    CHECK(tu_write_file(script, js_check, sizeof js_check - 1) == 0);
    write_cross_file(path, sizeof path);
    snprintf(cmd, sizeof cmd, "node '%s' '%s'", script, path);
    CHECK(tu_system(cmd) == 0);
}

/* ------------------------------------------------------ 6. hostile input */

/* A small valid file with kvs, a nested array and three tensors; `meta_end`
 * and `data_end` receive where the metadata and the last tensor's bytes end. */
static void small_file(gb *b, size_t *data_end)
{
    gb_header(b, 3, 3, 4);
    kv_u32(b, "general.alignment", 4, 32);
    gb_str(b, "s");
    gb_u32(b, 8);
    gb_str(b, "text");
    gb_str(b, "n");
    gb_u32(b, 9);
    gb_u32(b, 9), gb_u64(b, 2);
    gb_u32(b, 7), gb_u64(b, 1), gb_u8(b, 1);
    gb_u32(b, 8), gb_u64(b, 1), gb_str(b, "z");
    gb_str(b, "f");
    gb_u32(b, 6);
    gb_u32(b, 0x3F800000u);
    static uint8_t d0[16], d1[34], d2[6];
    uint8_t *data[3] = {d0, d1, d2};
    fill(d0, 16, 1);
    fill(d1, 34, 2);
    fill(d2, 6, 3);
    gt t[3] = {{"a", 0, 2, {2, 2}, 16}, {"b", 8, 1, {32}, 34}, {"c", 25, 1, {3}, 6}};
    gb_tensors(b, t, 3, 32, data);
    *data_end = b->len - 32 + 6; /* c is last, padded to 32 */
}

static void truncations(void)
{
    gb b = {0};
    size_t data_end;
    small_file(&b, &data_end);
    cairn_error err = {0};
    CHECK_OK(try_all(b.p, b.len, NULL, &err));
    int ok = 0, bad = 0;
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        const cairn_open_opts forced = {.struct_size = sizeof forced, .format = CAIRN_FORMAT_GGUF};
        cairn_status st = try_all(copy, n, &forced, &err);
        if (n < data_end) {
            CHECK(st != CAIRN_OK);
            if (st == CAIRN_OK)
                fprintf(stderr, "  truncation at %zu accepted\n", n);
            CHECK(strstr(err.message, "<memory>") != NULL);
            CHECK(n < 4 || strstr(err.message, "offset") != NULL);
            bad++;
        } else {
            CHECK_OK(st); /* only padding after the last tensor is gone */
            ok++;
        }
        free(copy);
    }
    fprintf(stderr, "truncations: %d refused, %d accepted (only trailing padding cut)\n", bad, ok);

    /* The same through pread with a file. */
    char path[4200];
    snprintf(path, sizeof path, "%s/trunc.gguf", tmp);
    for (size_t n = 24; n < data_end; n += 7) {
        tu_write_file(path, b.p, n);
        cairn_file *f = NULL;
        CHECK(cairn_file_open(path, &no_mmap, &f, &err) != CAIRN_OK);
        CHECK(strstr(err.message, "trunc.gguf") != NULL);
        cairn_file_close(f);
    }
    free(b.p);
}

static void byte_flips(void)
{
    gb b = {0};
    size_t data_end;
    small_file(&b, &data_end);
    uint64_t seed = 42;
    int refused = 0, accepted = 0;
    uint8_t *copy = malloc(b.len);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(copy, b.p, b.len);
        int flips = 1 + (int)(tu_rand(&seed) % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(tu_rand(&seed) % b.len);
            uint64_t r = tu_rand(&seed);
            copy[at] = r % 4 == 0 ? (uint8_t)(r >> 8) : (uint8_t)(copy[at] ^ (1u << (r >> 8) % 8));
        }
        cairn_error err = {0};
        cairn_status st = try_all(copy, b.len, NULL, &err);
        if (st == CAIRN_OK) {
            accepted++;
        } else {
            refused++;
            CHECK(err.message[0] != '\0');
        }
    }
    fprintf(stderr, "byte flips: %d refused, %d accepted\n", refused, accepted);
    free(copy);
    free(b.p);
}

typedef struct hostile {
    const char *what;
    cairn_status want;
    const char *needle; /* must appear in the message */
} hostile;

/* The info of a rank-1 tensor: its name, n_dims 1, ne[0], type id, offset. */
static void gb_info1(gb *b, const char *name, uint64_t ne0, uint32_t type, uint64_t offset)
{
    gb_str(b, name), gb_u32(b, 1), gb_u64(b, ne0), gb_u32(b, type), gb_u64(b, offset);
}

/* A version 3 file of one rank-1 tensor "a" whose info says (ne0, type,
 * offset), padded to 32, then 64 zero bytes of data. */
static void one_tensor_file(gb *b, uint64_t ne0, uint32_t type, uint64_t offset)
{
    static const uint8_t zeros[64];
    gb_header(b, 3, 1, 0);
    gb_info1(b, "a", ne0, type, offset);
    gb_pad(b, 32);
    gb_put(b, zeros, sizeof zeros);
}

/* Builds the hostile file number `i` into b. */
static void build_hostile(int i, gb *b)
{
    static uint8_t z[256];
    uint8_t *zz[3] = {z, z, z};
    switch (i) {
    case 0: /* string length past EOF */
        gb_header(b, 3, 0, 1);
        gb_str(b, "k");
        gb_u32(b, 8);
        gb_u64(b, 1000);
        gb_put(b, "abc", 3);
        break;
    case 1: /* array count huge */
        gb_header(b, 3, 0, 1);
        gb_str(b, "k");
        gb_u32(b, 9);
        gb_u32(b, 4);
        gb_u64(b, UINT64_MAX / 2);
        gb_u32(b, 1);
        break;
    case 2: { /* n_dims 5 */
        gb_header(b, 3, 1, 0);
        gb_str(b, "t");
        gb_u32(b, 5);
        for (int k = 0; k < 5; k++)
            gb_u64(b, 1);
        gb_u32(b, 0);
        gb_u64(b, 0);
        gb_pad(b, 32);
        gb_put(b, z, 4);
        break;
    }
    case 3: /* negative ne */
        gb_header(b, 3, 1, 0);
        gb_str(b, "t");
        gb_u32(b, 1);
        gb_u64(b, (uint64_t)-4);
        gb_u32(b, 0);
        gb_u64(b, 0);
        gb_pad(b, 32);
        break;
    case 4: { /* tensor data past EOF */
        gt t[1] = {{"t", 0, 1, {64}, 256}};
        gb_header(b, 3, 1, 0);
        gb_tensors(b, t, 1, 32, zz);
        b->len -= 100;
        break;
    }
    case 5: { /* overlapping tensors: b starts inside a */
        gb_header(b, 3, 2, 0);
        gb_info1(b, "a", 16, 0, 0);
        gb_info1(b, "b", 16, 0, 32);
        gb_pad(b, 32);
        gb_put(b, z, 128);
        break;
    }
    case 6: /* misaligned offset */
        one_tensor_file(b, 4, 0, 8);
        break;
    case 7: /* unknown type id */
        one_tensor_file(b, 4, 43, 0);
        break;
    case 8: /* removed type id */
        one_tensor_file(b, 32, 4, 0);
        break;
    case 9: /* type id that is negative as int32 */
        one_tensor_file(b, 4, 0xFFFFFFFFu, 0);
        break;
    case 10: /* duplicate tensor names */
        gb_header(b, 3, 2, 0);
        gb_info1(b, "a", 4, 0, 0);
        gb_info1(b, "a", 4, 0, 32);
        gb_pad(b, 32);
        gb_put(b, z, 64);
        break;
    case 11: /* duplicate keys */
        gb_header(b, 3, 0, 2);
        kv_u32(b, "k", 4, 1);
        kv_u32(b, "k", 4, 2);
        break;
    case 12: /* version 1 */
        gb_header(b, 1, 0, 0);
        break;
    case 13: /* byte-swapped version 3 (a big-endian file) */
        gb_header(b, 0x03000000u, 0, 0);
        break;
    case 14: /* version 4 */
        gb_header(b, 4, 0, 0);
        break;
    case 15: /* ne[0] not a multiple of the block */
        one_tensor_file(b, 33, 8, 0);
        break;
    case 16: /* nesting 9 deep */
        gb_header(b, 3, 0, 1);
        gb_str(b, "k");
        gb_u32(b, 9);
        for (int d = 0; d < 8; d++)
            gb_u32(b, 9), gb_u64(b, 1);
        gb_u32(b, 4), gb_u64(b, 0);
        break;
    case 17: /* general.alignment of the wrong type */
        gb_header(b, 3, 0, 1);
        gb_str(b, "general.alignment");
        gb_u32(b, 11);
        gb_u64(b, 32);
        break;
    case 18: /* general.alignment not a power of two */
        gb_header(b, 3, 0, 1);
        kv_u32(b, "general.alignment", 4, 24);
        break;
    case 19: /* element count overflows */
        gb_header(b, 3, 1, 0);
        gb_str(b, "a"), gb_u32(b, 2), gb_u64(b, 1ull << 40), gb_u64(b, 1ull << 40);
        gb_u32(b, 0), gb_u64(b, 0);
        gb_pad(b, 32);
        break;
    case 20: /* a BOOL that is 2 */
        gb_header(b, 3, 0, 1);
        gb_str(b, "k");
        gb_u32(b, 7);
        gb_u8(b, 2);
        break;
    case 21: /* unknown value type */
        gb_header(b, 3, 0, 1);
        gb_str(b, "k");
        gb_u32(b, 13);
        gb_u32(b, 0);
        break;
    case 22: /* empty key */
        gb_header(b, 3, 0, 1);
        gb_str(b, "");
        gb_u32(b, 4);
        gb_u32(b, 0);
        break;
    case 23: /* tensor_count larger than the file can hold */
        gb_header(b, 3, 1000, 0);
        gb_put(b, z, 100);
        break;
    case 24: /* tensor_count past the limit */
        gb_header(b, 3, 1ull << 40, 0);
        break;
    case 25: /* name longer than 4096 */
        gb_header(b, 3, 1, 0);
        gb_u64(b, 5000);
        for (int k = 0; k < 5000; k++)
            gb_u8(b, 'x');
        gb_u32(b, 1), gb_u64(b, 1), gb_u32(b, 0), gb_u64(b, 0);
        gb_pad(b, 32);
        gb_put(b, z, 32);
        break;
    case 26: /* data section past EOF (no padding after the infos) */
        gb_header(b, 3, 1, 0);
        gb_str(b, "a"), gb_u32(b, 1), gb_u64(b, 0), gb_u32(b, 0), gb_u64(b, 0);
        break;
    case 27: /* key not UTF-8 */
        gb_header(b, 3, 0, 1);
        gb_strn(b, "\xc0\xaf", 2);
        gb_u32(b, 4);
        gb_u32(b, 0);
        break;
    case 28: /* array element type out of range */
        gb_header(b, 3, 0, 1);
        gb_str(b, "k");
        gb_u32(b, 9);
        gb_u32(b, 77);
        gb_u64(b, 1);
        gb_u32(b, 0);
        break;
    case 29: /* short header */
        gb_put(b, "GGUF\x03\0\0\0\0\0", 10);
        break;
    }
}

static const hostile hostiles[] = {
    {"string length past EOF", CAIRN_E_CORRUPT, "length 1000 runs past"},
    {"array count huge", CAIRN_E_CORRUPT, "array of"},
    {"n_dims 5", CAIRN_E_LIMIT, "n_dims 5"},
    {"negative ne", CAIRN_E_CORRUPT, "ne[0] is negative"},
    {"data past EOF", CAIRN_E_CORRUPT, "runs past the end of the data section"},
    {"overlap", CAIRN_E_CORRUPT, "overlaps tensor 'a'"},
    {"misaligned", CAIRN_E_CORRUPT, "not a multiple of the alignment 32"},
    {"unknown type", CAIRN_E_UNSUPPORTED, "unknown ggml type 43"},
    {"removed type", CAIRN_E_UNSUPPORTED, "Q4_2"},
    {"type -1", CAIRN_E_UNSUPPORTED, "4294967295"},
    {"duplicate names", CAIRN_E_CORRUPT, "'a' appears twice"},
    {"duplicate keys", CAIRN_E_CORRUPT, "key 'k' appears twice"},
    {"version 1", CAIRN_E_UNSUPPORTED, "version 1"},
    {"big-endian", CAIRN_E_UNSUPPORTED, "big-endian"},
    {"version 4", CAIRN_E_UNSUPPORTED, "version 4"},
    {"block multiple", CAIRN_E_CORRUPT, "block size"},
    {"nesting", CAIRN_E_LIMIT, "nested more than 8"},
    {"alignment type", CAIRN_E_CORRUPT, "must be UINT32"},
    {"alignment value", CAIRN_E_CORRUPT, "not a power of two"},
    {"size overflow", CAIRN_E_CORRUPT, "overflows"},
    {"bool 2", CAIRN_E_CORRUPT, "BOOL value is 2"},
    {"value type 13", CAIRN_E_CORRUPT, "value type 13"},
    {"empty key", CAIRN_E_CORRUPT, "empty key"},
    {"tensor_count vs size", CAIRN_E_CORRUPT, "cannot fit"},
    {"tensor_count limit", CAIRN_E_LIMIT, "tensor_count"},
    {"long name", CAIRN_E_LIMIT, "tensor name length 5000"},
    {"data section past EOF", CAIRN_E_CORRUPT, "data section would start"},
    {"key not UTF-8", CAIRN_E_CORRUPT, "not UTF-8"},
    {"array element type", CAIRN_E_CORRUPT, "element type 77"},
    {"short header", CAIRN_E_CORRUPT, "24-byte"},
};

static void test_hostile(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/hostile.gguf", tmp);
    for (int i = 0; i < (int)(sizeof hostiles / sizeof hostiles[0]); i++) {
        gb b = {0};
        build_hostile(i, &b);
        for (int pass = 0; pass < 2; pass++) {
            cairn_error err = {0};
            cairn_status st;
            if (pass == 0) {
                st = try_all(b.p, b.len, NULL, &err);
            } else {
                cairn_file *f = NULL;
                tu_write_file(path, b.p, b.len);
                st = cairn_file_open(path, &no_mmap, &f, &err);
                if (st == CAIRN_OK)
                    st = try_all(b.p, b.len, NULL, &err);
                cairn_file_close(f);
            }
            CHECK_ST(st, hostiles[i].want);
            int named = strstr(err.message, hostiles[i].needle) != NULL &&
                        strstr(err.message, pass ? "hostile.gguf" : "<memory>") != NULL &&
                        strstr(err.message, "offset") != NULL;
            CHECK(named);
            if (st != hostiles[i].want || !named)
                fprintf(stderr, "  %s: %s\n", hostiles[i].what, err.message);
            else if (pass == 0)
                fprintf(stderr, "  refused (%s): %s\n", hostiles[i].what, err.message);
        }
        free(b.p);
    }
    truncations();
    byte_flips();
}

/* Metadata larger than the pread window (128 KiB) and a 65535-byte key:
 * reading with pread gives the same tree and tensors as the mapping. */
static void test_pread_window(void)
{
    gb b = {0};
    char tok[32];
    gb_header(&b, 3, 1, 3);
    gb_str(&b, "tokenizer.ggml.tokens");
    gb_u32(&b, 9), gb_u32(&b, 8), gb_u64(&b, 40000);
    for (int i = 0; i < 40000; i++) {
        snprintf(tok, sizeof tok, "tok%d", i);
        gb_str(&b, tok);
    }
    char *key = malloc(65536);
    memset(key, 'k', 65535);
    key[65535] = '\0';
    kv_u32(&b, key, 4, 7);
    free(key);
    gb_str(&b, "tokenizer.ggml.scores");
    gb_u32(&b, 9), gb_u32(&b, 6), gb_u64(&b, 40000);
    for (int i = 0; i < 40000; i++) {
        float f = (float)i / 8;
        gb_put(&b, &f, 4);
    }
    uint8_t q[2 * 34];
    fill(q, sizeof q, 9);
    uint8_t *data[1] = {q};
    gt t[1] = {{"q", 8, 2, {32, 2}, sizeof q}};
    gb_tensors(&b, t, 1, 32, data);
    char path[4200];
    snprintf(path, sizeof path, "%s/window.gguf", tmp);
    CHECK(tu_write_file(path, b.p, b.len) == 0);
    char *json[2] = {NULL, NULL};
    for (int pass = 0; pass < 2; pass++) {
        cairn_error err = {0};
        cairn_file *f = NULL;
        cairn_value *m = NULL;
        CHECK_OK(cairn_file_open(path, pass ? &no_mmap : NULL, &f, &err));
        if (!f) {
            fprintf(stderr, "  %s\n", err.message);
            continue;
        }
        uint64_t dims[2] = {2, 34};
        check_tensor(f, 0, "q", CAIRN_U8, 2, dims, q, sizeof q, 32);
        CHECK_OK(cairn_file_read_metadata(f, &m, &err));
        const cairn_value *toks = gget(m, "kv", "tokenizer.ggml.tokens");
        CHECK(cairn_value_count(toks) == 40000 && str_is(cairn_value_at(toks, 39999), "tok39999"));
        CHECK(cairn_value_count(gget(m, "kv", NULL)) == 3);
        CHECK_OK(cairn_value_to_json(m, 0, &json[pass], &err));
        CHECK_OK(cairn_file_verify(f, &err));
        cairn_value_free(m);
        cairn_file_close(f);
    }
    CHECK(json[0] && json[1] && strcmp(json[0], json[1]) == 0);
    cairn_free(json[0]);
    cairn_free(json[1]);
    free(b.p);
}

/* Metadata too large for a tree: the file opens and the tensors read. */
static void test_value_limit(void)
{
    gb b = {0};
    size_t n = (1u << 24) + 1;
    gb_header(&b, 3, 0, 1);
    gb_str(&b, "big");
    gb_u32(&b, 9);
    gb_u32(&b, 0);
    gb_u64(&b, n);
    uint8_t *ones = calloc(n, 1);
    gb_put(&b, ones, n);
    free(ones);
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    CHECK_OK(open_mem(&b, &f, &err));
    CHECK_ST(cairn_file_read_metadata(f, &meta, &err), CAIRN_E_LIMIT);
    CHECK(strstr(err.message, "values") != NULL);
    cairn_file_close(f);
    free(b.p);
}

int main(void)
{
    tmp = tu_tmpdir("test_gguf");
    test_dtype_round_trips();
    test_dim_order();
    test_quantized();
    test_tensor_types_checks();
    test_kv_types(3);
    test_kv_types(2);
    test_nested_read_not_written(3);
    test_plain_tree();
    test_typed_writes();
    test_writer_refusals();
    test_python();
    test_huggingface_js();
    test_hostile();
    test_pread_window();
    test_value_limit();
    TEST_MAIN_END();
}
