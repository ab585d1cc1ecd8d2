/* test_npy.c -- the .npy reader and writer: round trips, numpy cross-checks,
 * the public corpus and hostile inputs. */
#include "corpus.h"
#include "testutil.h"

#include <cairn.h>

/* ------------------------------------------------------------- helpers */

static const cairn_dtype npy_dtypes[] = {
    CAIRN_BOOL, CAIRN_I8,  CAIRN_I16, CAIRN_I32, CAIRN_I64, CAIRN_U8,  CAIRN_U16,
    CAIRN_U32,  CAIRN_U64, CAIRN_F16, CAIRN_F32, CAIRN_F64, CAIRN_C64, CAIRN_C128,
};
#define N_DTYPES (sizeof npy_dtypes / sizeof npy_dtypes[0])

static const char *tmp;
static const cairn_write_opts no_sync = {.struct_size = sizeof(cairn_write_opts),
                                         .flags = CAIRN_WRITE_NO_SYNC};
static const cairn_write_opts npy_mem = {.struct_size = sizeof(cairn_write_opts),
                                         .format = CAIRN_FORMAT_NPY};
static const cairn_open_opts no_mmap = {.struct_size = sizeof(cairn_open_opts),
                                        .flags = CAIRN_OPEN_NO_MMAP};

/* Opens f's only tensor and reads it as stored into a new buffer. */
static cairn_status read_only_tensor(cairn_file *f, cairn_tensor_info *info, uint8_t **out,
                                     cairn_error *err)
{
    *out = NULL;
    cairn_status st = cairn_tensor_info_at(f, 0, info, err);
    if (st != CAIRN_OK)
        return st;
    uint8_t *buf = malloc(info->raw_size ? (size_t)info->raw_size : 1);
    if (!buf)
        return CAIRN_E_NOMEM;
    st = cairn_tensor_read(f, 0, info->dtype, buf, (size_t)info->raw_size, 0, err);
    if (st != CAIRN_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return CAIRN_OK;
}

/* Opens bytes in memory and reads the tensor; the status of the first failure. */
static cairn_status try_memory(const void *buf, size_t n, cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_tensor_info info;
    uint8_t *data = NULL;
    cairn_status st = cairn_file_open_memory(buf, n, NULL, &f, err);
    if (st == CAIRN_OK)
        st = read_only_tensor(f, &info, &data, err);
    if (st == CAIRN_OK)
        st = cairn_file_verify(f, err);
    free(data);
    cairn_file_close(f);
    return st;
}

/* ------------------------------------------------------ 1. round trips */

static void check_info(const cairn_tensor_info *in, cairn_dtype dtype, uint32_t rank,
                       const uint64_t *dims)
{
    CHECK(strcmp(in->name, "array") == 0 && in->name_len == 5);
    CHECK(in->dtype == dtype);
    CHECK(in->rank == rank);
    for (uint32_t d = 0; d < CAIRN_MAX_RANK; d++)
        CHECK(in->dims[d] == (d < rank ? dims[d] : 0));
    CHECK(in->count == tu_elem_count(rank, dims));
    CHECK(in->raw_size == in->count * cairn_dtype_size(dtype));
    CHECK(in->stored_size == in->raw_size);
    CHECK(in->offset % 64 == 0 && in->alignment == (in->offset & (~in->offset + 1)));
    CHECK(in->codec == CAIRN_CODEC_NONE && !in->has_checksum);
}

static void check_read_back(const char *path, cairn_dtype dtype, uint32_t rank,
                            const uint64_t *dims, const uint8_t *data, size_t bytes)
{
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_tensor_info in;
    uint8_t *got = NULL;
    const void *view = NULL;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f) {
        fprintf(stderr, "  %s\n", err.message);
        return;
    }
    CHECK_OK(read_only_tensor(f, &in, &got, &err));
    check_info(&in, dtype, rank, dims);
    CHECK(in.zero_copy);
    CHECK(got && memcmp(got, data, bytes) == 0);
    CHECK_OK(cairn_tensor_data(f, 0, &view, &err));
    CHECK(view && memcmp(view, data, bytes) == 0);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_NPY && fi.version_major == 1 && fi.version_minor == 0);
    CHECK(fi.tensor_count == 1 && fi.payload_bytes == bytes && fi.alignment == in.alignment);
    CHECK(fi.file_size == in.offset + bytes && !fi.has_metadata);
    CHECK_OK(cairn_file_verify(f, &err));
    uint64_t idx = 9;
    CHECK_OK(cairn_tensor_find(f, "array", &idx, NULL, &err));
    CHECK(idx == 0);
    CHECK_ST(cairn_tensor_find(f, "weights", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    cairn_value *meta = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    CHECK(meta && cairn_value_get_type(meta) == CAIRN_VALUE_MAP && cairn_value_count(meta) == 0);
    cairn_value_free(meta);
    free(got);
    cairn_file_close(f);

    /* pread only: no zero-copy view, same bytes. */
    CHECK_OK(cairn_file_open(path, &no_mmap, &f, &err));
    if (f) {
        CHECK_OK(read_only_tensor(f, &in, &got, &err));
        CHECK(!in.zero_copy && got && memcmp(got, data, bytes) == 0);
        CHECK_ST(cairn_tensor_data(f, 0, &view, &err), CAIRN_E_UNSUPPORTED);
        free(got);
        cairn_file_close(f);
    }
}

static void round_trip(cairn_dtype dtype, uint32_t rank, const uint64_t *dims, uint64_t seed)
{
    char path[4200];
    size_t bytes = (size_t)(tu_elem_count(rank, dims) * cairn_dtype_size(dtype));
    uint8_t *data = malloc(bytes ? bytes : 1);
    tu_fill(data, bytes, dtype, seed);
    snprintf(path, sizeof path, "%s/rt_%s_%u.npy", tmp, cairn_dtype_name(dtype), rank);

    tu_write_weights(path, &no_sync, dtype, rank, dims, data);
    check_read_back(path, dtype, rank, dims, data, bytes);
    size_t mem_len = 0;
    void *mem = tu_memory_save_matches(path, &npy_mem, dtype, rank, dims, data, &mem_len);
    cairn_free(mem);
    free(data);
}

static void test_round_trips(void)
{
    static const uint64_t shapes[][CAIRN_MAX_RANK] = {
        {0}, {0, 3}, {2, 1, 3, 1, 2, 2, 1, 3}, {1000000}, {3, 4}, {7}};
    static const uint32_t ranks[] = {0, 2, 8, 1, 2, 1};
    uint64_t seed = 1;
    for (size_t d = 0; d < N_DTYPES; d++)
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++)
            round_trip(npy_dtypes[d], ranks[s], shapes[s], seed++);
}

