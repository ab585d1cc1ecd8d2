/* test_npz.c -- the .npz reader and writer: round trips (stored and
 * deflated, path and memory), numpy both ways, the public corpus with its
 * zip bomb, and hostile archives. */
#include "corpus.h"
#include "testutil.h"

#include "container/zip.h"

#include <cairn.h>
#include <pthread.h>
#include <sys/resource.h>

/* ------------------------------------------------------------- helpers */

static const cairn_dtype npy_dtypes[] = {
    CAIRN_BOOL, CAIRN_I8,  CAIRN_I16, CAIRN_I32, CAIRN_I64, CAIRN_U8,  CAIRN_U16,
    CAIRN_U32,  CAIRN_U64, CAIRN_F16, CAIRN_F32, CAIRN_F64, CAIRN_C64, CAIRN_C128,
};
static const char *npy_descrs[] = {"|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2",
                                   "<u4", "<u8", "<f2", "<f4", "<f8", "<c8", "<c16"};
#define N_DTYPES (sizeof npy_dtypes / sizeof npy_dtypes[0])

static const uint64_t shapes[][CAIRN_MAX_RANK] = {
    {0}, {5}, {3, 4}, {0, 3}, {2, 1, 3, 1, 2, 2, 1, 3}, {1}, {300, 70}};
static const uint32_t ranks[] = {0, 1, 2, 2, 8, 1, 2};
#define N_SHAPES (sizeof ranks / sizeof ranks[0])

static const char *tmp;

static cairn_write_opts wopts(unsigned flags, cairn_format format, uint64_t alignment)
{
    cairn_write_opts o = {.struct_size = sizeof o, .flags = flags | CAIRN_WRITE_NO_SYNC,
                          .format = format, .alignment = alignment};
    return o;
}

static const cairn_open_opts no_mmap = {.struct_size = sizeof(cairn_open_opts),
                                        .flags = CAIRN_OPEN_NO_MMAP};

