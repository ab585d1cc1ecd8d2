/* test_safetensors.c -- the safetensors reader and writer: round trips,
 * metadata, conversion from and to native, an independent Python reader and
 * writer, the public corpus and hostile inputs. */
#include "corpus.h"
#include "testutil.h"

#include <cairn.h>
#include <math.h>

/* ------------------------------------------------------------- helpers */

static const cairn_dtype st_dtypes[] = {
    CAIRN_F64, CAIRN_F32, CAIRN_F16, CAIRN_BF16, CAIRN_F8_E4M3, CAIRN_F8_E5M2,
    CAIRN_I8,  CAIRN_I16, CAIRN_I32, CAIRN_I64,  CAIRN_U8,      CAIRN_U16,
    CAIRN_U32, CAIRN_U64, CAIRN_BOOL, CAIRN_C64,
};
#define N_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static const char *tmp;
static const cairn_write_opts no_sync = {.struct_size = sizeof(cairn_write_opts),
                                         .flags = CAIRN_WRITE_NO_SYNC};
static const cairn_write_opts st_mem = {.struct_size = sizeof(cairn_write_opts),
                                        .format = CAIRN_FORMAT_SAFETENSORS};
static const cairn_open_opts no_mmap = {.struct_size = sizeof(cairn_open_opts),
                                        .flags = CAIRN_OPEN_NO_MMAP};
static const cairn_open_opts forced = {.struct_size = sizeof(cairn_open_opts),
                                       .format = CAIRN_FORMAT_SAFETENSORS};

/* Reads tensor i as stored into a new buffer. */
static uint8_t *read_tensor(cairn_file *f, uint64_t i, cairn_tensor_info *info, cairn_error *err)
{
    if (cairn_tensor_info_at(f, i, info, err) != CAIRN_OK)
        return NULL;
    uint8_t *buf = malloc(info->raw_size ? (size_t)info->raw_size : 1);
    if (buf && cairn_tensor_read(f, i, info->dtype, buf, (size_t)info->raw_size, 0, err) !=
                   CAIRN_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Opens bytes in memory, reads every tensor, the metadata, and verifies:
 * the status of the first failure. */
static cairn_status try_memory_opts(const void *buf, size_t n, const cairn_open_opts *opts,
                                    cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open_memory(buf, n, opts, &f, err);
    for (uint64_t i = 0; st == CAIRN_OK && i < cairn_file_count(f); i++) {
        cairn_tensor_info info;
        uint8_t *data = read_tensor(f, i, &info, err);
        st = data ? CAIRN_OK : err->status;
        free(data);
    }
    cairn_value *meta = NULL;
    if (st == CAIRN_OK)
        st = cairn_file_read_metadata(f, &meta, err);
    cairn_value_free(meta);
    if (st == CAIRN_OK)
        st = cairn_file_verify(f, err);
    cairn_file_close(f);
    return st;
}

static cairn_status try_memory(const void *buf, size_t n, cairn_error *err)
{
    return try_memory_opts(buf, n, &forced, err);
}

/* A safetensors file around `header` (used as is, no padding), followed by
 * `data_len` bytes of a pattern. */
static uint8_t *make_st(const char *header, size_t data_len, size_t *out_len)
{
    size_t hlen = strlen(header), total = 8 + hlen + data_len;
    uint8_t *b = malloc(total);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hlen + i] = (uint8_t)(i * 7 + 1);
    *out_len = total;
    return b;
}

static char *json_of(const cairn_value *v)
{
    char *s = NULL;
    cairn_value_to_json(v, 0, &s, NULL);
    return s;
}

static int same_tree(const cairn_value *a, const cairn_value *b)
{
    char *x = json_of(a), *y = json_of(b);
    int same = x && y && strcmp(x, y) == 0;
    if (!same)
        fprintf(stderr, "  trees differ:\n    %s\n    %s\n", x ? x : "?", y ? y : "?");
    cairn_free(x);
    cairn_free(y);
    return same;
}

/* ------------------------------------------------------ 1. round trips */

static void check_read_back(const char *path, const char *name, cairn_dtype dtype,
                            uint32_t rank, const uint64_t *dims, const uint8_t *data,
                            size_t bytes)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_tensor_info in;
    const void *view = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s\n", err.message);
        return;
    }
    CHECK(cairn_file_count(f) == 1);
    uint8_t *got = read_tensor(f, 0, &in, &err);
    CHECK(strcmp(in.name, name) == 0 && in.name_len == strlen(name));
    CHECK(in.dtype == dtype && in.rank == rank);
    for (uint32_t d = 0; d < CAIRN_MAX_RANK; d++)
        CHECK(in.dims[d] == (d < rank ? dims[d] : 0));
    CHECK(in.count == tu_elem_count(rank, dims) && in.raw_size == bytes);
    CHECK(in.stored_size == bytes && in.codec == CAIRN_CODEC_NONE && !in.has_checksum);
    CHECK(in.offset % 8 == 0 && in.alignment == (in.offset & (~in.offset + 1)));
    CHECK(in.zero_copy);
    CHECK(got && memcmp(got, data, bytes) == 0);
    CHECK_OK(cairn_tensor_data(f, 0, &view, &err));
    CHECK(view && memcmp(view, data, bytes) == 0);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_SAFETENSORS && fi.tensor_count == 1);
    CHECK(fi.payload_bytes == bytes && fi.file_size == in.offset + bytes && !fi.has_metadata);
    CHECK_OK(cairn_file_verify(f, &err));
    uint64_t idx = 9;
    CHECK_OK(cairn_tensor_find(f, name, &idx, NULL, &err));
    CHECK(idx == 0);
    CHECK_ST(cairn_tensor_find(f, "nope", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK(meta && cairn_value_get_type(meta) == CAIRN_VALUE_MAP && cairn_value_count(meta) == 0);
    cairn_value_free(meta);
    free(got);
    cairn_file_close(f);

    CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
    if (f) {
        got = read_tensor(f, 0, &in, &err);
        CHECK(!in.zero_copy && got && memcmp(got, data, bytes) == 0);
        CHECK_ST(cairn_tensor_data(f, 0, &view, &err), CAIRN_E_UNSUPPORTED);
        CHECK_OK(cairn_file_verify(f, &err));
        free(got);
        cairn_file_close(f);
    }
}

static void round_trip(cairn_dtype dtype, uint32_t rank, const uint64_t *dims, uint64_t seed)
{
    char path[4200];
    cairn_error err = {0};
    size_t bytes = (size_t)(tu_elem_count(rank, dims) * cairn_dtype_size(dtype));
    uint8_t *data = malloc(bytes ? bytes : 1);
    tu_fill(data, bytes, dtype, seed);
    snprintf(path, sizeof path, "%s/rt_%s_%u.safetensors", tmp, cairn_dtype_name(dtype), rank);

    tu_write_weights(path, &no_sync, dtype, rank, dims, data);
    check_read_back(path, "weights", dtype, rank, dims, data, bytes);
    size_t mem_len = 0;
    void *mem = tu_memory_save_matches(path, &st_mem, dtype, rank, dims, data, &mem_len);
    CHECK_OK(try_memory_opts(mem, mem_len, NULL, &err));
    cairn_free(mem);
    free(data);
}

static void test_round_trips(void)
{
    static const uint64_t shapes[][CAIRN_MAX_RANK] = {
        {0}, {0, 3}, {2, 1, 3, 1, 2, 2, 1, 3}, {100000}, {3, 4}, {7}, {5, 0, 99999999999ull}};
    static const uint32_t ranks[] = {0, 2, 8, 1, 2, 1, 3};
    uint64_t seed = 1;
    for (size_t d = 0; d < N_DTYPES; d++)
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++)
            round_trip(st_dtypes[d], ranks[s], shapes[s], seed++);
}

/* Many tensors, added out of layout order: the reference layout (dtype
 * alignment descending, then name), natural alignment of every tensor, and
 * every byte back, through a path writer (spool file) and a memory writer. */