static void test_writer_refusals(void)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[1] = {2};
    uint16_t two[2] = {1, 2};
    static const cairn_dtype refused[] = {CAIRN_BF16, CAIRN_F8_E4M3, CAIRN_F8_E5M2};
    for (size_t i = 0; i < 3; i++) {
        CHECK_OK(cairn_writer_open_memory(&npy_mem, &w, &err));
        CHECK_ST(cairn_writer_add(w, "x", refused[i], 1, dims, two, &err), CAIRN_E_UNSUPPORTED);
        CHECK(strstr(err.message, "NumPy has no descr") != NULL);
        cairn_writer_abort(w);
    }

    CHECK_OK(cairn_writer_open_memory(&npy_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U16, 1, dims, two, &err));
    CHECK_ST(cairn_writer_add(w, "y", CAIRN_U16, 1, dims, two, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "exactly one tensor") != NULL);
    cairn_writer_abort(w);

    CHECK_OK(cairn_writer_open_memory(&npy_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U16, 1, dims, two, &err));
    CHECK_ST(cairn_writer_add_alias(w, "y", "x", &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);

    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&npy_mem, &w, &err));
    CHECK_ST(cairn_writer_commit_memory(w, &mem, &len, &err), CAIRN_E_STATE);
    CHECK(strstr(err.message, "none was added") != NULL && mem == NULL);

    /* An empty metadata map is accepted (there is nothing to lose); any
     * content is refused rather than silently dropped. */
    cairn_value *tree = cairn_value_map();
    CHECK_OK(cairn_writer_open_memory(&npy_mem, &w, &err));
    CHECK_OK(cairn_writer_set_metadata(w, tree, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_U16, 1, dims, two, &err));
    CHECK_OK(cairn_value_set(tree, "epoch", cairn_value_int(3), &err));
    CHECK_ST(cairn_writer_set_metadata(w, tree, &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
    cairn_value_free(tree);

    /* The path writer leaves nothing behind after a failed commit. */
    char path[4200];
    snprintf(path, sizeof path, "%s/never.npy", tmp);
    CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_STATE);
    CHECK(access(path, F_OK) != 0);
}

/* numpy's exact header bytes for a few shapes (checked against np.save by
 * hand; the numpy section below checks every written file). */