/* Reads tensor i as stored into a new buffer. */
static cairn_status read_tensor(const cairn_file *f, uint64_t i, unsigned flags,
                                cairn_tensor_info *in, uint8_t **out, cairn_error *err)
{
    *out = NULL;
    cairn_status st = cairn_tensor_info_at(f, i, in, err);
    if (st != CAIRN_OK)
        return st;
    uint8_t *buf = malloc(in->raw_size ? (size_t)in->raw_size : 1);
    if (!buf)
        return CAIRN_E_NOMEM;
    st = cairn_tensor_read(f, i, in->dtype, buf, (size_t)in->raw_size, flags, err);
    if (st != CAIRN_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return CAIRN_OK;
}

/* Opens bytes in memory, reads every tensor with verification, verifies the
 * file: the status of the first failure. */
static cairn_status try_memory(const void *buf, size_t n, cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_status st = cairn_file_open_memory(buf, n, NULL, &f, err);
    for (uint64_t i = 0; st == CAIRN_OK && i < cairn_file_count(f); i++) {
        cairn_tensor_info in;
        uint8_t *data = NULL;
        st = cairn_tensor_info_at(f, i, &in, err);
        if (st == CAIRN_OK && in.raw_size > (64u << 20))
            continue;
        st = read_tensor(f, i, CAIRN_READ_VERIFY, &in, &data, err);
        free(data);
    }
    if (st == CAIRN_OK)
        st = cairn_file_verify(f, err);
    cairn_file_close(f);
    return st;
}

/* Builds a ZIP archive from raw members with the ZIP module. */
typedef struct raw_member {
    const char *name;
    const void *data;
    size_t len;
    int deflate;
} raw_member;

static uint8_t *build_zip(const raw_member *ms, size_t count, size_t *n)
{
    cairn__sink sink;
    cairn__zip_writer zw;
    cairn_error err = {0};
    cairn__sink_init_memory(&sink, "<memory>");
    cairn__zipw_init(&zw, &sink);
    for (size_t i = 0; i < count; i++) {
        cairn__zip_piece p = {ms[i].data, ms[i].len};
        CHECK_OK(cairn__zipw_add(&zw, ms[i].name, strlen(ms[i].name), &p, 1, ms[i].deflate, 1, 0,
                                 &err));
    }
    CHECK_OK(cairn__zipw_finish(&zw, &err));
    cairn__zipw_free(&zw);
    *n = sink.mem_len;
    return sink.mem;
}

/* An .npy image of a little-endian array (as cairn's npy writer makes it),
 * followed by `trailing` bytes. */
static uint8_t *npy_image(cairn_dtype dtype, uint32_t rank, const uint64_t *dims,
                          const void *data, size_t trailing, size_t *len)
{
    cairn_write_opts o = wopts(0, CAIRN_FORMAT_NPY, 0);
    cairn_writer *w = NULL;
    cairn_error err = {0};
    void *mem = NULL;
    size_t n = 0;
    CHECK_OK(cairn_writer_open_memory(&o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", dtype, rank, dims, data, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &n, &err));
    uint8_t *b = malloc(n + trailing);
    memcpy(b, mem, n);
    memset(b + n, 0xEE, trailing);
    cairn_free(mem);
    *len = n + trailing;
    return b;
}

/* ------------------------------------------------------ 1. round trips */

typedef struct rt_tensor {
    char name[64];
    cairn_dtype dtype;
    uint32_t rank;
    const uint64_t *dims;
    uint8_t *data;
    size_t bytes;
} rt_tensor;

static rt_tensor rt[N_DTYPES * N_SHAPES];

static void make_tensors(void)
{
    uint64_t seed = 1;
    for (size_t d = 0; d < N_DTYPES; d++) {
        for (size_t s = 0; s < N_SHAPES; s++) {
            rt_tensor *t = &rt[d * N_SHAPES + s];
            snprintf(t->name, sizeof t->name, "%s/shape%zu", cairn_dtype_name(npy_dtypes[d]), s);
            t->dtype = npy_dtypes[d];
            t->rank = ranks[s];
            t->dims = shapes[s];
            t->bytes = (size_t)(tu_elem_count(t->rank, t->dims) * cairn_dtype_size(t->dtype));
            t->data = malloc(t->bytes ? t->bytes : 1);
            tu_fill(t->data, t->bytes, t->dtype, seed++);
        }
    }
}

static cairn_status write_all(cairn_writer *w, cairn_error *err)
{
    for (size_t i = 0; i < N_DTYPES * N_SHAPES; i++) {
        cairn_status st = cairn_writer_add(w, rt[i].name, rt[i].dtype, rt[i].rank, rt[i].dims,
                                           rt[i].data, err);
        if (st != CAIRN_OK)
            return st;
    }
    return CAIRN_OK;
}

static void check_tensor(const cairn_file *f, const rt_tensor *t, int compressed, int mapped,
                         uint64_t align)
{
    cairn_error err = {0};
    uint64_t idx = 0;
    cairn_tensor_info in;
    CHECK_OK(cairn_tensor_find(f, t->name, &idx, &in, &err));
    CHECK(strcmp(in.name, t->name) == 0 && in.name_len == strlen(t->name));
    CHECK(in.dtype == t->dtype && in.rank == t->rank);
    for (uint32_t d = 0; d < CAIRN_MAX_RANK; d++)
        CHECK(in.dims[d] == (d < t->rank ? t->dims[d] : 0));
    CHECK(in.count == tu_elem_count(t->rank, t->dims) && in.raw_size == t->bytes);
    CHECK(in.codec == CAIRN_CODEC_NONE && !in.has_checksum);
    CHECK(in.zero_copy == (!compressed && mapped));
    if (!compressed)
        CHECK(in.offset % align == 0 && in.stored_size == t->bytes);
    uint8_t *got = NULL;
    CHECK_OK(read_tensor(f, idx, 0, &in, &got, &err));
    CHECK(got && memcmp(got, t->data, t->bytes) == 0);
    free(got);
    CHECK_OK(read_tensor(f, idx, CAIRN_READ_VERIFY, &in, &got, &err));
    CHECK(got && memcmp(got, t->data, t->bytes) == 0);
    free(got);
    const void *view = NULL;
    CHECK_ST(cairn_tensor_data(f, idx, &view, &err), in.zero_copy ? CAIRN_OK : CAIRN_E_UNSUPPORTED);
    if (in.zero_copy)
        CHECK(view && memcmp(view, t->data, t->bytes) == 0);
    CHECK_OK(cairn_tensor_verify(f, idx, &err));
    if (t->bytes == 0) /* nothing to read: no buffer needed */
        CHECK_OK(cairn_tensor_read(f, idx, t->dtype, NULL, 0, CAIRN_READ_VERIFY, &err));
    /* Widening reads go through the same bytes. */
    if (t->dtype == CAIRN_I16 || t->dtype == CAIRN_F32) {
        cairn_dtype to = t->dtype == CAIRN_I16 ? CAIRN_I32 : CAIRN_F64;
        size_t n = (size_t)in.count;
        uint8_t *wide = malloc(n * 8 + 1), *expect = malloc(n * 8 + 1);
        CHECK_OK(cairn_tensor_read(f, idx, to, wide, n * cairn_dtype_size(to), CAIRN_READ_VERIFY,
                                   &err));
        CHECK_OK(cairn_convert(t->dtype, t->data, to, expect, n, &err));
        CHECK(memcmp(wide, expect, n * cairn_dtype_size(to)) == 0);
        free(expect);
        free(wide);
    }
}

static void check_archive(const cairn_file *f, int compressed, int mapped, uint64_t align)
{
    cairn_error err = {0};
    uint64_t n = cairn_file_count(f);
    CHECK(n == N_DTYPES * N_SHAPES);
    for (size_t i = 0; i < N_DTYPES * N_SHAPES; i++)
        check_tensor(f, &rt[i], compressed, mapped, align);
    cairn_tensor_info a, b;
    for (uint64_t i = 1; i < n; i++) { /* sorted by name */
        CHECK_OK(cairn_tensor_info_at(f, i - 1, &a, &err));
        CHECK_OK(cairn_tensor_info_at(f, i, &b, &err));
        CHECK(strcmp(a.name, b.name) < 0);
    }
    CHECK_ST(cairn_tensor_find(f, "F32/shape9", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    CHECK_ST(cairn_tensor_find(f, "F32/shape1.npy", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_NPZ && fi.tensor_count == n && !fi.has_metadata);
    CHECK(compressed ? fi.alignment == 1 : fi.alignment >= align);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK(meta && cairn_value_get_type(meta) == CAIRN_VALUE_MAP && cairn_value_count(meta) == 0);
    cairn_value_free(meta);
}

static void round_trip(int compressed, uint64_t align)
{
    char path[4200];
    cairn_error err = {0};
    snprintf(path, sizeof path, "%s/rt_%d_%llu.npz", tmp, compressed, (unsigned long long)align);
    cairn_write_opts po = wopts(compressed ? CAIRN_WRITE_COMPRESS : 0, CAIRN_FORMAT_AUTO, align);
    cairn_write_opts mo = wopts(compressed ? CAIRN_WRITE_COMPRESS : 0, CAIRN_FORMAT_NPZ, align);
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_path(path, &po, &w, &err));
    CHECK_OK(write_all(w, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    void *mem = NULL;
    size_t mem_len = 0, file_len = 0;
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(write_all(w, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &mem_len, &err));
    uint8_t *file = tu_read_whole(path, &file_len);
    CHECK(file && mem && file_len == mem_len && memcmp(file, mem, mem_len) == 0);
    free(file);
    if (align == 0)
        align = 64;

    cairn_file *f = NULL;
    static const cairn_open_opts verify = {.struct_size = sizeof verify, .flags = CAIRN_OPEN_VERIFY};
    CHECK_OK(cairn_file_open(path, &verify, &f, &err));
    if (f)
        check_archive(f, compressed, 1, align);
    cairn_file_close(f);
    CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
    if (f)
        check_archive(f, compressed, 0, align);
    cairn_file_close(f);
    CHECK_OK(cairn_file_open_memory(mem, mem_len, NULL, &f, &err));
    if (f)
        check_archive(f, compressed, 1, align);
    cairn_file_close(f);
    cairn_free(mem);
}

static void test_round_trips(void)
{
    for (int compressed = 0; compressed < 2; compressed++)
        round_trip(compressed, 0);
    round_trip(0, 4096);
    round_trip(0, 8);
    /* An empty archive is an .npz too (np.savez() with no arrays writes one). */
    cairn_error err = {0};
    cairn_write_opts mo = wopts(0, CAIRN_FORMAT_NPZ, 0);
    cairn_writer *w = NULL;
    void *mem = NULL;
    size_t n = 0;
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &n, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, n, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 0);
    cairn_file_close(f);
    cairn_free(mem);
}

/* Many tensors: binary search over names that sort apart from their members
 * ("a-b.npy" < "a.npy" but "a" < "a-b"). */
static void test_names(void)
{
    cairn_error err = {0};
    cairn_write_opts mo = wopts(0, CAIRN_FORMAT_NPZ, 8);
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    char name[64];
    int32_t v;
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof name, i % 3 == 0 ? "a%d" : i % 3 == 1 ? "a%d-b" : "a%d.npy", i);
        v = i;
        CHECK_OK(cairn_writer_add(w, name, CAIRN_I32, 0, NULL, &v, &err));
    }
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_I32, 0, NULL, &v, &err));
    CHECK_OK(cairn_writer_add(w, "a-b", CAIRN_I32, 0, NULL, &v, &err));
    void *mem = NULL;
    size_t n = 0;
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &n, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, n, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 1502);
    for (int i = 0; f && i < 1500; i++) {
        snprintf(name, sizeof name, i % 3 == 0 ? "a%d" : i % 3 == 1 ? "a%d-b" : "a%d.npy", i);
        uint64_t idx;
        int32_t got = -1;
        CHECK_OK(cairn_tensor_find(f, name, &idx, NULL, &err));
        CHECK_OK(cairn_tensor_read(f, idx, CAIRN_I32, &got, 4, 0, &err));
        CHECK(got == i);
    }
    CHECK_OK(cairn_tensor_find(f, "a", NULL, NULL, &err));
    CHECK_OK(cairn_tensor_find(f, "a-b", NULL, NULL, &err));
    cairn_file_close(f);
    cairn_free(mem);
}

static void test_writer_refusals(void)
{
    cairn_error err = {0};
    cairn_write_opts mo = wopts(0, CAIRN_FORMAT_NPZ, 0);
    cairn_writer *w = NULL;
    uint16_t h = 0;
    static const cairn_dtype no_descr[] = {CAIRN_BF16, CAIRN_F8_E4M3, CAIRN_F8_E5M2};
    for (size_t i = 0; i < 3; i++) {
        CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
        CHECK_ST(cairn_writer_add(w, "x", no_descr[i], 0, NULL, &h, &err), CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, "NumPy has no descr") != NULL);
        cairn_writer_abort(w);
    }
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U16, 0, NULL, &h, &err));
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_U16, 0, NULL, &h, &err), CAIRN_E_EXISTS);
    cairn_writer_abort(w);
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U16, 0, NULL, &h, &err));
    CHECK_ST(cairn_writer_add_alias(w, "y", "x", &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
    cairn_value *meta = cairn_value_map();
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, meta, &err)); /* empty: fine */
    CHECK_OK(cairn_value_set(meta, "k", cairn_value_int(1), &err));
    CHECK_ST(cairn_writer_set_metadata(w, meta, &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
    cairn_value_free(meta);
    /* .npz by extension */
    char path[4200];
    snprintf(path, sizeof path, "%s/ext.NPZ", tmp);
    cairn_write_opts po = wopts(0, CAIRN_FORMAT_AUTO, 0);
    CHECK_OK(cairn_writer_open_path(path, &po, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U16, 0, NULL, &h, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    cairn_file_info fi;
    CHECK(f && cairn_file_get_info(f, &fi, &err) == CAIRN_OK && fi.format == CAIRN_FORMAT_NPZ);
    cairn_file_close(f);
    CHECK(strcmp(cairn_format_name(CAIRN_FORMAT_NPZ), "npz") == 0);
}

/* --------------------------------------------------------- 2. numpy */

static const char gen_py[] =
    "import sys, io, zipfile, numpy as np\n"
    "from numpy.lib import format as fmt\n"
    "out = sys.argv[1]\n"
    "rng = np.random.default_rng(77)\n"
    "names = {('b',1):'BOOL',('i',1):'I8',('i',2):'I16',('i',4):'I32',('i',8):'I64',\n"
    "         ('u',1):'U8',('u',2):'U16',('u',4):'U32',('u',8):'U64',('f',2):'F16',\n"
    "         ('f',4):'F32',('f',8):'F64',('c',8):'C64',('c',16):'C128'}\n"
    "man = open(out + '/manifest.txt', 'w')\n"
    "def values(dt, shape):\n"
    "    n = np.dtype(dt).newbyteorder('=')\n"
    "    if n.kind == 'b': return rng.integers(0, 2, shape).astype(dt)\n"
    "    if n.kind in 'iu':\n"
    "        i = np.iinfo(n)\n"
    "        return rng.integers(i.min, i.max, shape, dtype=n, endpoint=True).astype(dt)\n"
    "    if n.kind == 'f': return (rng.standard_normal(shape) * 1000).astype(dt)\n"
    "    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)\n"
    "count = 0\n"
    "def record(fn, key, arr):\n"
    "    global count\n"
    "    count += 1\n"
    "    le = arr.astype(arr.dtype.newbyteorder('<'))\n"
    "    open('%s/%d.bin' % (out, count), 'wb').write(le.tobytes(order='C'))\n"
    "    man.write('%s\\t%s\\t%d\\t%s\\t%d\\t%s\\n' % (fn, key.encode().hex(), count,\n"
    "              names[(arr.dtype.kind, arr.dtype.itemsize)], arr.ndim,\n"
    "              ' '.join(str(d) for d in arr.shape)))\n"
    "arrays = {}\n"
    "for code in ['b1','i1','u1','i2','i4','i8','u2','u4','u8','f2','f4','f8','c8','c16']:\n"
    "    arrays['le_' + code] = values('<' + code, (3, 5))\n"
    "    arrays['be_' + code] = values('>' + code, (2, 3))\n"
    "    arrays['scalar_' + code] = values('<' + code, ())\n"
    "    arrays['fortran_' + code] = np.asfortranarray(values('>' + code, (2, 3, 4)))\n"
    "arrays['empty'] = values('<f4', (0, 3))\n"
    "arrays['rank8'] = values('<i2', (2, 1, 3, 1, 2, 2, 1, 3))\n"
    "arrays['dotted.name/with slash'] = values('<f8', (4,))\n"
    "arrays['unicode_\\u00e9'] = values('<i4', (2,))\n"
    "class Unseekable:\n"
    "    def __init__(s, f): s.f = f\n"
    "    def write(s, b): return s.f.write(b)\n"
    "    def flush(s): s.f.flush()\n"
    "    def read(s, n=-1): raise OSError('write only')\n"
    "for fn, saver, stream in [('savez.npz', np.savez, 0), ('compressed.npz', np.savez_compressed, 0),\n"
    "                          ('stream.npz', np.savez_compressed, 1)]:\n"
    "    f = open(out + '/' + fn, 'wb')\n"
    "    saver(Unseekable(f) if stream else f, **arrays)\n"
    "    f.close()\n"
    "    for k, a in arrays.items(): record(fn, k, a)\n"
    "a, b = values('<f4', (7,)), values('>i8', (2, 2))\n"
    "np.savez(out + '/positional.npz', a, b)\n"
    "record('positional.npz', 'arr_0', a); record('positional.npz', 'arr_1', b)\n"
    "def npy(a, version=None):\n"
    "    b = io.BytesIO()\n"
    "    if version: fmt.write_array(b, a, version=version)\n"
    "    else: np.save(b, a)\n"
    "    return b.getvalue()\n"
    "zf = zipfile.ZipFile(out + '/crafted.npz', 'w')\n"
    "a = values('<f4', (4, 4)); zf.writestr('plain', npy(a)); record('crafted.npz', 'plain', a)\n"
    "a = values('>u2', (3,)); zf.writestr('v2.npy', npy(a, (2, 0)), zipfile.ZIP_DEFLATED)\n"
    "record('crafted.npz', 'v2', a)\n"
    "a = values('<c8', (2, 2)); zf.writestr('v3.npy', npy(a, (3, 0)), zipfile.ZIP_DEFLATED)\n"
    "record('crafted.npz', 'v3', a)\n"
    "zf.close()\n"
    "z, noise = np.zeros(10000000, np.uint8), values('<f4', (2500000,))\n"
    "np.savez_compressed(out + '/big.npz', zeros=z, noise=noise)\n"
    "record('big.npz', 'zeros', z); record('big.npz', 'noise', noise)\n";

/* One line of numpy's manifest (ctx: the directory); counts the tensor. */
static int check_numpy_line(void *ctx, char *line)
{
    const char *dir = ctx;
    char file[64], hex[512], dtname[16], path[4400], name[256] = {0};
    unsigned id, rank;
    int used = 0;
    uint64_t dims[CAIRN_MAX_RANK] = {0};
    if (sscanf(line, "%63s %511s %u %15s %u%n", file, hex, &id, dtname, &rank, &used) != 5 ||
        rank > CAIRN_MAX_RANK || strlen(hex) / 2 >= sizeof name) {
        CHECK(!"bad manifest line");
        return 1;
    }
    for (size_t i = 0; i < strlen(hex) / 2; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        name[i] = (char)v;
    }
    const char *p = line + used;
    for (unsigned d = 0; d < rank; d++) {
        int k = 0;
        sscanf(p, "%" SCNu64 "%n", &dims[d], &k);
        p += k;
    }
    size_t want_len;
    snprintf(path, sizeof path, "%s/%u.bin", dir, id);
    uint8_t *want = tu_read_whole(path, &want_len);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    for (int pass = 0; pass < 2; pass++) {
        cairn_error err = {0};
        cairn_file *f = NULL;
        cairn_tensor_info in;
        uint64_t idx;
        uint8_t *got = NULL;
        cairn_status st = cairn_file_open(path, pass ? &no_mmap : NULL, &f, &err);
        if (st == CAIRN_OK)
            st = cairn_tensor_find(f, name, &idx, NULL, &err);
        if (st == CAIRN_OK)
            st = read_tensor(f, idx, CAIRN_READ_VERIFY, &in, &got, &err);
        CHECK_OK(st);
        if (st != CAIRN_OK) {
            fprintf(stderr, "  %s %s: %s\n", file, name, err.message);
            cairn_file_close(f);
            break;
        }
        CHECK(in.dtype == cairn_dtype_from_name(dtname) && in.rank == rank);
        CHECK(memcmp(in.dims, dims, sizeof dims) == 0);
        int same = want && in.raw_size == want_len && memcmp(got, want, want_len) == 0;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  %s %s: bytes differ from numpy's\n", file, name);
        free(got);
        cairn_file_close(f);
    }
    free(want);
    return 1;
}

static const char check_py[] =
    "import sys, zipfile, numpy as np\n"
    "d = sys.argv[1]\n"
    "bad = n = 0\n"
    "files = {}\n"
    "for line in open(d + '/cairn_manifest.txt'):\n"
    "    fn, name, binf, descr, *dims = line.split()\n"
    "    n += 1\n"
    "    if fn not in files:\n"
    "        files[fn] = np.load(d + '/' + fn)\n"
    "        if zipfile.ZipFile(d + '/' + fn).testzip() is not None: bad += 1; print(fn, 'CRC')\n"
    "    a = files[fn][name]\n"
    "    probs = []\n"
    "    if a.dtype.str != descr: probs.append('dtype %s' % a.dtype.str)\n"
    "    if a.shape != tuple(int(x) for x in dims): probs.append('shape %r' % (a.shape,))\n"
    "    if a.tobytes() != open(d + '/' + binf, 'rb').read(): probs.append('values differ')\n"
    "    if probs: bad += 1; print(fn, name, ', '.join(probs))\n"
    "for fn, z in files.items():\n"
    "    if sorted(z.files) != sorted(set(l.split()[1] for l in open(d + '/cairn_manifest.txt')\n"
    "                                     if l.split()[0] == fn)): bad += 1; print(fn, 'names')\n"
    "print('numpy checked %d cairn tensors, %d bad' % (n, bad))\n"
    "sys.exit(1 if bad else 0)\n";

static void numpy_reads_cairn(const char *dir)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/cairn_manifest.txt", dir);
    FILE *man = fopen(path, "w");
    for (int compressed = 0; compressed < 2; compressed++) {
        cairn_error err = {0};
        cairn_writer *w = NULL;
        snprintf(path, sizeof path, "%s/cw_%d.npz", dir, compressed);
        cairn_write_opts o = wopts(compressed ? CAIRN_WRITE_COMPRESS : 0, CAIRN_FORMAT_AUTO, 0);
        CHECK_OK(cairn_writer_open_path(path, &o, &w, &err));
        for (size_t d = 0; d < N_DTYPES; d++) {
            for (size_t s = 0; s < N_SHAPES; s++) {
                const rt_tensor *t = &rt[d * N_SHAPES + s];
                char name[64], binf[128];
                snprintf(name, sizeof name, "t%zu_%zu", d, s); /* numpy keys: no '/' needed */
                snprintf(binf, sizeof binf, "cw_%s.bin", name);
                snprintf(path, sizeof path, "%s/%s", dir, binf);
                tu_write_file(path, t->data, t->bytes);
                CHECK_OK(cairn_writer_add(w, name, t->dtype, t->rank, t->dims, t->data, &err));
                fprintf(man, "cw_%d.npz %s %s %s", compressed, name, binf, npy_descrs[d]);
                for (uint32_t k = 0; k < t->rank; k++)
                    fprintf(man, " %" PRIu64, t->dims[k]);
                fputc('\n', man);
            }
        }
        CHECK_OK(cairn_writer_commit(w, &err));
    }
    fclose(man);
    CHECK(tu_run_python_text(tmp, check_py, dir, NULL) == 0);
}

static void test_numpy(void)
{
    char dir[4200];
    if (!tu_python_imports("numpy", "numpy cross-checks"))
        return;
    snprintf(dir, sizeof dir, "%s/numpy", tmp);
    mkdir(dir, 0777);
    CHECK(tu_run_python_text(tmp, gen_py, dir, NULL) == 0);
    int tensors = tu_each_line(tu_path(dir, "manifest.txt"), check_numpy_line, dir);
    CHECK(tensors >= 0); /* the manifest exists */
    CHECK(tensors == 3 * 60 + 2 + 3 + 2);
    fprintf(stderr, "cairn checked %d tensors of numpy .npz files\n", tensors);
    numpy_reads_cairn(dir);
}

/* ------------------------------------------------------- 3. the corpus */

static void check_corpus_ok(const char *path, json_t *root)
{
    json_t *tensors = json_object_get(root, "tensors");
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s: %s\n", path, err.message);
        return;
    }
    CHECK(cairn_file_count(f) == json_object_size(tensors));
    const char *key;
    json_t *t;
    json_object_foreach(tensors, key, t) {
        uint64_t idx;
        cairn_tensor_info in;
        uint8_t *got = NULL;
        cairn_status st = cairn_tensor_find(f, key, &idx, NULL, &err);
        if (st == CAIRN_OK)
            st = read_tensor(f, idx, CAIRN_READ_VERIFY, &in, &got, &err);
        CHECK_OK(st);
        if (st != CAIRN_OK) {
            fprintf(stderr, "  %s %s: %s\n", path, key, err.message);
            continue;
        }
        tu_check_expected_tensor(tmp, key, &in, got, t);
        free(got);
    }
    json_t *members = json_object_get(json_object_get(root, "values"), "members");
    for (size_t i = 0; i < json_array_size(members); i++) {
        json_t *m = json_array_get(members, i);
        const char *kind = json_string_value(json_object_get(m, "compress_type"));
        uint64_t idx;
        cairn_tensor_info in;
        char name[256];
        snprintf(name, sizeof name, "%s", json_string_value(json_object_get(m, "name")));
        name[strlen(name) - 4] = '\0'; /* without ".npy" */
        CHECK_OK(cairn_tensor_find(f, name, &idx, &in, &err));
        int deflated = kind && strcmp(kind, "deflate") == 0;
        CHECK(in.zero_copy == !deflated);
        if (deflated)
            CHECK(in.stored_size == (uint64_t)json_integer_value(json_object_get(m, "compress_size")));
    }
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
}

/* The bomb is refused on open, by its declared size, before any inflating. */
static void check_bomb(const char *path)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open(path, NULL, &f, &err), CAIRN_E_LIMIT);
    CHECK(f == NULL && strstr(err.message, "member 'zeros.npy'") && strstr(err.message, "offset"));
    fprintf(stderr, "  rejected as expected: %s\n", err.message);
    size_t n;
    uint8_t *b = tu_read_whole(path, &n);
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_LIMIT);
    free(b);
    /* With a limit raised on purpose it opens and verifies (inflating as a
     * stream: nothing of the declared size is allocated). */
    cairn_open_opts big = {.struct_size = sizeof big, .flags = CAIRN_OPEN_VERIFY,
                           .max_inflate = 128u << 20};
    CHECK_OK(cairn_file_open(path, &big, &f, &err));
    cairn_tensor_info in;
    CHECK(f && cairn_tensor_info_at(f, 0, &in, &err) == CAIRN_OK && in.raw_size == 100u << 20);
    cairn_file_close(f);