static void test_many_tensors(void)
{
    enum { N = 300 };
    char path[4200], name[64];
    cairn_error err = {0};
    cairn_writer *fw = NULL, *mw = NULL;
    uint8_t *data[N];
    size_t bytes[N];
    uint64_t dims[N][2];
    snprintf(path, sizeof path, "%s/many.safetensors", tmp);
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &fw, &err));
    CHECK_OK(cairn_writer_open_memory(&st_mem, &mw, &err));
    uint64_t seed = 77;
    for (int i = 0; i < N; i++) {
        cairn_dtype dt = st_dtypes[(unsigned)(i * 7) % N_DTYPES];
        dims[i][0] = (uint64_t)(i % 5);
        dims[i][1] = (uint64_t)(i % 3 == 0 ? 40000 : i % 7 + 1);
        bytes[i] = (size_t)(dims[i][0] * dims[i][1] * cairn_dtype_size(dt));
        data[i] = malloc(bytes[i] ? bytes[i] : 1);
        tu_fill(data[i], bytes[i], dt, seed++);
        snprintf(name, sizeof name, "layer.%03d.%s", N - i, cairn_dtype_name(dt));
        CHECK_OK(cairn_writer_add(fw, name, dt, 2, dims[i], data[i], &err));
        CHECK_OK(cairn_writer_add(mw, name, dt, 2, dims[i], data[i], &err));
    }
    void *mem = NULL;
    size_t mem_len = 0, file_len = 0;
    CHECK_OK(cairn_writer_commit(fw, &err));
    CHECK_OK(cairn_writer_commit_memory(mw, &mem, &mem_len, &err));
    uint8_t *file = tu_read_whole(path, &file_len);
    CHECK(file && mem_len == file_len && memcmp(mem, file, mem_len) == 0);
    free(file);
    cairn_free(mem);

    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == N);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    uint64_t data_at = fi.file_size - fi.payload_bytes;
    CHECK(data_at % 8 == 0);
    for (int i = 0; f && i < N; i++) {
        cairn_dtype dt = st_dtypes[(unsigned)(i * 7) % N_DTYPES];
        cairn_tensor_info in;
        snprintf(name, sizeof name, "layer.%03d.%s", N - i, cairn_dtype_name(dt));
        uint64_t idx = 0;
        CHECK_OK(cairn_tensor_find(f, name, &idx, &in, &err));
        CHECK((in.offset - data_at) % cairn_dtype_size(dt) == 0);
        uint8_t *got = read_tensor(f, idx, &in, &err);
        CHECK(got && in.raw_size == bytes[i] && memcmp(got, data[i], bytes[i]) == 0);
        free(got);
        free(data[i]);
    }
    /* Index order is name order. */
    for (uint64_t i = 1; f && i < cairn_file_count(f); i++) {
        cairn_tensor_info a, b;
        cairn_tensor_info_at(f, i - 1, &a, NULL);
        cairn_tensor_info_at(f, i, &b, NULL);
        CHECK(strcmp(a.name, b.name) < 0);
    }
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);

    /* Nothing but the target is left in the directory (the spool is unlinked). */
    DIR *dp = opendir(tmp);
    struct dirent *de;
    int strays = 0;
    while (dp && (de = readdir(dp)))
        strays += strstr(de->d_name, "spool") != NULL || strstr(de->d_name, "cairn-tmp") != NULL;
    if (dp)
        closedir(dp);
    CHECK(strays == 0);
}

/* Big payloads added in reverse layout order, so commit copies several
 * separate spool regions (copy_file_range, or its read/write fallback). */
static void test_big_payloads(void)
{
    char path[4200];
    cairn_error err = {0};
    static const cairn_dtype dts[] = {CAIRN_U8, CAIRN_F16, CAIRN_F32, CAIRN_F64};
    static const char *names[] = {"a", "b", "c", "d"};
    uint8_t *data[4];
    uint64_t dims[4][1];
    cairn_writer *w = NULL;
    snprintf(path, sizeof path, "%s/big.safetensors", tmp);
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, &err));
    for (int i = 0; i < 4; i++) {
        dims[i][0] = (3u << 20) / cairn_dtype_size(dts[i]) + (uint64_t)i;
        size_t n = (size_t)(dims[i][0] * cairn_dtype_size(dts[i]));
        data[i] = malloc(n);
        tu_fill(data[i], n, dts[i], (uint64_t)i + 500);
        CHECK_OK(cairn_writer_add(w, names[i], dts[i], 1, dims[i], data[i], &err));
    }
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file *f = NULL;
    uint64_t prev = 0;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    for (int i = 3; f && i >= 0; i--) { /* F64 first ... U8 last */
        cairn_tensor_info in;
        uint64_t idx;
        CHECK_OK(cairn_tensor_find(f, names[i], &idx, &in, &err));
        CHECK(in.offset >= prev);
        prev = in.offset;
        const void *view = NULL;
        CHECK_OK(cairn_tensor_data(f, idx, &view, &err));
        CHECK(view && memcmp(view, data[i], (size_t)in.raw_size) == 0);
    }
    cairn_file_close(f);
    for (int i = 0; i < 4; i++)
        free(data[i]);
}

/* ------------------------------------------------- 2. writer specifics */

static void test_writer_bytes(void)
{
    /* The crate's own doc-test file, plus our 4 spaces of padding. */
    static const char want[] = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],"
                               "\"data_offsets\":[0,16]}}    ";
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[2] = {2, 2};
    int32_t data[4] = {1, -2, 3, -4};
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "test", CAIRN_I32, 2, dims, data, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    const uint8_t *p = mem;
    CHECK(len == 8 + 64 + 16);
    CHECK(p && p[0] == 64 && p[1] == 0 && p[7] == 0);
    CHECK(p && memcmp(p + 8, want, 64) == 0);
    CHECK(p && memcmp(p + 72, data, 16) == 0);
    cairn_free(mem);

    /* Layout: dtype alignment descending, then name; JSON in data order,
     * "__metadata__" first; escapes in names. */
    static const char want2[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"e\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
        "\"c\\\"q\\n\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
        "\"d\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[20,22]},"
        "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[22,25]}}";
    uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t one[2] = {1, 1}, three[1] = {3};
    cairn_value *tree = cairn_value_map();
    cairn_value_set(tree, "format", cairn_value_string("pt"), NULL);
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_U8, 1, three, bytes, &err));
    CHECK_OK(cairn_writer_add(w, "b", CAIRN_F64, 1, one, bytes, &err));
    CHECK_OK(cairn_writer_add(w, "c\"q\n", CAIRN_F32, 0, NULL, bytes, &err));
    CHECK_OK(cairn_writer_add(w, "d", CAIRN_BF16, 2, one, bytes, &err));
    CHECK_OK(cairn_writer_add(w, "e", CAIRN_I64, 1, one, bytes, &err));
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    cairn_value_free(tree);
    p = mem;
    size_t hlen = sizeof want2 - 1, padded = (hlen + 7) / 8 * 8;
    CHECK(p && len == 8 + padded + 25 && p[0] == (uint8_t)padded && p[1] == padded >> 8);
    CHECK(p && memcmp(p + 8, want2, hlen) == 0);
    for (size_t i = hlen; p && i < padded; i++)
        CHECK(p[8 + i] == ' ');
    cairn_free(mem);
}

static void test_writer_refusals(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[1] = {2};
    double two[4] = {1, 2, 3, 4};
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_ST(cairn_writer_add(w, "z", CAIRN_C128, 1, dims, two, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "'z'") && strstr(err.message, "C128"));
    cairn_writer_abort(w);

    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F64, 1, dims, two, &err));
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_F64, 1, dims, two, &err), CAIRN_E_EXISTS);
    cairn_writer_abort(w);

    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_ST(cairn_writer_add(w, "__metadata__", CAIRN_F64, 1, dims, two, &err),
             CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "reserved") != NULL);
    cairn_writer_abort(w);

    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F64, 1, dims, two, &err));
    CHECK_ST(cairn_writer_add_alias(w, "y", "x", &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "alias 'y'") != NULL);
    cairn_writer_abort(w);

    /* A tensor reference to a tensor that was never added. */
    cairn_value *tree = cairn_value_map();
    cairn_value_set(tree, "tied", cairn_value_tensor_ref("missing"), NULL);
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F64, 1, dims, two, &err));
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), CAIRN_E_NOT_FOUND);
    cairn_value_free(tree);

    /* A map that looks like the JSON view's own escape is refused. */
    static const char *escapes[] = {"$float", "$bytes", "$tensor"};
    for (int i = 0; i < 3; i++) {
        tree = cairn_value_map();
        cairn_value *inner = cairn_value_map();
        cairn_value_set(inner, escapes[i], cairn_value_string("nan"), NULL);
        cairn_value *list = cairn_value_list();
        cairn_value_append(list, inner, NULL);
        cairn_value_set(tree, "odd", list, NULL);
        CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
        CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
        CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, escapes[i]) != NULL);
        cairn_value_free(tree);
    }

    /* The extension picks the format; a failed commit leaves nothing. */
    char path[4200];
    snprintf(path, sizeof path, "%s/never.SafeTensors", tmp);
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    CHECK_ST(cairn_writer_add(w, "z", CAIRN_C128, 1, dims, two, &err), CAIRN_E_UNSUPPORTED);
    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_STATE);
    CHECK(access(path, F_OK) != 0);
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F64, 1, dims, two, &err));
    cairn_writer_abort(w);
    CHECK(access(path, F_OK) != 0);

    /* No tensors at all: "{}" and six spaces. */
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    CHECK(len == 16 && mem && memcmp((uint8_t *)mem + 8, "{}      ", 8) == 0);
    CHECK_OK(try_memory_opts(mem, len, NULL, &err));
    cairn_free(mem);
    CHECK(strcmp(cairn_format_name(CAIRN_FORMAT_SAFETENSORS), "safetensors") == 0);
}