static void test_writer_bytes(void)
{
    static const char want[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': "
                               "False, 'shape': (3, 4), }";
    cairn_error err = {0};
    cairn_writer *w = NULL;
    uint64_t dims[2] = {3, 4};
    float data[12] = {0};
    void *mem = NULL;
    size_t len = 0;
    CHECK_OK(cairn_writer_open_memory(&npy_mem, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 2, dims, data, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &len, &err));
    CHECK(len == 176 && memcmp(mem, want, sizeof want - 1) == 0);
    const uint8_t *p = mem;
    for (size_t i = sizeof want - 1; i < 127; i++)
        CHECK(p[i] == ' ');
    CHECK(p[127] == '\n');
    cairn_free(mem);
}

/* ---------------------------------------------------- 2. numpy checks */

static const char gen_py[] =
    "import sys, io, numpy as np\n"
    "from numpy.lib import format as fmt\n"
    "out = sys.argv[1]\n"
    "rng = np.random.default_rng(1234)\n"
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
    "def emit(name, arr, version=None, fortran=False):\n"
    "    if fortran: arr = np.asfortranarray(arr)\n"
    "    with open(out + '/' + name + '.npy', 'wb') as f:\n"
    "        if version is None: np.save(f, arr)\n"
    "        else: fmt.write_array(f, arr, version=version)\n"
    "    le = arr.astype(arr.dtype.newbyteorder('<'))\n"
    "    open(out + '/' + name + '.bin', 'wb').write(le.tobytes(order='C'))\n"
    "    isf = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)\n"
    "    v = version[0] if version else 1\n"
    "    man.write('%s %s %d %d %d %s\\n' % (name, names[(arr.dtype.kind, arr.dtype.itemsize)],\n"
    "              v, isf, arr.ndim, ' '.join(str(d) for d in arr.shape)))\n"
    "for code in ['b1','i1','u1','i2','i4','i8','u2','u4','u8','f2','f4','f8','c8','c16']:\n"
    "    for order in ('<', '>'):\n"
    "        emit('plain_%s%s' % ('le' if order == '<' else 'be', code), values(order + code, (3, 5)))\n"
    "    emit('scalar_' + code, values('<' + code, ()))\n"
    "    emit('fortran2_' + code, values('<' + code, (4, 3)), fortran=True)\n"
    "    emit('fortran3be_' + code, values('>' + code, (2, 3, 4)), fortran=True)\n"
    "emit('empty_0x3', values('<f4', (0, 3)))\n"
    "emit('empty_2x0x5', values('<i2', (2, 0, 5)))\n"
    "emit('fortran_1x6', values('<f8', (1, 6)), fortran=True)\n"
    "emit('rank8', values('<f4', (2, 1, 3, 1, 2, 2, 1, 3)))\n"
    "emit('rank8_fortran', values('>i4', (2, 3, 1, 2, 2, 1, 2, 3)), fortran=True)\n"
    "emit('v2_i4', values('<i4', (3, 5)), version=(2, 0))\n"
    "emit('v2_fortran_be', values('>f8', (3, 4)), version=(2, 0), fortran=True)\n"
    "emit('v3_f4', values('<f4', (2, 2)), version=(3, 0))\n"
    "emit('v3_scalar', values('<c8', ()), version=(3, 0))\n"
    "emit('wide_u2', values('<u2', (100, 1000)))\n";

static const char check_py[] =
    "import sys, io, numpy as np\n"
    "d = sys.argv[1]\n"
    "bad = 0\n"
    "n = 0\n"
    "for line in open(d + '/cairn_manifest.txt'):\n"
    "    name, descr, *dims = line.split()\n"
    "    n += 1\n"
    "    path = d + '/' + name + '.npy'\n"
    "    a = np.load(path)\n"
    "    raw = open(d + '/' + name + '.bin', 'rb').read()\n"
    "    b = io.BytesIO()\n"
    "    np.save(b, a)\n"
    "    probs = []\n"
    "    if a.dtype.str != descr: probs.append('dtype %s' % a.dtype.str)\n"
    "    if a.shape != tuple(int(x) for x in dims): probs.append('shape %r' % (a.shape,))\n"
    "    if a.tobytes() != raw: probs.append('values differ')\n"
    "    if b.getvalue() != open(path, 'rb').read(): probs.append('np.save bytes differ')\n"
    "    if probs:\n"
    "        bad += 1\n"
    "        print(name, ', '.join(probs))\n"
    "print('numpy checked %d cairn files, %d bad' % (n, bad))\n"
    "sys.exit(1 if bad else 0)\n";

/* One line of numpy's manifest (ctx: the directory); counts the file. */
static int check_numpy_file(void *ctx, char *line)
{
    const char *dir = ctx;
    char name[256], dtname[16], path[4400];
    unsigned version, fortran, rank;
    uint64_t dims[CAIRN_MAX_RANK] = {0};
    int used = 0;
    if (sscanf(line, "%255s %15s %u %u %u%n", name, dtname, &version, &fortran, &rank, &used) != 5 ||
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
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    uint8_t *want = tu_read_whole(path, &want_len);
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    cairn_error err = {0};
    for (int pass = 0; pass < 2; pass++) {
        cairn_file *f = NULL;
        cairn_tensor_info in;
        uint8_t *got = NULL;
        cairn_status st = cairn_file_open(path, pass ? &no_mmap : NULL, &f, &err);
        if (st == CAIRN_OK)
            st = read_only_tensor(f, &in, &got, &err);
        CHECK_OK(st);
        if (st != CAIRN_OK) {
            fprintf(stderr, "  %s: %s\n", name, err.message);
            cairn_file_close(f);
            break;
        }
        cairn_file_info fi;
        CHECK_OK(cairn_file_get_info(f, &fi, &err));
        CHECK(fi.version_major == version);
        CHECK(in.dtype == cairn_dtype_from_name(dtname) && in.rank == rank);
        CHECK(memcmp(in.dims, dims, sizeof dims) == 0);
        int same = want && in.raw_size == want_len && memcmp(got, want, want_len) == 0;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  %s: bytes differ from numpy's\n", name);
        int le = strstr(name, "be") == NULL || cairn_dtype_size(in.dtype) == 1;
        CHECK(in.zero_copy == (!pass && le && (!fortran || strcmp(name, "fortran_1x6") == 0)));
        free(got);
        cairn_file_close(f);
    }
    free(want);
    return 1;
}

static void numpy_reads_cairn(const char *dir, const char *check_path)
{
    static const struct { cairn_dtype dtype; const char *descr; } cases[] = {
        {CAIRN_BOOL, "|b1"}, {CAIRN_I8, "|i1"},   {CAIRN_U8, "|u1"},   {CAIRN_I16, "<i2"},
        {CAIRN_I32, "<i4"},  {CAIRN_I64, "<i8"},  {CAIRN_U16, "<u2"},  {CAIRN_U32, "<u4"},
        {CAIRN_U64, "<u8"},  {CAIRN_F16, "<f2"},  {CAIRN_F32, "<f4"},  {CAIRN_F64, "<f8"},
        {CAIRN_C64, "<c8"},  {CAIRN_C128, "<c16"}};
    static const uint64_t shapes[][CAIRN_MAX_RANK] = {
        {0}, {5}, {3, 4}, {0, 3}, {2, 1, 3, 1, 2, 2, 1, 3}, {123456}, {9999999999ull, 0}};
    static const uint32_t ranks[] = {0, 1, 2, 2, 8, 1, 2};
    char path[4400];
    snprintf(path, sizeof path, "%s/cairn_manifest.txt", dir);
    FILE *man = fopen(path, "w");
    uint64_t seed = 99;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
            cairn_error err = {0};
            cairn_writer *w = NULL;
            size_t bytes = (size_t)(tu_elem_count(ranks[s], shapes[s]) *
                                    cairn_dtype_size(cases[c].dtype));
            uint8_t *data = malloc(bytes ? bytes : 1);
            tu_fill(data, bytes, cases[c].dtype, seed++);
            snprintf(path, sizeof path, "%s/cw_%s_%zu.bin", dir, cairn_dtype_name(cases[c].dtype), s);
            tu_write_file(path, data, bytes);
            snprintf(path, sizeof path, "%s/cw_%s_%zu.npy", dir, cairn_dtype_name(cases[c].dtype), s);
            CHECK_OK(cairn_writer_open_path(path, &no_sync, &w, &err));
            CHECK_OK(cairn_writer_add(w, "t", cases[c].dtype, ranks[s], shapes[s], data, &err));
            CHECK_OK(cairn_writer_commit(w, &err));
            fprintf(man, "cw_%s_%zu %s", cairn_dtype_name(cases[c].dtype), s, cases[c].descr);
            for (uint32_t d = 0; d < ranks[s]; d++)
                fprintf(man, " %" PRIu64, shapes[s][d]);
            fputc('\n', man);
            free(data);
        }
    }
    fclose(man);
    CHECK(tu_run_python(check_path, dir, NULL) == 0);
}