#if !defined(__SANITIZE_ADDRESS__)
    /* And the refusal needs no memory: a child with 256 MiB of address space. */
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {256u << 20, 256u << 20};
        setrlimit(RLIMIT_AS, &rl);
        cairn_error e = {0};
        cairn_file *g = NULL;
        _exit(cairn_file_open(path, NULL, &g, &e) == CAIRN_E_LIMIT ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
}

/* One corpus file: those expected to read are checked and counted. */
static int corpus_file(void *ctx, const char *npath, json_t *root)
{
    (void)ctx;
    const char *expect = json_string_value(json_object_get(root, "expect"));
    if (!expect || strcmp(expect, "ok") != 0)
        return 0;
    check_corpus_ok(npath, root);
    return 1;
}

static void test_corpus(void)
{
    char dir[4200];
    if (!tu_vectors_dir("npz", dir, sizeof dir)) {
        fprintf(stderr, "vectors absent: skipped\n");
        return;
    }
    int ok = tu_each_expect(dir, "", ".npz.expect.json", corpus_file, NULL);
    check_bomb(tu_path(getenv("CAIRN_VECTORS"), "malicious/npz_zip_bomb.npz"));
    fprintf(stderr, "corpus: %d npz files read, the zip bomb rejected\n", ok);
    CHECK(ok >= 2);
}