/* ------------------------------------------------------- 3. metadata */

/* Writes one tensor "w" and `tree`, reads the tree back; returns the bytes. */
static uint8_t *meta_round_trip(const cairn_value *tree, cairn_value **back, size_t *len)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[1] = {2};
    float data[2] = {1.5f, -2.5f};
    void *mem = NULL;
    *back = NULL;
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "w", CAIRN_F32, 1, dims, data, &err));
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, len, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, *len, NULL, &f, &err));
    CHECK_OK(cairn_file_read_metadata(f, back, &err));
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.has_metadata == (cairn_value_count(tree) > 0));
    cairn_file_close(f);
    return mem;
}

static int header_has(const uint8_t *file, const char *needle)
{
    size_t n = (size_t)file[0] | (size_t)file[1] << 8 | (size_t)file[2] << 16;
    char *h = strndup((const char *)file + 8, n);
    int found = strstr(h, needle) != NULL;
    free(h);
    return found;
}

static void test_metadata(void)
{
    size_t len;
    cairn_value *back = NULL;
    /* Strings only: plain entries, no "cairn.meta", order kept. */
    cairn_value *tree = cairn_value_map();
    cairn_value_set(tree, "format", cairn_value_string("pt"), NULL);
    cairn_value_set(tree, "zeta", cairn_value_string("\xc3\xbcnicode \"q\" \\ \t"), NULL);
    cairn_value_set(tree, "alpha", cairn_value_string_n("nul\0byte", 8), NULL);
    cairn_value_set(tree, "empty", cairn_value_string(""), NULL);
    uint8_t *file = meta_round_trip(tree, &back, &len);
    CHECK(back && same_tree(tree, back));
    CHECK(file && !header_has(file, "cairn.meta"));
    CHECK(file && header_has(file, "\"alpha\":\"nul\\u0000byte\""));
    cairn_value_free(back);
    cairn_free(file);

    /* A user key named like the reserved one survives too. */
    cairn_value_set(tree, "cairn.meta", cairn_value_string("mine"), NULL);
    file = meta_round_trip(tree, &back, &len);
    CHECK(back && same_tree(tree, back));
    cairn_value_free(back);
    cairn_free(file);
    cairn_value_free(tree);

    /* A full tree through "cairn.meta"; top-level strings stay visible. */
    tree = cairn_value_map();
    cairn_value_set(tree, "format", cairn_value_string("pt"), NULL);
    cairn_value_set(tree, "epoch", cairn_value_int(-9007199254740993ll), NULL);
    cairn_value_set(tree, "lr", cairn_value_float(0.1), NULL);
    cairn_value_set(tree, "one", cairn_value_float(1.0), NULL);
    cairn_value_set(tree, "nan", cairn_value_float(NAN), NULL);
    uint64_t bits = 0x7FF0000000000123ull;
    double odd_nan;
    memcpy(&odd_nan, &bits, 8);
    cairn_value_set(tree, "odd_nan", cairn_value_float(odd_nan), NULL);
    cairn_value_set(tree, "neg0", cairn_value_float(-0.0), NULL);
    cairn_value_set(tree, "inf", cairn_value_float(-INFINITY), NULL);
    cairn_value_set(tree, "ok", cairn_value_bool(1), NULL);
    cairn_value_set(tree, "none", cairn_value_null(), NULL);
    cairn_value_set(tree, "blob", cairn_value_bytes("\x00\x01\xfe\xff\x10", 5), NULL);
    cairn_value_set(tree, "blob1", cairn_value_bytes("\xff", 1), NULL);
    cairn_value_set(tree, "blob0", cairn_value_bytes("", 0), NULL);
    cairn_value_set(tree, "tied", cairn_value_tensor_ref("w"), NULL);
    cairn_value *list = cairn_value_list(), *inner = cairn_value_map();
    cairn_value_append(list, cairn_value_int(1), NULL);
    cairn_value_append(list, cairn_value_string("two"), NULL);
    cairn_value_set(inner, "$float", cairn_value_int(3), NULL); /* not a string: a map */
    cairn_value_set(inner, "deep", cairn_value_list(), NULL);
    cairn_value_append(list, inner, NULL);
    cairn_value_set(tree, "list", list, NULL);
    cairn_value *one_key = cairn_value_map();
    cairn_value_set(one_key, "$float", cairn_value_int(3), NULL);
    cairn_value_set(tree, "one_key", one_key, NULL);
    cairn_value_set(tree, "empty_map", cairn_value_map(), NULL);
    file = meta_round_trip(tree, &back, &len);
    CHECK(back && same_tree(tree, back));
    const cairn_value *v = back ? cairn_value_get(back, "odd_nan") : NULL;
    double d = 0;
    CHECK(v && cairn_value_get_float(v, &d) == CAIRN_OK && memcmp(&d, &bits, 8) == 0);
    v = back ? cairn_value_get(back, "one") : NULL;
    CHECK(v && cairn_value_get_type(v) == CAIRN_VALUE_FLOAT);
    CHECK(file && header_has(file, "\"format\":\"pt\",\"cairn.meta\":\"{"));
    cairn_value_free(back);

    /* Another tool edits a plain entry: the stale tree gives way to the
     * plain strings. */
    uint8_t *edited = malloc(len);
    memcpy(edited, file, len);
    char *at = memmem(edited, len, "\"format\":\"pt\"", 13);
    CHECK(at != NULL);
    if (at)
        memcpy(at, "\"format\":\"np\"", 13);
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_OK(cairn_file_open_memory(edited, len, NULL, &f, &err));
    CHECK_OK(cairn_file_read_metadata(f, &back, &err));
    CHECK(back && cairn_value_count(back) == 2);
    v = back ? cairn_value_get(back, "format") : NULL;
    const void *s = NULL;
    size_t slen = 0;
    CHECK(v && cairn_value_get_data(v, &s, &slen) == CAIRN_OK && slen == 2 && !memcmp(s, "np", 2));
    CHECK(back && cairn_value_get_type(cairn_value_get(back, "cairn.meta")) == CAIRN_VALUE_STRING);
    cairn_value_free(back);
    cairn_file_close(f);
    free(edited);
    cairn_free(file);
    cairn_value_free(tree);
}

/* Hand-written "cairn.meta" values: what restores, what falls back. */
static void test_metadata_reading(void)
{
    static const struct { const char *meta; int restored; } cases[] = {
        {"{\"cairn.meta\":\"{\\\"a\\\":1}\"}", 1},
        {"{\"cairn.meta\":\"{\\\"a\\\":1}\",\"x\":\"y\"}", 0},          /* x not in the tree */
        {"{\"x\":\"y\",\"cairn.meta\":\"{\\\"x\\\":\\\"y\\\",\\\"n\\\":null}\"}", 1},
        {"{\"cairn.meta\":\"[1]\"}", 0},
        {"{\"cairn.meta\":\"{\\\"a\\\":1} x\"}", 0},
        {"{\"cairn.meta\":\"{\\\"a\\\":1,\\\"a\\\":2}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"\\\":1}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"f\\\":{\\\"$float\\\":\\\"nan:0x7ff0000000000000\\\"}}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"f\\\":{\\\"$float\\\":\\\"nan:0x7ff0000000000001\\\"}}\"}", 1},
        {"{\"cairn.meta\":\"{\\\"f\\\":{\\\"$float\\\":\\\"NaN\\\"}}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"b\\\":{\\\"$bytes\\\":\\\"AAE=\\\"}}\"}", 1},
        {"{\"cairn.meta\":\"{\\\"b\\\":{\\\"$bytes\\\":\\\"AAF=\\\"}}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"b\\\":{\\\"$bytes\\\":\\\"AA=E\\\"}}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"b\\\":{\\\"$bytes\\\":\\\"A\\\"}}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"t\\\":{\\\"$tensor\\\":\\\"w\\\"}}\"}", 1},
        {"{\"cairn.meta\":\"{\\\"t\\\":{\\\"$tensor\\\":\\\"nope\\\"}}\"}", 0},
        {"{\"cairn.meta\":\"{\\\"i\\\":99999999999999999999}\"}", 0},
        {"{\"cairn.meta\":\"\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char header[1024];
        snprintf(header, sizeof header, "{\"__metadata__\":%s,\"w\":{\"dtype\":\"U8\",\"shape\":"
                 "[1],\"data_offsets\":[0,1]}}", cases[i].meta);
        size_t n;
        uint8_t *b = make_st(header, 1, &n);
        cairn_file *f = NULL;
        cairn_value *meta = NULL;
        cairn_error err = {0};
        CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
        CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
        int restored = meta && cairn_value_get(meta, "cairn.meta") == NULL;
        CHECK(restored == cases[i].restored);
        if (restored != cases[i].restored)
            fprintf(stderr, "  metadata case %zu: %s\n", i, cases[i].meta);
        cairn_value_free(meta);
        cairn_file_close(f);
        free(b);
    }
    /* An empty key cannot be a cairn map key: the tensors still read. */
    size_t n;
    uint8_t *b = make_st("{\"__metadata__\":{\"\":\"v\"},\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                         "\"data_offsets\":[0,1]}}", 1, &n);
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    cairn_error err = {0};
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    CHECK_ST(cairn_file_read_metadata(f, &meta, &err), CAIRN_E_UNSUPPORTED);
    CHECK(meta == NULL);
    uint8_t one = 0;
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_U8, &one, 1, 0, &err));
    cairn_file_close(f);
    free(b);
}