static void test_numpy(void)
{
    char dir[4200], gen[4300], chk[4300];
    if (!tu_python_imports("numpy", "numpy cross-checks"))
        return;
    snprintf(dir, sizeof dir, "%s/numpy", tmp);
    mkdir(dir, 0777);
    snprintf(gen, sizeof gen, "%s/gen.py", dir);
    snprintf(chk, sizeof chk, "%s/check.py", dir);
    CHECK(tu_write_file(gen, gen_py, sizeof gen_py - 1) == 0);
    CHECK(tu_write_file(chk, check_py, sizeof check_py - 1) == 0);
    CHECK(tu_run_python(gen, dir, NULL) == 0);

    int files = tu_each_line(tu_path(dir, "manifest.txt"), check_numpy_file, dir);
    CHECK(files >= 0); /* the manifest exists */
    CHECK(files >= 70);
    fprintf(stderr, "cairn checked %d numpy files\n", files);
    numpy_reads_cairn(dir, chk);
}

/* ------------------------------------------------------- 3. the corpus */

static void check_corpus_ok(const char *npy_path, json_t *root)
{
    json_t *t = json_object_get(json_object_get(root, "tensors"), "array");
    json_t *vals = json_object_get(root, "values");
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_tensor_info in;
    uint8_t *got = NULL;
    cairn_status st = cairn_file_open(npy_path, NULL, &f, &err);
    if (st == CAIRN_OK)
        st = read_only_tensor(f, &in, &got, &err);
    CHECK_OK(st);
    if (st != CAIRN_OK || !t) {
        fprintf(stderr, "  %s: %s\n", npy_path, err.message);
        cairn_file_close(f);
        return;
    }
    tu_check_expected_tensor(tmp, npy_path, &in, got, t);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    json_t *ver = json_object_get(vals, "npy_version");
    if (ver)
        CHECK(fi.version_major == json_integer_value(json_array_get(ver, 0)));
    json_t *off = json_object_get(vals, "data_offset");
    if (off)
        CHECK(in.offset == (uint64_t)json_integer_value(off));
    CHECK_OK(cairn_file_verify(f, &err));
    free(got);
    cairn_file_close(f);
}