/* ------------------------------------------------------ 4. hostile input */

static int named(const cairn_error *err, const char *member)
{
    int ok = strncmp(err->message, "<memory>: ", 10) == 0 && strstr(err->message, "offset") &&
             (!member || strstr(err->message, member));
    if (!ok)
        fprintf(stderr, "  message lacks file, member or offset: %s\n", err->message);
    return ok;
}

static void test_members(void)
{
    cairn_error err = {0};
    int32_t v[6] = {1, 2, 3, 4, 5, 6};
    uint64_t dims[1] = {6};
    size_t a_len, t_len;
    uint8_t *a = npy_image(CAIRN_I32, 1, dims, v, 0, &a_len);
    uint8_t *t = npy_image(CAIRN_I32, 1, dims, v, 50, &t_len); /* trailing bytes: ignored */
    size_t n;
    uint8_t *b;
    cairn_file *f = NULL;

    /* Members without ".npy" keep their name; trailing bytes are ignored. */
    raw_member ok[] = {{"plain", a, a_len, 0}, {"x.npy", t, t_len, 1}, {"y.npy", t, t_len, 0}};
    b = build_zip(ok, 3, &n);
    CHECK_OK(try_memory(b, n, &err));
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    CHECK(f && cairn_file_count(f) == 3);
    CHECK_OK(cairn_tensor_find(f, "plain", NULL, NULL, &err));
    CHECK_OK(cairn_tensor_find(f, "x", NULL, NULL, &err));
    cairn_file_close(f);
    free(b);

    static const struct { const char *name; const char *other; cairn_status want; const char *says; }
        cases[] = {
            {"readme.txt", "a.npy", CAIRN_E_UNSUPPORTED, "not an .npy array"},
            {"a", "a.npy", CAIRN_E_CORRUPT, "both hold tensor 'a'"},
            {".npy", "b.npy", CAIRN_E_UNSUPPORTED, "empty name"},
            {"\xff\xfe.npy", "b.npy", CAIRN_E_UNSUPPORTED, "UTF-8"},
        };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int text = strcmp(cases[i].name, "readme.txt") == 0;
        raw_member ms[2] = {{cases[i].name, text ? "hello" : (const char *)a, text ? 5 : a_len, 0},
                            {cases[i].other, a, a_len, 1}};
        b = build_zip(ms, 2, &n);
        cairn_status st = try_memory(b, n, &err);
        CHECK_ST(st, cases[i].want);
        CHECK(strstr(err.message, cases[i].says) != NULL && named(&err, "member '"));
        if (st != cases[i].want || getenv("CAIRN_TEST_VERBOSE"))
            fprintf(stderr, "  %s: %s\n", cases[i].name, err.message);
        free(b);
    }
    char *long_name = malloc(5001);
    memset(long_name, 'n', 4996);
    memcpy(long_name + 4996, ".npy", 5);
    raw_member lm[1] = {{long_name, a, a_len, 0}};
    b = build_zip(lm, 1, &n);
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_LIMIT);
    free(b);
    free(long_name);

    /* Archives that are not .npz: refused by detection, or when forced. */
    raw_member notes[1] = {{"notes.txt", "hello", 5, 0}};
    raw_member torch[2] = {{"archive/data.pkl", "\x80\x02}q\x00.", 6, 0}, {"x.npy", a, a_len, 0}};
    b = build_zip(notes, 1, &n);
    CHECK_ST(cairn_file_open_memory(b, n, NULL, &f, &err), CAIRN_E_FORMAT);
    CHECK(strstr(err.message, "not an .npz") != NULL);
    cairn_open_opts forced = {.struct_size = sizeof forced, .format = CAIRN_FORMAT_NPZ};
    CHECK_ST(cairn_file_open_memory(b, n, &forced, &f, &err), CAIRN_E_UNSUPPORTED);
    free(b);
    /* A data.pkl makes it a PyTorch file, whatever else it holds (an empty dict here). */
    b = build_zip(torch, 2, &n);
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    cairn_file_info fi;
    CHECK(f && cairn_file_get_info(f, &fi, &err) == CAIRN_OK && fi.format == CAIRN_FORMAT_TORCH);
    CHECK(cairn_file_count(f) == 0);
    cairn_file_close(f);
    free(b);
    free(a);
    free(t);
}