/* ------------------------------------------- 4. native <-> safetensors */

/* Copies every tensor (index order) and the metadata of `src` into `w`. */
static void copy_archive(cairn_file *src, cairn_writer *w)
{
    cairn_error err = {0};
    for (uint64_t i = 0; i < cairn_file_count(src); i++) {
        cairn_tensor_info in;
        uint8_t *data = read_tensor(src, i, &in, &err);
        CHECK(data != NULL);
        CHECK_OK(cairn_writer_add(w, in.name, in.dtype, in.rank, in.dims, data, &err));
        free(data);
    }
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(src, &meta, &err));
    if (meta)
        CHECK_OK(cairn_writer_set_metadata(w, meta, &err));
    cairn_value_free(meta);
}

/* Opens `from` and copies it into a new file `to` (format by extension). */
static void convert(const char *from, const char *to)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_writer *w = NULL;
    CHECK_OK(cairn_file_open(from, NULL, &f, &err));
    CHECK_OK(cairn_writer_open_path(to, &no_sync, &w, &err));
    if (f && w)
        copy_archive(f, w);
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file_close(f);
}

/* Every tensor of `a` is in `b` with the same dtype, shape and bytes. */
static void same_tensors(const char *a, const char *b)
{
    cairn_error err = {0};
    cairn_file *fa = NULL, *fb = NULL;
    CHECK_OK(cairn_file_open(a, NULL, &fa, &err));
    CHECK_OK(cairn_file_open(b, NULL, &fb, &err));
    CHECK(fa && fb && cairn_file_count(fa) == cairn_file_count(fb));
    for (uint64_t i = 0; fa && fb && i < cairn_file_count(fa); i++) {
        cairn_tensor_info ia, ib;
        uint64_t j = 0;
        uint8_t *da = read_tensor(fa, i, &ia, &err);
        CHECK_OK(cairn_tensor_find(fb, ia.name, &j, NULL, &err));
        uint8_t *db = read_tensor(fb, j, &ib, &err);
        CHECK(da && db && ia.dtype == ib.dtype && ia.rank == ib.rank);
        CHECK(memcmp(ia.dims, ib.dims, sizeof ia.dims) == 0 && ia.raw_size == ib.raw_size);
        CHECK(da && db && memcmp(da, db, (size_t)ia.raw_size) == 0);
        free(da);
        free(db);
    }
    cairn_value *ma = NULL, *mb = NULL;
    CHECK_OK(cairn_file_read_metadata(fa, &ma, &err));
    CHECK_OK(cairn_file_read_metadata(fb, &mb, &err));
    CHECK(ma && mb && same_tree(ma, mb));
    cairn_value_free(ma);
    cairn_value_free(mb);
    cairn_file_close(fa);
    cairn_file_close(fb);
}

static void test_native_conversion(void)
{
    char native1[4200], native1b[4200], st[4200], native2[4200];
    snprintf(native1, sizeof native1, "%s/orig.cairn", tmp);
    snprintf(native1b, sizeof native1b, "%s/orig_copy.cairn", tmp);
    snprintf(st, sizeof st, "%s/conv.safetensors", tmp);
    snprintf(native2, sizeof native2, "%s/back.cairn", tmp);
    cairn_error err = {0};
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_path(native1, &no_sync, &w, &err));
    uint64_t seed = 4242;
    char name[64];
    for (size_t d = 0; d < N_DTYPES; d++) {
        uint64_t dims[3] = {d % 3, 5, d + 1};
        uint32_t rank = d % 4 == 3 ? 0 : 3;
        size_t bytes = (size_t)(tu_elem_count(rank, dims) * cairn_dtype_size(st_dtypes[d]));
        uint8_t *data = malloc(bytes ? bytes : 1);
        tu_fill(data, bytes, st_dtypes[d], seed++);
        snprintf(name, sizeof name, "model.%s.weight", cairn_dtype_name(st_dtypes[d]));
        CHECK_OK(cairn_writer_add(w, name, st_dtypes[d], rank, dims, data, &err));
        free(data);
    }
    cairn_value *tree = cairn_value_map();
    cairn_value_set(tree, "arch", cairn_value_string("llama"), NULL);
    cairn_value_set(tree, "layers", cairn_value_int(32), NULL);
    cairn_value_set(tree, "embed", cairn_value_tensor_ref("model.F32.weight"), NULL);
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    cairn_value_free(tree);
    CHECK_OK(cairn_writer_commit(w, &err));

    convert(native1, st);
    convert(st, native2);
    same_tensors(native1, st);
    same_tensors(native1, native2);
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(st, NULL, &f, &err));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_SAFETENSORS && fi.tensor_count == N_DTYPES && fi.has_metadata);
    cairn_file_close(f);

    /* A direct native copy and the copy through safetensors add the same
     * tensors in the same (index) order with the same tree: identical bytes. */
    convert(native1, native1b);
    size_t n1 = 0, n2 = 0;
    uint8_t *a = tu_read_whole(native1b, &n1), *b = tu_read_whole(native2, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
}

/* ------------------------------------------------------ 5. Python checks */

/* An independent reader (stdlib + numpy) written from the spec, checking
 * a cairn-written file against values it computes itself. */
static const char check_py[] =
    "import sys, json, struct, numpy as np\n"
    "path = sys.argv[1]\n"
    "b = open(path, 'rb').read()\n"
    "n = struct.unpack('<Q', b[:8])[0]\n"
    "assert n % 8 == 0 and n <= 100_000_000 and 8 + n <= len(b), n\n"
    "text = b[8:8 + n].decode('utf-8')\n"
    "assert text.startswith('{') and text.rstrip(' ').endswith('}')\n"
    "keys = []\n"
    "def hook(pairs):\n"
    "    ks = [k for k, _ in pairs]\n"
    "    assert len(ks) == len(set(ks)), 'duplicate keys'\n"
    "    keys.append(ks)\n"
    "    return dict(pairs)\n"
    "h = json.loads(text, object_pairs_hook=hook)\n"
    "assert list(h)[0] == '__metadata__', list(h)\n"
    "data = b[8 + n:]\n"
    "spans = sorted((tuple(v['data_offsets']), k) for k, v in h.items() if k != '__metadata__')\n"
    "at = 0\n"
    "for (s, e), k in spans:\n"
    "    assert s == at, (k, s, at)\n"
    "    at = e\n"
    "assert at == len(data), (at, len(data))\n"
    "order = [k for _, k in spans]\n"
    "assert order == [k for k in h if k != '__metadata__'], 'JSON order is not data order'\n"
    "np_dt = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I8': 'i1', 'I16': '<i2', 'I32': '<i4',\n"
    "         'I64': '<i8', 'U8': 'u1', 'U16': '<u2', 'U32': '<u4', 'U64': '<u8', 'BOOL': '?',\n"
    "         'C64': '<c8', 'BF16': '<u2', 'F8_E4M3': 'u1', 'F8_E5M2': 'u1'}\n"
    "def get(k):\n"
    "    v = h[k]\n"
    "    s, e = v['data_offsets']\n"
    "    a = np.frombuffer(data[s:e], dtype=np_dt[v['dtype']])\n"
    "    assert a.nbytes == e - s\n"
    "    return v['dtype'], a.reshape(v['shape'])\n"
    "def e4m3(x):\n"
    "    s = -1.0 if x & 0x80 else 1.0\n"
    "    e, m = (x >> 3) & 15, x & 7\n"
    "    return s * (m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))\n"
    "bad = []\n"
    "def expect(k, dt, want):\n"
    "    got_dt, got = get(k)\n"
    "    if got_dt != dt or got.shape != want.shape or not np.array_equal(got, want):\n"
    "        bad.append((k, got_dt, got, want))\n"
    "i = np.arange(12)\n"
    "expect('f32', 'F32', (i * 0.5 - 3).astype('<f4').reshape(3, 4))\n"
    "expect('f64', 'F64', np.arange(5) / 3.0)\n"
    "expect('i64', 'I64', ((np.arange(6) - 3) * 1000000000007).reshape(2, 3))\n"
    "expect('u8', 'U8', (np.arange(10) * 25).astype('u1'))\n"
    "expect('bool', 'BOOL', np.arange(4) % 2 == 1)\n"
    "expect('f16', 'F16', np.array([1.0, -2.5, 0.0, 65504], '<f2'))\n"
    "bf = get('bf16')[1].astype('<u4') << 16\n"
    "if not np.array_equal(bf.view('<f4'), np.array([1.0, -2.0, 3.140625], '<f4')):\n"
    "    bad.append('bf16')\n"
    "expect('c64', 'C64', np.array([1 + 2j, -3.5 + 0.25j], '<c8'))\n"
    "expect('scalar', 'I32', np.array(-7, '<i4'))\n"
    "expect('empty', 'F32', np.zeros((0, 3), '<f4'))\n"
    "if [e4m3(int(x)) for x in get('f8')[1]] != [1.0, -1.0, 448.0, 2.0 ** -9]: bad.append('f8')\n"
    "expect('u64', 'U64', np.array([2**64 - 1, 0], '<u8'))\n"
    "m = h['__metadata__']\n"
    "assert m['format'] == 'pt' and m['note'] == '\\u00fcnicode', m\n"
    "tree = json.loads(m['cairn.meta'])\n"
    "assert tree == {'format': 'pt', 'note': '\\u00fcnicode', 'epoch': 7, 'lr': 0.25,\n"
    "                'sizes': [1, 2, 3]}, tree\n"
    "if bad:\n"
    "    print('python reader: bad', bad)\n"
    "    sys.exit(1)\n"
    "print('python reader: %d tensors checked' % len(order))\n";