static void check_corpus_reject(const char *npy_path, json_t *root)
{
    const char *kind = json_string_value(json_object_get(json_object_get(root, "check"), "kind"));
    cairn_status want = kind && strcmp(kind, "npy_object") == 0 ? CAIRN_E_UNSUPPORTED
                                                                : CAIRN_E_CORRUPT;
    size_t n = 0;
    uint8_t *buf = tu_read_whole(npy_path, &n);
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_tensor_info in;
    uint8_t *got = NULL;
    cairn_status st = cairn_file_open(npy_path, NULL, &f, &err);
    if (st == CAIRN_OK)
        st = read_only_tensor(f, &in, &got, &err);
    CHECK_ST(st, want);
    fprintf(stderr, "  rejected as expected: %s\n", err.message);
    free(got);
    cairn_file_close(f);
    CHECK_ST(try_memory(buf, n, &err), want);
    free(buf);
}

/* One corpus file (ctx: the counts of files read and rejected). */
static int check_corpus_file(void *ctx, const char *npath, json_t *root)
{
    int *counts = ctx;
    const char *expect = json_string_value(json_object_get(root, "expect"));
    if (expect && strcmp(expect, "ok") == 0) {
        check_corpus_ok(npath, root);
        counts[0]++;
    } else {
        check_corpus_reject(npath, root);
        counts[1]++;
    }
    return 1;
}

static void test_corpus(void)
{
    char dir[4200];
    if (!tu_vectors_dir("npy", dir, sizeof dir)) {
        fprintf(stderr, "vectors absent: skipped\n");
        return;
    }
    int counts[2] = {0, 0};
    tu_each_expect(dir, "", ".npy.expect.json", check_corpus_file, counts);
    tu_vectors_dir("skorch", dir, sizeof dir);
    tu_each_expect(dir, "", ".npy.expect.json", check_corpus_file, counts);
    tu_vectors_dir("malicious", dir, sizeof dir);
    tu_each_expect(dir, "npy_", ".npy.expect.json", check_corpus_file, counts);
    int ok = counts[0], rejected = counts[1];
    fprintf(stderr, "corpus: %d npy files read, %d rejected\n", ok, rejected);
    CHECK(ok >= 21 && rejected >= 3);
}

/* ------------------------------------------------------ 4. hostile input */

/* An npy file around `dict`, padded as numpy pads, then `payload` bytes. */
static uint8_t *make_npy(int major, const char *dict, size_t payload, size_t *out_len)
{
    size_t prefix = major == 1 ? 10 : 12, dlen = strlen(dict);
    size_t hlen = dlen + 1, pad = 64 - (prefix + hlen) % 64;
    size_t total = prefix + hlen + pad + payload;
    uint8_t *b = malloc(total);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    size_t h = hlen + pad;
    for (size_t i = 0; i < prefix - 8; i++)
        b[8 + i] = (uint8_t)(h >> (8 * i));
    memcpy(b + prefix, dict, dlen);
    memset(b + prefix + dlen, ' ', pad);
    b[prefix + dlen + pad] = '\n';
    for (size_t i = 0; i < payload; i++)
        b[prefix + h + i] = (uint8_t)(i * 7);
    *out_len = total;
    return b;
}

typedef struct header_case {
    const char *dict;
    size_t payload;
    cairn_status want;
    int major; /* 0 means 1 */
} header_case;

#define D(descr, fo, shape) "{'descr': " descr ", 'fortran_order': " fo ", 'shape': " shape ", }"