/* npy rules inside members, stored and deflated. */
static void test_member_headers(void)
{
    static const char *dicts[] = {
        "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
        "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,), }",
    };
    static const cairn_status want[] = {CAIRN_E_UNSUPPORTED, CAIRN_E_CORRUPT, CAIRN_E_LIMIT,
                                        CAIRN_E_CORRUPT};
    cairn_error err = {0};
    for (size_t i = 0; i < 4; i++) {
        uint8_t img[256];
        size_t dlen = strlen(dicts[i]), hlen = 118;
        memcpy(img, "\x93NUMPY\x01\x00", 8);
        img[8] = (uint8_t)hlen;
        img[9] = 0;
        memset(img + 10, ' ', hlen);
        memcpy(img + 10, dicts[i], dlen);
        img[10 + hlen - 1] = '\n';
        memset(img + 128, 7, 16);
        for (int deflate = 0; deflate < 2; deflate++) {
            raw_member m[1] = {{"bad.npy", img, 144, deflate}};
            size_t n;
            uint8_t *b = build_zip(m, 1, &n);
            CHECK_ST(try_memory(b, n, &err), want[i]);
            CHECK(named(&err, "member 'bad.npy'"));
            if (getenv("CAIRN_TEST_VERBOSE"))
                fprintf(stderr, "  %s\n", err.message);
            free(b);
        }
    }
}