/* Files built per the spec by Python (not by any safetensors library), with
 * what a writer may do that ours does not: unsorted keys, data out of key
 * order, leading whitespace, no padding, metadata not first. */
static const char gen_py[] =
    "import sys, json, struct, numpy as np\n"
    "out = sys.argv[1]\n"
    "man = open(out + '/py_manifest.txt', 'w')\n"
    "def bf16(a):\n"
    "    u = np.asarray(a, '<f4').view('<u4').astype('<u8')\n"
    "    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype('<u2')\n"
    "def build(name, tensors, data_order, meta=None, lead=b'', pad=True, meta_pos=0):\n"
    "    items, blobs, at = {}, {}, 0\n"
    "    for k in data_order:\n"
    "        dt, shape, raw = tensors[k]\n"
    "        items[k] = {'data_offsets': [at, at + len(raw)], 'shape': list(shape), 'dtype': dt}\n"
    "        at += len(raw)\n"
    "    keys = list(tensors)\n"
    "    h = {}\n"
    "    for j, k in enumerate(keys):\n"
    "        if meta is not None and j == meta_pos: h['__metadata__'] = meta\n"
    "        h[k] = items[k]\n"
    "    if meta is not None and meta_pos >= len(keys): h['__metadata__'] = meta\n"
    "    text = lead + json.dumps(h, separators=(', ', ': ')).encode()\n"
    "    if pad: text += b' ' * (-(8 + len(text)) % 8)\n"
    "    with open(out + '/' + name + '.safetensors', 'wb') as f:\n"
    "        f.write(struct.pack('<Q', len(text)) + text)\n"
    "        for k in data_order: f.write(tensors[k][2])\n"
    "    for k in keys:\n"
    "        dt, shape, raw = tensors[k]\n"
    "        open('%s/%s.%s.bin' % (out, name, k), 'wb').write(raw)\n"
    "        dims = ' '.join(map(str, shape))\n"
    "        man.write('%s %s %s %d %s\\n' % (name, k, dt, len(shape), dims))\n"
    "vals = np.array([1.0, -2.0, 3.14159, 1e-3, -65504.0, 3.0e38], '<f4')\n"
    "as_f32 = (bf16(vals).astype('<u4') << 16).view('<f4')\n"
    "open(out + '/bf16_as_f32.bin', 'wb').write(as_f32.tobytes())\n"
    "rng = np.random.default_rng(7)\n"
    "t = {\n"
    "  'zz.last': ('F16', (2, 3), np.arange(6, dtype='<f2').tobytes()),\n"
    "  'bf': ('BF16', (2, 3), bf16(vals).tobytes()),\n"
    "  'a.first': ('I64', (4,), rng.integers(-2**62, 2**62, 4, dtype='<i8').tobytes()),\n"
    "  'mid': ('U8', (0, 5), b''),\n"
    "  'flag': ('BOOL', (3,), bytes([1, 0, 1])),\n"
    "  'pi': ('F64', (), struct.pack('<d', 3.141592653589793)),\n"
    "  'c': ('C64', (1,), np.array([2 - 1j], '<c8').tobytes()),\n"
    "}\n"
    "build('py_lead', t, ['pi', 'mid', 'bf', 'zz.last', 'flag', 'a.first', 'c'],\n"
    "      meta={'format': 'np', 'who': 'python'}, lead=b'   \\n\\t', meta_pos=3)\n"
    "build('py_nopad', t, list(reversed(list(t))), pad=False, meta={'k': 'v'}, meta_pos=99)\n"
    "build('py_single', {'x': ('F32', (1, 1), struct.pack('<f', 0.5))}, ['x'])\n"
    "build('py_empty', {}, [])\n";

/* The known-value file the Python reader checks. */
static void write_known(const char *path)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    float f32[12];
    for (int i = 0; i < 12; i++)
        f32[i] = (float)(i * 0.5 - 3);
    double f64[5];
    for (int i = 0; i < 5; i++)
        f64[i] = i / 3.0;
    int64_t i64[6];
    for (int i = 0; i < 6; i++)
        i64[i] = (i - 3) * 1000000000007ll;
    uint8_t u8[10], bools[4] = {0, 1, 0, 1}, f8[4] = {0x38, 0xB8, 0x7E, 0x01};
    for (int i = 0; i < 10; i++)
        u8[i] = (uint8_t)(i * 25);
    uint16_t f16[4] = {0x3C00, 0xC100, 0x0000, 0x7BFF}, bf16[3] = {0x3F80, 0xC000, 0x4049};
    float c64[4] = {1, 2, -3.5f, 0.25f};
    int32_t scalar = -7;
    uint64_t u64[2] = {UINT64_MAX, 0};
    uint64_t d34[2] = {3, 4}, d5[1] = {5}, d23[2] = {2, 3}, d10[1] = {10}, d4[1] = {4},
             d3[1] = {3}, d2[1] = {2}, d03[2] = {0, 3};
    CHECK_OK(cairn_writer_add(w, "f32", CAIRN_F32, 2, d34, f32, &err));
    CHECK_OK(cairn_writer_add(w, "f64", CAIRN_F64, 1, d5, f64, &err));
    CHECK_OK(cairn_writer_add(w, "i64", CAIRN_I64, 2, d23, i64, &err));
    CHECK_OK(cairn_writer_add(w, "u8", CAIRN_U8, 1, d10, u8, &err));
    CHECK_OK(cairn_writer_add(w, "bool", CAIRN_BOOL, 1, d4, bools, &err));
    CHECK_OK(cairn_writer_add(w, "f16", CAIRN_F16, 1, d4, f16, &err));
    CHECK_OK(cairn_writer_add(w, "bf16", CAIRN_BF16, 1, d3, bf16, &err));
    CHECK_OK(cairn_writer_add(w, "c64", CAIRN_C64, 1, d2, c64, &err));
    CHECK_OK(cairn_writer_add(w, "scalar", CAIRN_I32, 0, NULL, &scalar, &err));
    CHECK_OK(cairn_writer_add(w, "empty", CAIRN_F32, 2, d03, NULL, &err));
    CHECK_OK(cairn_writer_add(w, "f8", CAIRN_F8_E4M3, 1, d4, f8, &err));
    CHECK_OK(cairn_writer_add(w, "u64", CAIRN_U64, 1, d2, u64, &err));
    cairn_value *tree = cairn_value_map(), *sizes = cairn_value_list();
    cairn_value_set(tree, "format", cairn_value_string("pt"), NULL);
    cairn_value_set(tree, "note", cairn_value_string("\xc3\xbcnicode"), NULL);
    cairn_value_set(tree, "epoch", cairn_value_int(7), NULL);
    cairn_value_set(tree, "lr", cairn_value_float(0.25), NULL);
    for (int i = 1; i <= 3; i++)
        cairn_value_append(sizes, cairn_value_int(i), NULL);
    cairn_value_set(tree, "sizes", sizes, NULL);
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    cairn_value_free(tree);
    CHECK_OK(cairn_writer_commit(w, &err));
}