static const header_case header_cases[] = {
    /* accepted */
    {D("'<f4'", "False", "(2, 3)"), 24, CAIRN_OK, 0},
    {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}", 24, CAIRN_OK, 0},
    {"{'shape': (2, 3), 'fortran_order': True, 'descr': '<f4'}", 24, CAIRN_OK, 0},
    {" { 'descr' : '<f4' ,\n 'fortran_order' : False ,\t'shape' : ( 2 , 3 , ) , } ", 24, CAIRN_OK, 0},
    {D("'=f4'", "False", "(2, 3)"), 24, CAIRN_OK, 0},
    {D("'|f4'", "False", "(2, 3)"), 24, CAIRN_OK, 0},
    {D("'f4'", "False", "(2, 3)"), 24, CAIRN_OK, 0},
    {D("'>u1'", "False", "(6,)"), 6, CAIRN_OK, 0},
    {D("'<f4'", "False", "(2L, 3L)"), 24, CAIRN_OK, 0},
    {D("'<f4'", "False", "()"), 4, CAIRN_OK, 0},
    {D("'<f4'", "False", "(0, 99999999999)"), 0, CAIRN_OK, 0},
    {D("'<f4'", "False", "(2, 3)"), 100, CAIRN_OK, 0}, /* trailing bytes are ignored */
    {D("'<f4'", "False", "(2, 3)"), 24, CAIRN_OK, 2},
    {D("'<f4'", "False", "(2, 3)"), 24, CAIRN_OK, 3},
    {D("'<f4'", "False", "(00,)"), 0, CAIRN_OK, 0},
    /* refused as corrupt */
    {D("'<f4'", "False", "(2L, 3L)"), 24, CAIRN_E_CORRUPT, 3}, /* numpy filters 'L' up to v2 only */
    {D("'<f4'", "False", "(2, 3)"), 23, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, }", 24, CAIRN_E_CORRUPT, 0},
    {"{'fortran_order': False, 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1, }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {"{}", 0, CAIRN_E_CORRUPT, 0},
    {"", 0, CAIRN_E_CORRUPT, 0},
    {"[1, 2]", 0, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) 'x', }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }}", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3),, }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {"{descr: '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4", 0, CAIRN_E_CORRUPT, 0},
    {"{'descr': '<f4\n', 'fortran_order': False, 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {"{'descr': \"<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, CAIRN_E_CORRUPT, 0},
    {D("'<f\\x34'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<q4'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("''", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4x'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f-4'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f99999999999'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("<f4", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("4", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "0", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "true", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "Falsey", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "'False'", "(2, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(-1, 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(99999999999999999999999,)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(18446744073709551616,)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(4294967296, 4294967296)"), 24, CAIRN_E_LIMIT, 0},
    {D("'<f4'", "False", "(4611686018427387904,)"), 24, CAIRN_E_LIMIT, 0},
    /* one rule with the writers: a zero dimension does not hide the others */
    {D("'<f4'", "False", "(18446744073709551615, 18446744073709551615, 0)"), 24, CAIRN_E_LIMIT, 0},
    {D("'<f4'", "False", "(0, 4611686018427387904)"), 24, CAIRN_E_LIMIT, 0},
    {D("'<f4'", "False", "(0, 1152921504606846976)"), 24, CAIRN_OK, 0},
    {D("'<f4'", "False", "(1099511627776,)"), 16, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "((2, 3),)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(2, (3,))"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(6)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "[2, 3]"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(,)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(2 3)"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(2, 3"), 24, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(03,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(0x3,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(3.0,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(3e0,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(3_0,)"), 120, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(3l,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(3LL,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f4'", "False", "(+3,)"), 12, CAIRN_E_CORRUPT, 0},
    {D("'<f\xff'", "False", "(2, 3)"), 24, CAIRN_E_CORRUPT, 3},
    {D("'<f4'", "False", "(2, 3)") "\xc3", 24, CAIRN_E_CORRUPT, 3},
    /* refused as unsupported */
    {D("'|O'", "False", "(2,)"), 16, CAIRN_E_UNSUPPORTED, 0},
    {D("'<f16'", "False", "(2,)"), 32, CAIRN_E_UNSUPPORTED, 0},
    {D("'<c32'", "False", "(2,)"), 64, CAIRN_E_UNSUPPORTED, 0},
    {D("'<f3'", "False", "(2,)"), 6, CAIRN_E_UNSUPPORTED, 0},
    {D("'|b2'", "False", "(2,)"), 4, CAIRN_E_UNSUPPORTED, 0},
    {D("'|S5'", "False", "(2,)"), 10, CAIRN_E_UNSUPPORTED, 0},
    {D("'|a5'", "False", "(2,)"), 10, CAIRN_E_UNSUPPORTED, 0},
    {D("'<U10'", "False", "(2,)"), 80, CAIRN_E_UNSUPPORTED, 0},
    {D("'<M8[ns]'", "False", "(2,)"), 16, CAIRN_E_UNSUPPORTED, 0},
    {D("'<m8[s]'", "False", "(2,)"), 16, CAIRN_E_UNSUPPORTED, 0},
    {D("'|V2'", "False", "(2,)"), 4, CAIRN_E_UNSUPPORTED, 0},
    {D("[('a', '<f4'), ('b', '<i4')]", "False", "(2,)"), 16, CAIRN_E_UNSUPPORTED, 0},
    {D("('<f4', (2,))", "False", "(2,)"), 16, CAIRN_E_UNSUPPORTED, 0},
    {D("'<U100000000000000000000000'", "False", "(2,)"), 16, CAIRN_E_UNSUPPORTED, 0},
    {D("'float32'", "False", "(2,)"), 8, CAIRN_E_CORRUPT, 0},
    {D("'<f4xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'", "False", "(2,)"), 8, CAIRN_E_CORRUPT, 0},
    /* limits */
    {D("'<f4'", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, CAIRN_E_LIMIT, 0},
    {D("'<f4'", "False", "(1, 1, 1, 1, 1, 1, 1, 1)"), 4, CAIRN_OK, 0},
};

static void test_header_cases(void)
{
    for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
        const header_case *c = &header_cases[i];
        size_t n;
        uint8_t *b = make_npy(c->major ? c->major : 1, c->dict, c->payload, &n);
        cairn_error err = {0};
        cairn_status st = try_memory(b, n, &err);
        CHECK_ST(st, c->want);
        if (st != c->want)
            fprintf(stderr, "  case %zu [%s]: %s\n", i, c->dict, err.message);
        if (st != CAIRN_OK)
            CHECK(strncmp(err.message, "<memory>: ", 10) == 0 && strstr(err.message, "offset"));
        free(b);
    }
}

/* Specific readings of accepted odd headers. */
static void test_header_meaning(void)
{
    size_t n;
    cairn_error err = {0};
    cairn_file *f = NULL;
    cairn_tensor_info in;
    /* fortran_order with one non-trivial dim is C order: zero-copy works. */
    uint8_t *b = make_npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 6, 1), }", 24, &n);
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    CHECK_OK(cairn_tensor_info_at(f, 0, &in, &err));
    CHECK(in.zero_copy && in.count == 6 && in.rank == 3);
    cairn_file_close(f);
    free(b);
    /* '>' on a one-byte type swaps nothing. */
    b = make_npy(1, "{'descr': '>i1', 'fortran_order': False, 'shape': (4,), }", 4, &n);
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    CHECK_OK(cairn_tensor_info_at(f, 0, &in, &err));
    CHECK(in.zero_copy && in.dtype == CAIRN_I8);
    cairn_file_close(f);
    free(b);
    /* A big-endian 2-D Fortran array is swapped and transposed. */
    b = make_npy(1, "{'descr': '>u2', 'fortran_order': True, 'shape': (2, 3), }", 12, &n);
    size_t data_at = n - 12;
    for (uint16_t i = 0; i < 6; i++) { /* column-major: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2) */
        uint16_t v = (uint16_t)((i % 2) * 10 + i / 2);
        b[data_at + 2 * i] = (uint8_t)(v >> 8);
        b[data_at + 2 * i + 1] = (uint8_t)v;
    }
    CHECK_OK(cairn_file_open_memory(b, n, NULL, &f, &err));
    uint16_t got[6];
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_U16, got, sizeof got, 0, &err));
    static const uint16_t want[6] = {0, 1, 2, 10, 11, 12};
    CHECK(memcmp(got, want, sizeof want) == 0);
    const void *view;
    CHECK_ST(cairn_tensor_data(f, 0, &view, &err), CAIRN_E_UNSUPPORTED);
    uint32_t wide[6];
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_U32, wide, sizeof wide, 0, &err));
    for (int i = 0; i < 6; i++)
        CHECK(wide[i] == want[i]);
    cairn_file_close(f);
    free(b);
    /* The header's own padding need not be numpy's: no '\n', no spaces. */
    static const char bare[] = "\x93NUMPY\x01\x00\x33\x00{'descr':'<i2','fortran_order':False,"
                               "'shape':(1,),}\x05\x01";
    CHECK(sizeof bare - 1 == 10 + 0x33 + 2);
    CHECK_OK(cairn_file_open_memory(bare, sizeof bare - 1, NULL, &f, &err));
    int16_t one = 0;
    CHECK_OK(cairn_tensor_read(f, 0, CAIRN_I16, &one, sizeof one, 0, &err));
    CHECK(one == 0x0105 && f && cairn_file_count(f) == 1);
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.alignment == 1 && fi.payload_bytes == 2);
    cairn_file_close(f);
}

static void test_preamble(void)
{
    cairn_error err = {0};
    size_t n;
    uint8_t *b = make_npy(1, D("'<f4'", "False", "(2,)"), 8, &n);
    static const struct { uint8_t major, minor; cairn_status want; } versions[] = {
        {0, 0, CAIRN_E_UNSUPPORTED}, {4, 0, CAIRN_E_UNSUPPORTED}, {1, 1, CAIRN_E_UNSUPPORTED},
        {255, 255, CAIRN_E_UNSUPPORTED}};
    for (size_t i = 0; i < 4; i++) {
        b[6] = versions[i].major;
        b[7] = versions[i].minor;
        CHECK_ST(try_memory(b, n, &err), versions[i].want);
    }
    b[6] = 1;
    b[7] = 0;
    b[8] = 0xff; /* header runs past the end */
    b[9] = 0xff;
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "65535") != NULL);
    free(b);

    /* v2/v3: a header length past 1 MiB is a limit, whatever the file size. */
    b = make_npy(2, D("'<f4'", "False", "(2,)"), 8, &n);
    b[8] = 0x01, b[9] = 0x00, b[10] = 0x10, b[11] = 0x00;
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_LIMIT);
    b[10] = 0x00, b[11] = 0x80;
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_LIMIT);
    b[6] = 3;
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_LIMIT);
    b[8] = 0x00, b[9] = 0x00, b[10] = 0x10, b[11] = 0x00; /* exactly 1 MiB: past the end */
    CHECK_ST(try_memory(b, n, &err), CAIRN_E_CORRUPT);
    free(b);

    static const char tiny1[] = "\x93NUMPY\x01\x00";
    static const char tiny2[] = "\x93NUMPY\x02\x00\x00\x00";
    CHECK_ST(try_memory(tiny1, 6, &err), CAIRN_E_CORRUPT);
    CHECK_ST(try_memory(tiny1, 8, &err), CAIRN_E_CORRUPT);
    CHECK_ST(try_memory(tiny2, 10, &err), CAIRN_E_CORRUPT);
    CHECK_ST(try_memory("\x93NUMPX\x01\x00\x00\x00", 10, &err), CAIRN_E_FORMAT);
    cairn_open_opts forced = {.struct_size = sizeof forced, .flags = 0, .format = CAIRN_FORMAT_NPY};
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open_memory("\x89\x43\x41IRN\r\n\0\0\0\0", 12, &forced, &f, &err),
             CAIRN_E_FORMAT);
    CHECK(f == NULL);
}