/* A deflated member whose stream is longer than its declared size: the
 * payload fits, so it opens, but no read gets past the declared size. */
static void test_deflate_sizes(void)
{
    cairn_error err = {0};
    float v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (float)i;
    uint64_t dims[1] = {64};
    size_t len;
    uint8_t *img = npy_image(CAIRN_F32, 1, dims, v, 100, &len);
    raw_member m[1] = {{"v.npy", img, len, 1}};
    size_t n;
    uint8_t *b = build_zip(m, 1, &n);
    size_t cd = cairn__le32(b + n - 22 + 16);
    for (int delta = -60; delta <= 60; delta += 120) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        cairn__put32(c + cd + 24, (uint32_t)((int)len + delta));
        cairn_file *f = NULL;
        CHECK_OK(cairn_file_open_memory(c, n, NULL, &f, &err));
        float got[64];
        CHECK_ST(cairn_tensor_read(f, 0, CAIRN_F32, got, sizeof got, 0, &err), CAIRN_E_CORRUPT);
        CHECK(strstr(err.message, delta < 0 ? "more than" : "ends after") && named(&err, "member 'v.npy'"));
        CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_CORRUPT);
        cairn_file_close(f);
        free(c);
    }
    free(b);
    free(img);
}

/* Damaged payload bytes: only the CRC notices, and only when asked. */
static void test_checksums(void)
{
    cairn_error err = {0};
    cairn_write_opts mo = wopts(0, CAIRN_FORMAT_NPZ, 0);
    cairn_writer *w = NULL;
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = i * 0.5;
    uint64_t dims[1] = {100};
    void *mem = NULL;
    size_t n = 0;
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(cairn_writer_add(w, "v", CAIRN_F64, 1, dims, v, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &n, &err));
    cairn_file *f = NULL;
    cairn_tensor_info in;
    CHECK_OK(cairn_file_open_memory(mem, n, NULL, &f, &err));
    CHECK_OK(cairn_tensor_info_at(f, 0, &in, &err));
    cairn_file_close(f);
    ((uint8_t *)mem)[in.offset + 17] ^= 0x40;
    double got[100];
    CHECK_OK(cairn_file_open_memory(mem, n, NULL, &f, &err));
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_F64, got, sizeof got, 0, &err));
    CHECK_ST(cairn_tensor_read(f, 0, CAIRN_F64, got, sizeof got, CAIRN_READ_VERIFY, &err),
             CAIRN_E_CHECKSUM);
    CHECK(named(&err, "member 'v.npy'"));
    CHECK_ST(cairn_tensor_read(f, 0, CAIRN_F32, got, 400, CAIRN_READ_VERIFY, &err),
             CAIRN_E_CHECKSUM);
    CHECK_ST(cairn_tensor_verify(f, 0, &err), CAIRN_E_CHECKSUM);
    CHECK_ST(cairn_file_verify(f, &err), CAIRN_E_CHECKSUM);
    cairn_file_close(f);
    static const cairn_open_opts verify = {.struct_size = sizeof verify, .flags = CAIRN_OPEN_VERIFY};
    CHECK_ST(cairn_file_open_memory(mem, n, &verify, &f, &err), CAIRN_E_CHECKSUM);
    cairn_free(mem);
}