/* One line of the Python writer's manifest (ctx: the directory); counts the
 * tensor. */
static int check_python_file(void *ctx, char *line)
{
    const char *dir = ctx;
    char file[128], name[128], dtname[16], path[4700];
    unsigned rank;
    uint64_t dims[CAIRN_MAX_RANK] = {0};
    int used = 0;
    if (sscanf(line, "%127s %127s %15s %u%n", file, name, dtname, &rank, &used) != 4 ||
        rank > CAIRN_MAX_RANK) {
        CHECK(!"bad manifest line");
        return 1;
    }
    const char *p = line + used;
    for (unsigned d = 0; d < rank; d++) {
        int n = 0;
        sscanf(p, "%" SCNu64 "%n", &dims[d], &n);
        p += n;
    }
    size_t want_len = 0;
    snprintf(path, sizeof path, "%s/%s.%s.bin", dir, file, name);
    uint8_t *want = tu_read_whole(path, &want_len);
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, file);
    cairn_error err = {0};
    for (int pass = 0; pass < 2; pass++) {
        cairn_file *f = NULL;
        cairn_tensor_info in;
        uint64_t idx = 0;
        cairn_status st = cairn_file_open(path, pass ? &no_mmap : NULL, &f, &err);
        if (st == CAIRN_OK)
            st = cairn_tensor_find(f, name, &idx, NULL, &err);
        CHECK_OK(st);
        if (st != CAIRN_OK) {
            fprintf(stderr, "  %s/%s: %s\n", file, name, err.message);
            cairn_file_close(f);
            break;
        }
        uint8_t *got = read_tensor(f, idx, &in, &err);
        CHECK(in.dtype == cairn_dtype_from_name(dtname) && in.rank == rank);
        CHECK(memcmp(in.dims, dims, sizeof dims) == 0);
        CHECK(got && want && in.raw_size == want_len && memcmp(got, want, want_len) == 0);
        CHECK(in.zero_copy == !pass);
        if (in.dtype == CAIRN_BF16) { /* BF16 -> F32 matches numpy's reading of the bits */
            size_t fl = 0;
            snprintf(path, sizeof path, "%s/bf16_as_f32.bin", dir);
            uint8_t *f32 = tu_read_whole(path, &fl);
            float conv[6];
            CHECK(fl == sizeof conv);
            CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F32, conv, sizeof conv, 0, &err));
            CHECK(f32 && memcmp(conv, f32, sizeof conv) == 0);
            free(f32);
            snprintf(path, sizeof path, "%s/%s.safetensors", dir, file);
        }
        CHECK_OK(cairn_file_verify(f, &err));
        free(got);
        cairn_file_close(f);
    }
    free(want);
    return 1;
}

static void check_python_metadata(const char *dir)
{
    static const struct { const char *file; const char *json; } cases[] = {
        {"py_lead", "{\"format\":\"np\",\"who\":\"python\"}"},
        {"py_nopad", "{\"k\":\"v\"}"},
        {"py_single", "{}"},
        {"py_empty", "{}"},
    };
    for (size_t i = 0; i < 4; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, cases[i].file);
        cairn_file *f = NULL;
        cairn_value *meta = NULL;
        cairn_error err = {0};
        CHECK_OK(cairn_file_open(path, NULL, &f, &err));
        CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
        char *js = meta ? json_of(meta) : NULL;
        CHECK(js && strcmp(js, cases[i].json) == 0);
        cairn_free(js);
        cairn_value_free(meta);
        cairn_file_close(f);
    }
}

static void test_python(void)
{
    char dir[4200], gen[4300], chk[4300], path[4400];
    if (!tu_python_imports("numpy", "Python cross-checks"))
        return;
    snprintf(dir, sizeof dir, "%s/python", tmp);
    mkdir(dir, 0777);
    snprintf(gen, sizeof gen, "%s/gen.py", dir);
    snprintf(chk, sizeof chk, "%s/check.py", dir);
    CHECK(tu_write_file(gen, gen_py, sizeof gen_py - 1) == 0);
    CHECK(tu_write_file(chk, check_py, sizeof check_py - 1) == 0);

    snprintf(path, sizeof path, "%s/known.safetensors", dir);
    write_known(path);
    CHECK(tu_run_python(chk, path, NULL) == 0);

    CHECK(tu_run_python(gen, dir, NULL) == 0);
    int tensors = tu_each_line(tu_path(dir, "py_manifest.txt"), check_python_file, dir);
    CHECK(tensors >= 0); /* the manifest exists */
    CHECK(tensors == 15);
    fprintf(stderr, "cairn checked %d tensors of Python-built files\n", tensors);
    check_python_metadata(dir);
}

/* ------------------------------------------------------- 6. the corpus */

static void check_corpus_tensor(cairn_file *f, const char *name, json_t *t)
{
    cairn_error err = {0};
    cairn_tensor_info in;
    uint64_t idx = 0;
    CHECK_OK(cairn_tensor_find(f, name, &idx, NULL, &err));
    uint8_t *got = read_tensor(f, idx, &in, &err);
    CHECK(got != NULL);
    if (!got)
        return;
    tu_check_expected_tensor(tmp, name, &in, got, t);
    free(got);
}

/* One corpus file and what its .expect.json says of it; counts it. */
static int check_corpus_file(void *ctx, const char *path, json_t *root)
{
    (void)ctx;
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s: %s\n", path, err.message);
        return 1;
    }
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_SAFETENSORS);
    CHECK(fi.tensor_count == (uint64_t)json_integer_value(json_object_get(root, "tensor_count")));
    CHECK(fi.payload_bytes == (uint64_t)json_integer_value(json_object_get(root, "data_len")));
    const char *key;
    json_t *t;
    json_object_foreach(json_object_get(root, "tensors"), key, t)
        check_corpus_tensor(f, key, t);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    json_t *kv = json_object_get(root, "kv");
    CHECK(meta && cairn_value_count(meta) == json_object_size(kv));
    json_t *e;
    json_object_foreach(kv, key, e) {
        const cairn_value *v = meta ? cairn_value_get(meta, key) : NULL;
        const void *s = NULL;
        size_t len = 0;
        const char *want = json_string_value(json_object_get(e, "value"));
        CHECK(v && cairn_value_get_data(v, &s, &len) == CAIRN_OK && want &&
              len == strlen(want) && memcmp(s, want, len) == 0);
    }
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    return 1;
}

static void test_corpus(void)
{
    char dir[4200];
    if (!tu_vectors_dir("safetensors", dir, sizeof dir)) {
        fprintf(stderr, "vectors absent: corpus skipped\n");
        return;
    }
    int files = tu_each_expect(dir, "", ".safetensors.expect.json", check_corpus_file, NULL);
    fprintf(stderr, "corpus: %d safetensors files read\n", files);
    CHECK(files >= 6);
}

/* ------------------------------------------------------ 7. hostile input */

typedef struct header_case {
    const char *header;
    size_t data;
    cairn_status want;
} header_case;

#define T(dt, shape, b, e) \
    "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