static int acceptable(cairn_status st)
{
    return st == CAIRN_OK || st == CAIRN_E_CORRUPT || st == CAIRN_E_UNSUPPORTED ||
           st == CAIRN_E_LIMIT || st == CAIRN_E_FORMAT;
}

/* Every truncation of a valid file fails; every single-byte change either
 * still opens and reads or fails with an input error; nothing crashes. */
static void test_mutations(void)
{
    static const char *dicts[] = {
        D("'<f4'", "False", "(3, 4)"), D("'>c8'", "True", "(2, 3, 2)"), D("'|b1'", "False", "()")};
    static const size_t payloads[] = {48, 96, 1};
    static const uint8_t values[] = {0x00, 0x01, 0x20, 0x27, 0x28, 0x29, 0x2c, 0x30, 0x39,
                                     0x3a, 0x4c, 0x7b, 0x7d, 0x7f, 0x80, 0xff};
    cairn_error err = {0};
    int cases = 0;
    for (size_t k = 0; k < 3; k++) {
        for (int major = 1; major <= 3; major++) {
            size_t n;
            uint8_t *b = make_npy(major, dicts[k], payloads[k], &n);
            CHECK_OK(try_memory(b, n, &err));
            for (size_t len = 0; len < n; len++, cases++) {
                uint8_t *cut = malloc(len ? len : 1); /* exact size, so ASan sees overreads */
                memcpy(cut, b, len);
                cairn_status st = try_memory(cut, len, &err);
                CHECK(st == (len < 6 ? CAIRN_E_FORMAT : CAIRN_E_CORRUPT));
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
                    m[at] = (uint8_t)(b[at] ^ 0x01);
                    CHECK(acceptable(try_memory(m, n, &err)));
                    free(m);
                }
            }
            free(b);
        }
    }
    fprintf(stderr, "mutations: %d cases\n", cases);
}