static int acceptable(cairn_status st)
{
    return st == CAIRN_OK || st == CAIRN_E_CORRUPT || st == CAIRN_E_UNSUPPORTED ||
           st == CAIRN_E_LIMIT || st == CAIRN_E_CHECKSUM || st == CAIRN_E_FORMAT;
}

static uint8_t *small_npz(int compressed, size_t *n)
{
    cairn_error err = {0};
    cairn_write_opts mo = wopts(compressed ? CAIRN_WRITE_COMPRESS : 0, CAIRN_FORMAT_NPZ, 8);
    cairn_writer *w = NULL;
    int16_t a[12] = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12};
    uint64_t dims[2] = {3, 4};
    void *mem = NULL;
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(cairn_writer_add(w, "w", CAIRN_I16, 2, dims, a, &err));
    CHECK_OK(cairn_writer_add(w, "s", CAIRN_F64, 0, NULL, &(double){2.5}, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, n, &err));
    return mem;
}

/* Every truncation fails; random damage fails cleanly or still reads. */
static void test_mutations(void)
{
    cairn_error err = {0};
    int cases = 0;
    for (int compressed = 0; compressed < 2; compressed++) {
        size_t n;
        uint8_t *base = small_npz(compressed, &n);
        CHECK_OK(try_memory(base, n, &err));
        for (size_t len = 0; len < n; len++, cases++) {
            uint8_t *cut = malloc(len ? len : 1);
            memcpy(cut, base, len);
            cairn_status st = try_memory(cut, len, &err);
            CHECK(st == (len < 4 ? CAIRN_E_FORMAT : CAIRN_E_CORRUPT));
            if (len >= 4)
                CHECK(named(&err, NULL));
            free(cut);
        }
        uint64_t seed = 7 + (uint64_t)compressed;
        for (int round = 0; round < 10000; round++, cases++) {
            uint8_t *b = malloc(n);
            memcpy(b, base, n);
            int flips = 1 + (int)(tu_rand(&seed) % 3);
            for (int k = 0; k < flips; k++)
                b[tu_rand(&seed) % n] = (uint8_t)tu_rand(&seed);
            cairn_status st = try_memory(b, n, &err);
            CHECK(acceptable(st));
            if (st != CAIRN_OK && st != CAIRN_E_FORMAT)
                CHECK(named(&err, NULL));
            free(b);
        }
        free(base);
    }
    fprintf(stderr, "mutations: %d cases\n", cases);
}