static const header_case header_cases[] = {
    /* accepted */
    {"{\"a\":" T("F32", "[2]", "0", "8") "}", 8, CAIRN_OK},
    {" \t\r\n{\"a\":" T("F32", "[2]", "0", "8") "}", 8, CAIRN_OK},
    {"{\"a\":" T("F32", "[2]", "0", "8") "}   \n ", 8, CAIRN_OK},
    {"{ \"a\" : { \"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ], \"dtype\" : \"F32\" } }", 8,
     CAIRN_OK},
    {"{}", 0, CAIRN_OK},
    /* serde reads null into the reference's Option: no metadata */
    {"{\"__metadata__\":null,\"a\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_OK},
    {"{\"__metadata__\":{}}", 0, CAIRN_OK},
    {"{\"__metadata__\":{\"k\":\"v\"},\"a\":" T("U8", "[]", "0", "1") "}", 1, CAIRN_OK},
    {"{\"a\":" T("U8", "[0]", "0", "0") ",\"b\":" T("U8", "[2]", "0", "2") "}", 2, CAIRN_OK},
    {"{\"b\":" T("U8", "[2]", "0", "2") ",\"a\":" T("U8", "[0]", "2", "2") "}", 2, CAIRN_OK},
    {"{\"a\":" T("F32", "[0,9223372036854775807]", "0", "0") "}", 0, CAIRN_OK},
    {"{\"a\":" T("F32", "[1,1,1,1,1,1,1,1]", "0", "4") "}", 4, CAIRN_OK},
    {"{\"\\u00e9\\u4e2d\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_OK},
    {"{\"b\":" T("U8", "[1]", "1", "2") ",\"a\":" T("U8", "[1]", "0", "1") "}", 2, CAIRN_OK},
    {"{\"a\":" T("C64", "[1]", "0", "8") ",\"__metadata__\":{\"x\":\"\\u0000\"}}", 8, CAIRN_OK},
    /* invalid JSON and structure */
    {"", 0, CAIRN_E_CORRUPT},
    {"{\"a\":", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") "} x", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") "}{}", 8, CAIRN_E_CORRUPT},
    {"[]", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") ",}", 8, CAIRN_E_CORRUPT},
    {"{'a':1}", 0, CAIRN_E_CORRUPT},
    {"{\"a\xff\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1]", "0", "1") ",\"a\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     CAIRN_E_CORRUPT},
    {"{\"a\":1}", 0, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "1", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    /* offsets and layout */
    {"{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "4", "12") "}", 12,
     CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "0", "8") "}", 8,
     CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "12", "20") "}", 20,
     CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") "}", 12, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8") "}", 4, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "4", "12") "}", 12, CAIRN_E_CORRUPT},
    {"{}", 4, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "8", "0") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "-8", "0") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "8.0") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2]", "0", "18446744073709551616") "}", 8, CAIRN_E_CORRUPT},
    /* shapes and sizes */
    {"{\"a\":" T("F32", "[3]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[-2]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[2.0]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[\"2\"]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[null]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[[2]]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[4294967296,4294967296,4]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[4611686018427387904,4]", "0", "0") "}", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[18446744073709551615]", "0", "8") "}", 8, CAIRN_E_CORRUPT},
    {"{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "0", "4") "}", 4, CAIRN_E_LIMIT},
    {"{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,0,0]", "0", "0") "}", 0, CAIRN_E_LIMIT},
    /* dtypes */
    {"{\"a\":" T("F4", "[2]", "0", "1") "}", 1, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("F6_E2M3", "[4]", "0", "3") "}", 3, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("F8_E8M0", "[1]", "0", "1") "}", 1, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("F8_E4M3FNUZ", "[1]", "0", "1") "}", 1, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("U1", "[8]", "0", "1") "}", 1, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("C128", "[1]", "0", "16") "}", 16, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("f32", "[1]", "0", "4") "}", 4, CAIRN_E_UNSUPPORTED},
    {"{\"a\":" T("F32\\u0000", "[1]", "0", "4") "}", 4, CAIRN_E_UNSUPPORTED},
    /* names */
    {"{\"\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_UNSUPPORTED},
    {"{\"a\\u0000b\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    /* __metadata__ */
    {"{\"__metadata__\":{\"epoch\":7}}", 0, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{\"cfg\":{\"a\":\"b\"}}}", 0, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{\"ok\":\"x\",\"n\":null}}", 0, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":\"text\"}", 0, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":[]}", 0, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, CAIRN_E_CORRUPT},
    /* rules the JSON parser (simdjson) leaves to the reader */
    {"{\"a\\u0000\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"\\u0000\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"data_offsets\":[0,1]}}",
     1, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{\"k\":\"v\",\"j\":\"x\",\"k\":\"v\"},\"a\":" T("U8", "[1]", "0", "1")
     "}", 1, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{\"k\\u0000\":\"v\"}}", 0, CAIRN_E_CORRUPT},
    {"{\"b\":" T("U8", "[1]", "0", "1") ",\"a\":" T("U8", "[0]", "1", "1") ",\"b\":"
     T("U8", "[0]", "1", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1.0]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1e3]", "0", "1000") "}", 1000, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1E0]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[-0]", "0", "0") "}", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[0]", "-0", "0") "}", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1]", "0", "1.0") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1]", "0", "1e0") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[18446744073709551616]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[9223372036854775808]", "0", "0") "}", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[0]", "0", "9223372036854775808") "}", 0, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1]", "0", "100000000000000000000000") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\xc3\x28\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\xed\xa0\x80\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"__metadata__\":{\"k\":\"\xf8\x88\x80\x80\x80\"}}", 0, CAIRN_E_CORRUPT},
    {"{\"a\\ud800\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":" T("U8", "[1]", "0", "1") "}\x0b", 1, CAIRN_E_CORRUPT},
    {"\xef\xbb\xbf{\"a\":" T("U8", "[1]", "0", "1") "}", 1, CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]],\"data_offsets\":[0,1]}}", 1,
     CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[{\"x\":[1]}],\"data_offsets\":[0,1]}}", 1,
     CAIRN_E_CORRUPT},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":{\"y\":[[[{}]]]}}}", 1,
     CAIRN_E_CORRUPT},
    {"5", 0, CAIRN_E_CORRUPT},
    {"\"{}\"", 0, CAIRN_E_CORRUPT},
    {"null", 0, CAIRN_E_CORRUPT},
    /* ... and the values they leave alone */
    {"{\"a-0\":" T("U8", "[1]", "0", "1") ",\"__metadata__\":{\"-0\":\"-0 \\\"-0\\\" \\\\\"}}", 1,
     CAIRN_OK},
    {"{\"a\":" T("U8", "[0]", "0", "0") ",\"b\":" T("I8", "[1]", "0", "1") "}", 1, CAIRN_OK},
    {"{\"a\":" T("U8", "[9223372036854775807]", "0", "9223372036854775807") "}", 0,
     CAIRN_E_CORRUPT},
};

static void test_header_cases(void)
{
    for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
        const header_case *c = &header_cases[i];
        size_t n;
        uint8_t *b = make_st(c->header, c->data, &n);
        cairn_error err = {0};
        cairn_status st = try_memory(b, n, &err);
        CHECK_ST(st, c->want);
        if (st != c->want)
            fprintf(stderr, "  case %zu [%s]: %s\n", i, c->header, err.message);
        if (st != CAIRN_OK)
            CHECK(strncmp(err.message, "<memory>: ", 10) == 0 && strstr(err.message, "offset"));
        free(b);
    }
}

/* A NUL byte after the object (make_st's strings cannot hold one). */
static void test_nul_after_object(void)
{
    size_t n;
    uint8_t *b = make_st("{\"a\":" T("U8", "[1]", "0", "1") "} ", 1, &n);
    b[n - 2] = 0; /* the space after the object */
    cairn_error err = {0};
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "invalid JSON") != NULL);
    free(b);
}

/* The messages name what is wrong and where. */
static void test_messages(void)
{
    static const struct { const char *header; size_t data; const char *needle; } cases[] = {
        {"{\"x\":" T("F32", "[2]", "0", "8") ",\"bad\":" T("F4", "[2]", "8", "9") "}", 9,
         "offset 62: tensor 'bad': safetensors dtype 'F4' has no cairn dtype"},
        {"{\"bad\":" T("WAT", "[2]", "0", "1") "}", 1, "tensor 'bad': unknown dtype 'WAT'"},
        {"{\"w\":" T("F32", "[3]", "0", "8") "}", 8, "tensor 'w': data_offsets [0, 8] hold 8 "
         "bytes; F32 with 3 elements needs 12"},
        {"{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "4", "12") "}", 12,
         "tensor 'b': data_offsets [4, 12] overlap the previous tensor 'a', which ends at 8"},
        {"{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "12", "20") "}", 20,
         "tensor 'b': data_offsets [12, 20] leave a gap of 4 unindexed bytes after offset 8"},
        {"{\"a\":" T("F32", "[2]", "0", "8") "}", 12, "the data section holds 12 bytes but the "
         "tensors cover only 8"},
        {"{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "0", "4") "}", 4, "shape has 9 dimensions"},
        {"{\"a\":" T("F32", "[-2]", "0", "8") "}", 8, "\"shape\"[0] is negative (-2)"},
        {"{\"a\":" T("F32", "[2]", "0", "8") ",\"a\":{}}", 8, "offset 65: invalid JSON: "
         "duplicate object key"},
        {"{\"__metadata__\":{\"epoch\":7}}", 0, "key 'epoch' holds an integer; safetensors "
         "metadata values are strings only"},
        {"{\"a\\u0000b\":" T("U8", "[1]", "0", "1") "}", 1, "tensor 'a\\x00b': the name holds a "
         "NUL byte"},
        {"{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "offset 9: tensor 'a': invalid JSON: duplicate object key \"dtype\""},
        {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate object key 'k' in "
         "\"__metadata__\""},
        {"{\"a\":" T("F32", "[2.0]", "0", "8") "}", 8, "\"shape\"[0] is a real number, not an "
         "integer"},
        {"{\"a\":" T("U8", "[0]", "0", "-0") "}", 0, "offset 57: -0 is a real number"},
        {"{\"a\":" T("U8", "[0]", "0", "9223372036854775808") "}", 0, "\"data_offsets\"[1] is "
         "9223372036854775808, past the limit of 2^63 - 1"},
        {"{\"a\":" T("U8", "[18446744073709551616]", "0", "1") "}", 1, "offset 8: invalid JSON: "},
        {"{\"a\xff\":" T("U8", "[1]", "0", "1") "}", 1, "invalid JSON: The input is not valid UTF-8"},
        {"[]", 0, "the header is an array, not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *b = make_st(cases[i].header, cases[i].data, &n);
        cairn_error err = {0};
        CHECK(try_memory(b, n, &err) != CAIRN_OK);
        CHECK(strstr(err.message, cases[i].needle) != NULL);
        if (!strstr(err.message, cases[i].needle))
            fprintf(stderr, "  message %zu: %s\n", i, err.message);
        free(b);
    }
}