/* The pread path refuses what the mmap path refuses. */
static void test_pread_hostile(void)
{
    char path[4200];
    cairn_error err = {0};
    size_t n;
    uint8_t *b = make_npy(1, D("'<f4'", "False", "(1099511627776,)"), 16, &n);
    snprintf(path, sizeof path, "%s/huge.npy", tmp);
    CHECK(tu_write_file(path, b, n) == 0);
    cairn_file *f = NULL;
    CHECK_ST(cairn_file_open(path, &no_mmap, &f, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "payload is 16 bytes, the header says 4398046511104") != NULL);
    CHECK(strstr(err.message, path) != NULL);
    free(b);
    b = make_npy(2, D("'|O'", "False", "(2,)"), 16, &n);
    CHECK(tu_write_file(path, b, n) == 0);
    CHECK_ST(cairn_file_open(path, &no_mmap, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "pickles") != NULL);
    free(b);
}

int main(void)
{
    tmp = tu_tmpdir("test_npy");
    test_writer_bytes();
    test_writer_refusals();
    test_round_trips();
    test_header_cases();
    test_header_meaning();
    test_preamble();
    test_mutations();
    test_pread_hostile();
    test_corpus();
    test_numpy();
    tu_remove_tmpdir_if_passed(tmp); /* keep the evidence of a failure, drop ~40 MB otherwise */
    TEST_MAIN_END();
}