/* Reads of one cairn_file from several threads (deflated members inflate
 * per call, with no shared state). */
typedef struct thread_arg {
    const cairn_file *f;
    int bad;
} thread_arg;

static void *reader_thread(void *p)
{
    thread_arg *a = p;
    cairn_error err = {0};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < N_DTYPES * N_SHAPES; i++) {
            uint64_t idx;
            cairn_tensor_info in;
            uint8_t *got = NULL;
            if (cairn_tensor_find(a->f, rt[i].name, &idx, NULL, &err) != CAIRN_OK ||
                read_tensor(a->f, idx, (unsigned)round & 1u, &in, &got, &err) != CAIRN_OK ||
                memcmp(got, rt[i].data, rt[i].bytes) != 0)
                a->bad++;
            free(got);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    cairn_error err = {0};
    cairn_write_opts mo = wopts(CAIRN_WRITE_COMPRESS, CAIRN_FORMAT_NPZ, 0);
    cairn_writer *w = NULL;
    void *mem = NULL;
    size_t n = 0;
    CHECK_OK(cairn_writer_open_memory(&mo, &w, &err));
    CHECK_OK(write_all(w, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &n, &err));
    cairn_file *f = NULL;
    CHECK_OK(cairn_file_open_memory(mem, n, NULL, &f, &err));
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].f = f;
        args[i].bad = 0;
        pthread_create(&th[i], NULL, reader_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    cairn_file_close(f);
    cairn_free(mem);
}

int main(void)
{
    tmp = tu_tmpdir("test_npz");
    make_tensors();
    test_round_trips();
    test_names();
    test_writer_refusals();
    test_members();
    test_member_headers();
    test_deflate_sizes();
    test_checksums();
    test_mutations();
    test_threads();
    test_corpus();
    test_numpy();
    for (size_t i = 0; i < N_DTYPES * N_SHAPES; i++)
        free(rt[i].data);
    tu_remove_tmpdir_if_passed(tmp);
    TEST_MAIN_END();
}