static void test_length_field(void)
{
    cairn_error err = {0};
    size_t n;
    uint8_t *b = make_st("{\"a\":" T("F32", "[2]", "0", "8") "}", 8, &n);
    CHECK_OK(try_memory_opts(b, n, NULL, &err));
    uint64_t lens[] = {n - 7, UINT64_MAX, UINT64_MAX - 7, 100000001ull, 1ull << 40};
    cairn_status want[] = {CAIRN_E_CORRUPT, CAIRN_E_LIMIT, CAIRN_E_LIMIT, CAIRN_E_LIMIT,
                           CAIRN_E_LIMIT};
    for (size_t i = 0; i < 5; i++) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        for (int k = 0; k < 8; k++)
            c[k] = (uint8_t)(lens[i] >> (8 * k));
        CHECK_ST(try_memory(c, n, &err), want[i]);
        CHECK(strstr(err.message, "offset 0") != NULL);
        /* Auto-detection does not take it for safetensors at all. */
        CHECK_ST(try_memory_opts(c, n, NULL, &err), CAIRN_E_FORMAT);
        free(c);
    }
    CHECK_ST(try_memory(b, 7, &err), CAIRN_E_CORRUPT);
    CHECK_ST(try_memory(b, 0, &err), CAIRN_E_CORRUPT);
    free(b);
    /* N = 0 and N = 1 are never detected; '{' is required after whitespace. */
    static const char n0[] = "\0\0\0\0\0\0\0\0{}";
    static const char n1[] = "\1\0\0\0\0\0\0\0{}";
    static const char nx[] = "\2\0\0\0\0\0\0\0x}";
    CHECK_ST(try_memory_opts(n0, 10, NULL, &err), CAIRN_E_FORMAT);
    CHECK(strstr(err.message, "safetensors") != NULL);
    CHECK_ST(try_memory_opts(n1, 10, NULL, &err), CAIRN_E_FORMAT);
    CHECK_ST(try_memory_opts(nx, 10, NULL, &err), CAIRN_E_FORMAT);
    CHECK_ST(try_memory(n0, 10, &err), CAIRN_E_CORRUPT);
    /* A NUL byte after the object is not padding. */
    static const char nul[] = "\3\0\0\0\0\0\0\0{}\0";
    CHECK_ST(try_memory(nul, 11, &err), CAIRN_E_CORRUPT);
    /* A header length of exactly the limit that runs past the end. */
    uint8_t big[16] = {0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'}; /* 100,000,000 */
    CHECK_ST(try_memory(big, sizeof big, &err), CAIRN_E_CORRUPT);
}

static int acceptable(cairn_status st)
{
    return st == CAIRN_OK || st == CAIRN_E_CORRUPT || st == CAIRN_E_UNSUPPORTED ||
           st == CAIRN_E_LIMIT || st == CAIRN_E_FORMAT;
}

/* A small real file with metadata (plain and "cairn.meta") and a few dtypes. */
static uint8_t *small_file(size_t *len)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t d2[2] = {2, 3}, d1[1] = {3};
    uint8_t bytes[48];
    tu_fill(bytes, sizeof bytes, CAIRN_U8, 5);
    cairn_value *tree = cairn_value_map();
    cairn_value_set(tree, "format", cairn_value_string("pt"), NULL);
    cairn_value_set(tree, "n", cairn_value_int(3), NULL);
    cairn_value_set(tree, "t", cairn_value_tensor_ref("b"), NULL);
    void *mem = NULL;
    CHECK_OK(cairn_writer_open_memory(&st_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 2, d2, bytes, &err));
    CHECK_OK(cairn_writer_add(w, "b", CAIRN_BF16, 1, d1, bytes, &err));
    CHECK_OK(cairn_writer_add(w, "c", CAIRN_BOOL, 0, NULL, "\1", &err));
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, len, &err));
    cairn_value_free(tree);
    return mem;
}

/* Every truncation fails; every single-byte change either still reads or
 * fails with an input error; random multi-byte damage never crashes. */
static void test_mutations(void)
{
    static const uint8_t values[] = {0x00, 0x01, 0x20, 0x22, 0x2c, 0x2d, 0x30, 0x39, 0x3a,
                                     0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xff};
    cairn_error err = {0};
    size_t n;
    uint8_t *b = small_file(&n);
    CHECK_OK(try_memory(b, n, &err));
    CHECK_OK(try_memory_opts(b, n, NULL, &err));
    int cases = 0;
    size_t data_at = 8 + (size_t)b[0] + ((size_t)b[1] << 8);
    for (size_t len = 0; len < n; len++, cases++) {
        uint8_t *cut = malloc(len ? len : 1); /* exact size, so ASan sees overreads */
        memcpy(cut, b, len);
        CHECK_ST(try_memory(cut, len, &err), CAIRN_E_CORRUPT);
        /* Detection needs the whole header; past it, the data is short. */
        CHECK_ST(try_memory_opts(cut, len, NULL, &err),
                 len < data_at ? CAIRN_E_FORMAT : CAIRN_E_CORRUPT);
        free(cut);
    }
    for (size_t at = 0; at < n; at++) {
        for (size_t v = 0; v < sizeof values; v++, cases++) {
            uint8_t *m = malloc(n);
            memcpy(m, b, n);
            m[at] = values[v];
            cairn_status st = try_memory(m, n, &err);
            CHECK(acceptable(st));
            if (!acceptable(st))
                fprintf(stderr, "  byte %zu = %02x: %d %s\n", at, values[v], st, err.message);
            CHECK(acceptable(try_memory_opts(m, n, NULL, &err)));
            m[at] = (uint8_t)(b[at] ^ 0x01);
            CHECK(acceptable(try_memory(m, n, &err)));
            free(m);
        }
    }
    uint64_t seed = 99;
    for (int round = 0; round < 20000; round++, cases++) {
        uint8_t *m = malloc(n);
        memcpy(m, b, n);
        int hits = 1 + (int)(tu_rand(&seed) % 6);
        for (int k = 0; k < hits; k++)
            m[tu_rand(&seed) % n] = (uint8_t)tu_rand(&seed);
        CHECK(acceptable(try_memory(m, n, &err)));
        free(m);
    }
    fprintf(stderr, "mutations: %d cases\n", cases);
    free(b);
}

/* The pread path refuses what the mmap path refuses, and auto-detects. */
static void test_pread_hostile(void)
{
    char path[4200];
    cairn_error err = {0};
    size_t n;
    uint8_t *b = make_st("{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":" T("F32", "[2]", "12", "20")
                         "}", 20, &n);
    snprintf(path, sizeof path, "%s/gap.bin", tmp);
    CHECK(tu_write_file(path, b, n) == 0);
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open(path, &no_mmap, &f, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, path) != NULL && strstr(err.message, "gap") != NULL);
    free(b);
    b = make_st("  {\"a\":" T("I16", "[2]", "0", "4") "}", 4, &n);
    CHECK(tu_write_file(path, b, n) == 0);
    CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
    int16_t two[2];
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_I16, two, sizeof two, CAIRN_READ_VERIFY, &err));
    CHECK(two[0] == 0x0801 && two[1] == 0x160f);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    /* The file changes after open: verify notices. */
    CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
    b[8 + 4] = 'b'; /* rename the tensor */
    CHECK(tu_write_file(path, b, n) == 0);
    CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "changed since") != NULL);
    cairn_file_close(f);
    free(b);
}

int main(void)
{
    tmp = tu_tmpdir("test_safetensors");
    test_writer_bytes();
    test_writer_refusals();
    test_round_trips();
    test_many_tensors();
    test_big_payloads();
    test_metadata();
    test_metadata_reading();
    test_native_conversion();
    test_header_cases();
    test_nul_after_object();
    test_messages();
    test_length_field();
    test_mutations();
    test_pread_hostile();
    test_corpus();
    test_python();
    tu_remove_tmpdir_if_passed(tmp);
    TEST_MAIN_END();
}
