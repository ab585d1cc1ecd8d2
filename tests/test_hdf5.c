/* test_hdf5.c -- HDF5 through libhdf5: files made by h5py at test time
 * (every dtype, big-endian, filters, groups, attributes, the Keras legacy
 * layout, links), the public corpus, and cairn-written files read by h5py. */
#include "testutil.h"

#include <cairn.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>

static const char *py;
static const char *dir;

/* Runs a Python script (text) with h5py; returns its exit status. */
static int run_py(const char *script, const char *arg)
{
    char path[4200], cmd[9000];
    snprintf(path, sizeof path, "%s/script.py", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fputs(script, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s'", py, path, dir, arg ? arg : "");
    return system(cmd);
}

static const char *gen_script =
    "import sys, numpy as np, h5py\n"
    "d = sys.argv[1]\n"
    "with h5py.File(d + '/all.h5', 'w') as f:\n"
    "    for t in ['i1','i2','i4','i8','u1','u2','u4','u8','f2','f4','f8']:\n"
    "        f['le/' + t] = (np.arange(12) % 100).astype('<' + t).reshape(3, 4)\n"
    "        if t not in ('i1', 'u1'):\n"
    "            f['be/' + t] = (np.arange(12) % 100).astype('>' + t).reshape(3, 4)\n"
    "    f['le/bool'] = (np.arange(12) % 2).astype(bool).reshape(3, 4)\n"
    "    f['le/c8'] = (np.arange(12) - 1j * np.arange(12)).astype('c8').reshape(3, 4)\n"
    "    f['le/c16'] = (np.arange(12) - 1j * np.arange(12)).astype('c16').reshape(3, 4)\n"
    "    f['scalar'] = np.float64(2.5)\n"
    "    f.create_dataset('deep/er/filtered', data=(np.arange(1000) % 100).astype('f4'),\n"
    "                     chunks=(64,), compression='gzip', shuffle=True, fletcher32=True)\n"
    "    f['text'] = 'not a tensor'\n"
    "    f['soft'] = h5py.SoftLink('/scalar')\n"
    "    f.attrs['title'] = 'run 7'\n"
    "    f.attrs['epochs'] = 12\n"
    "    f.attrs['lr'] = 0.5\n"
    "    f['deep'].attrs['tags'] = [b'a', b'bc']\n"
    "    f['deep/er/filtered'].attrs['units'] = np.array([1, 2, 3])\n"
    "with h5py.File(d + '/keras.h5', 'w') as f:\n"
    "    mw = f.create_group('model_weights')\n"
    "    mw.attrs['layer_names'] = [b'zeta', b'alpha']\n"
    "    for l in ['zeta', 'alpha']:\n"
    "        g = mw.create_group(l)\n"
    "        g.attrs['weight_names'] = [(l + '/kernel:0').encode(), (l + '/bias:0').encode()]\n"
    "        g[l + '/kernel:0'] = np.ones((2, 2), 'f4')\n"
    "        g[l + '/bias:0'] = np.zeros((2,), 'f4')\n"
    "    f.attrs['keras_version'] = b'2.10.0'\n"
    "for ub in (512, 4096):\n"
    "    with h5py.File(d + '/ub%d.h5' % ub, 'w', userblock_size=ub) as f:\n"
    "        f['w'] = np.arange(6, dtype='<f4').reshape(2, 3)\n"
    "    with open(d + '/ub%d.h5' % ub, 'r+b') as fp:\n"
    "        fp.write(b'MATLAB 7.3 MAT-file: text in the user block ' + bytes(range(1, 200)))\n"
    "with h5py.File(d + '/other.h5', 'w') as f:\n"
    "    f['x'] = np.ones(3)\n"
    "with h5py.File(d + '/extlink.h5', 'w') as f:\n"
    "    f['ext'] = h5py.ExternalLink('other.h5', '/x')\n"
    "open(d + '/raw.bin', 'wb').write(bytes(16))\n"
    "with h5py.File(d + '/extstore.h5', 'w') as f:\n"
    "    f.create_dataset('ext', shape=(4,), dtype='f4', external=[('raw.bin', 0, 16)])\n"
    "layout = h5py.VirtualLayout(shape=(3,), dtype='f8')\n"
    "layout[:] = h5py.VirtualSource('other.h5', 'x', shape=(3,))\n"
    "with h5py.File(d + '/virtual.h5', 'w') as f:\n"
    "    f.create_virtual_dataset('vds', layout)\n"
    "import zipfile, io, json\n"
    "bio = io.BytesIO()\n"
    "with h5py.File(bio, 'w') as f:\n"
    "    g = f.create_group('layers/dense/vars')\n"
    "    g.attrs['name'] = 'dense'\n"
    "    for i in range(12):\n"
    "        g[str(i)] = np.full((2,), i, 'f4')\n"
    "    b = f.create_dataset('layers/emb/vars/0', data=np.array([0x3f80, 0x4000], '<u2').view('V2'))\n"
    "    b.attrs['dtype'] = 'bfloat16'\n"
    "with zipfile.ZipFile(d + '/model.keras', 'w') as z:\n"
    "    z.writestr('metadata.json', json.dumps({'keras_version': '3.3.3', 'date_saved': 'x'}))\n"
    "    z.writestr('config.json', json.dumps({'class_name': 'Sequential', 'config': {'layers': [1, 2.5, None, True]}}))\n"
    "    z.writestr('model.weights.h5', bio.getvalue())\n"
    "with h5py.File(d + '/all.h5', 'r') as f:\n"
    "    ds = f['deep/er/filtered']\n"
    "    off = ds.id.get_chunk_info(0).byte_offset\n"
    "    open(d + '/chunk0.txt', 'w').write(str(off))\n";

/* Value i of the generated arrays, as F64 (complex: real part). */
static double expect_at(const char *name, size_t i)
{
    if (strstr(name, "bool"))
        return (double)(i % 2);
    return (double)(i % 100);
}

/* Reads tensor i as F64: 64-bit and 32-bit integers, which cairn does not
 * widen to F64 losslessly, through their own dtype. */
static cairn_status read_f64(cairn_file *f, uint64_t i, const cairn_tensor_info *ti, double *v)
{
    cairn_error err;
    if (ti->dtype != CAIRN_I64 && ti->dtype != CAIRN_U64)
        return cairn_tensor_read(f, i, CAIRN_F64, v, (size_t)ti->count * 8, 0, &err);
    int64_t *q = (int64_t *)v;
    cairn_status st = cairn_tensor_read(f, i, ti->dtype, q, (size_t)ti->count * 8, 0, &err);
    for (size_t k = 0; k < ti->count; k++)
        v[k] = (double)q[k];
    return st;
}

static void check_all(cairn_file *f)
{
    cairn_error err;
    uint64_t n = cairn_file_count(f);
    CHECK(n == 11 + 9 + 1 + 2 + 1 + 1); /* le, be, bool, complex, scalar, filtered */
    for (uint64_t i = 0; i < n; i++) {
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_info_at(f, i, &ti, &err));
        CHECK(ti.zero_copy == 0);
        if (ti.dtype == CAIRN_C64 || ti.dtype == CAIRN_C128) {
            double c[24];
            CHECK_OK(cairn_tensor_read(f, i, CAIRN_C128, c, sizeof c, 0, &err));
            for (int k = 0; k < 12; k++)
                CHECK(c[2 * k] == k && c[2 * k + 1] == -k);
            continue;
        }
        double *v = malloc((size_t)ti.count * 8);
        CHECK_OK(read_f64(f, i, &ti, v));
        int ok = 1;
        for (size_t k = 0; k < ti.count; k++)
            ok &= strcmp(ti.name, "scalar") == 0 ? v[k] == 2.5 : v[k] == expect_at(ti.name, k);
        if (!ok)
            fprintf(stderr, "values of %s differ\n", ti.name);
        CHECK(ok);
        free(v);
    }
    const struct {
        const char *name;
        cairn_dtype dt;
    } want[] = {{"le/i1", CAIRN_I8},   {"le/u8", CAIRN_U64}, {"le/f2", CAIRN_F16},
                {"be/i8", CAIRN_I64},  {"be/f4", CAIRN_F32}, {"le/bool", CAIRN_BOOL},
                {"le/c8", CAIRN_C64},  {"le/c16", CAIRN_C128}, {"be/u2", CAIRN_U16}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_find(f, want[k].name, NULL, &ti, &err));
        CHECK(ti.dtype == want[k].dt && ti.rank == 2 && ti.dims[0] == 3 && ti.dims[1] == 4);
    }
    cairn_tensor_info ti;
    CHECK_OK(cairn_tensor_find(f, "scalar", NULL, &ti, &err));
    CHECK(ti.rank == 0);
    CHECK_ST(cairn_tensor_find(f, "text", NULL, NULL, &err), CAIRN_E_NOT_FOUND);
    /* attributes */
    cairn_value *meta;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    const void *s;
    size_t len;
    int64_t q;
    double x;
    CHECK_OK(cairn_value_get_data(cairn_value_get(meta, "@title"), &s, &len));
    CHECK(len == 5 && memcmp(s, "run 7", 5) == 0);
    CHECK_OK(cairn_value_get_int(cairn_value_get(meta, "@epochs"), &q));
    CHECK(q == 12);
    CHECK_OK(cairn_value_get_float(cairn_value_get(meta, "@lr"), &x));
    CHECK(x == 0.5);
    const cairn_value *tags = cairn_value_get(meta, "deep@tags");
    CHECK(cairn_value_count(tags) == 2);
    CHECK(cairn_value_count(cairn_value_get(meta, "deep/er/filtered@units")) == 3);
    const cairn_value *skipped = cairn_value_get(meta, "hdf5.skipped");
    CHECK(cairn_value_count(skipped) == 1); /* the soft link */
    CHECK_OK(cairn_value_get_data(cairn_value_get(meta, "text"), &s, &len));
    CHECK(len == 12 && memcmp(s, "not a tensor", 12) == 0); /* a string dataset is carried */
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
}

static void test_h5py_files(void)
{
    char path[4200];
    cairn_file *f;
    cairn_error err;
    snprintf(path, sizeof path, "%s/all.h5", dir);
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (f) {
        cairn_file_info fi;
        CHECK_OK(cairn_file_get_info(f, &fi, &err));
        CHECK(fi.format == CAIRN_FORMAT_HDF5);
        check_all(f);
        cairn_file_close(f);
    }
    /* the same bytes from memory (a file image on libhdf5's core driver) */
    FILE *fp = fopen(path, "rb");
    static uint8_t bytes[1 << 20];
    size_t n = fp ? fread(bytes, 1, sizeof bytes, fp) : 0;
    if (fp)
        fclose(fp);
    CHECK_OK(cairn_file_open_memory(bytes, n, NULL, &f, &err));
    if (f) {
        check_all(f);
        cairn_file_close(f);
    }
    /* a damaged gzip/fletcher32 chunk is refused when read, naming the dataset */
    char offp[4200];
    snprintf(offp, sizeof offp, "%s/chunk0.txt", dir);
    fp = fopen(offp, "r");
    long off = -1;
    if (fp && fscanf(fp, "%ld", &off) != 1)
        off = -1;
    if (fp)
        fclose(fp);
    CHECK(off > 0 && (size_t)off + 10 < n);
    if (off > 0 && (size_t)off + 10 < n) {
        bytes[off + 5] ^= 0x55;
        CHECK_OK(cairn_file_open_memory(bytes, n, NULL, &f, &err));
        uint64_t idx;
        float v[1000];
        CHECK_OK(cairn_tensor_find(f, "deep/er/filtered", &idx, NULL, &err));
        CHECK_ST(cairn_tensor_read(f, idx, CAIRN_F32, v, sizeof v, 0, &err), CAIRN_E_CORRUPT);
        CHECK(strstr(err.message, "deep/er/filtered") != NULL);
        CHECK(cairn_file_verify(f, &err) != CAIRN_OK);
        cairn_file_close(f);
    }
    /* external links are refused */
    snprintf(path, sizeof path, "%s/extlink.h5", dir);
    CHECK_ST(cairn_file_open(path, NULL, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "ext") != NULL);
    /* so are external storage and virtual datasets, naming the dataset */
    snprintf(path, sizeof path, "%s/extstore.h5", dir);
    CHECK_ST(cairn_file_open(path, NULL, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "'ext'") != NULL && strstr(err.message, "external storage"));
    snprintf(path, sizeof path, "%s/virtual.h5", dir);
    CHECK_ST(cairn_file_open(path, NULL, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "'vds'") != NULL && strstr(err.message, "virtual"));
    /* garbage after the signature */
    memcpy(bytes, "\x89HDF\r\n\x1a\n", 8);
    memset(bytes + 8, 0xAB, 200);
    CHECK(cairn_file_open_memory(bytes, 208, NULL, &f, &err) != CAIRN_OK);
}

/* A user block (any bytes, 512 * 2^k of them) in front of the superblock:
 * found by content, from a path and from memory; the same bytes with the
 * signature damaged are no known format. */
static void test_user_block(void)
{
    static const float want[6] = {0, 1, 2, 3, 4, 5};
    for (int ub = 512; ub <= 4096; ub *= 8) {
        char path[4200];
        snprintf(path, sizeof path, "%s/ub%d.h5", dir, ub);
        size_t n;
        uint8_t *bytes = tu_read_whole(path, &n);
        CHECK(bytes != NULL && n > (size_t)ub + 8);
        if (!bytes)
            continue;
        for (int memory = 0; memory < 2; memory++) {
            cairn_file *f = NULL;
            cairn_error err;
            float got[6] = {0};
            uint64_t idx;
            CHECK_OK(memory ? cairn_file_open_memory(bytes, n, NULL, &f, &err)
                            : cairn_file_open(path, NULL, &f, &err));
            if (!f)
                continue;
            CHECK_OK(cairn_tensor_find(f, "w", &idx, NULL, &err));
            CHECK_OK(cairn_tensor_read(f, idx, CAIRN_F32, got, sizeof got, 0, &err));
            CHECK(memcmp(got, want, sizeof got) == 0);
            cairn_file_close(f);
        }
        bytes[ub + 1] = 'X'; /* "\x89XDF": no signature anywhere */
        cairn_file *f = NULL;
        cairn_error err;
        CHECK_ST(cairn_file_open_memory(bytes, n, NULL, &f, &err), CAIRN_E_FORMAT);
        free(bytes);
    }
}

static void test_keras_order(void)
{
    char path[4200];
    cairn_file *f;
    cairn_error err;
    snprintf(path, sizeof path, "%s/keras.h5", dir);
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f)
        return;
    const char *want[] = {"model_weights/zeta/zeta/kernel:0", "model_weights/zeta/zeta/bias:0",
                          "model_weights/alpha/alpha/kernel:0",
                          "model_weights/alpha/alpha/bias:0"};
    CHECK(cairn_file_count(f) == 4);
    for (uint64_t i = 0; i < 4; i++) {
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_info_at(f, i, &ti, &err));
        CHECK(strcmp(ti.name, want[i]) == 0);
    }
    cairn_file_close(f);
}

/* A Keras 3 .keras archive: one archive, variables in numeric order, the
 * JSON members in the tree. */
static void test_keras3(void)
{
    char path[4200];
    cairn_file *f;
    cairn_error err;
    snprintf(path, sizeof path, "%s/model.keras", dir);
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (!f)
        return;
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_HDF5);
    CHECK(cairn_file_count(f) == 13);
    cairn_tensor_info bi;
    uint64_t bidx;
    CHECK_OK(cairn_tensor_find(f, "layers/emb/vars/0", &bidx, &bi, &err));
    CHECK(bi.dtype == CAIRN_BF16 && bi.count == 2);
    float bv[2] = {0, 0};
    CHECK_OK(cairn_tensor_read(f, bidx, CAIRN_F32, bv, sizeof bv, 0, &err));
    CHECK(bv[0] == 1.0f && bv[1] == 2.0f);
    for (uint64_t i = 0; i < 12 && i < cairn_file_count(f); i++) {
        cairn_tensor_info ti;
        char want[64];
        snprintf(want, sizeof want, "layers/dense/vars/%llu", (unsigned long long)i);
        CHECK_OK(cairn_tensor_info_at(f, i, &ti, &err));
        CHECK(strcmp(ti.name, want) == 0);
        float v[2];
        CHECK_OK(cairn_tensor_read(f, i, CAIRN_F32, v, sizeof v, 0, &err));
        CHECK(v[0] == (float)i);
    }
    cairn_value *meta;
    CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    const void *d;
    size_t len;
    CHECK_OK(cairn_value_get_data(cairn_value_get(cairn_value_get(meta, "metadata"),
                                                  "keras_version"), &d, &len));
    CHECK(len == 5 && memcmp(d, "3.3.3", 5) == 0);
    const cairn_value *layers =
        cairn_value_get(cairn_value_get(cairn_value_get(meta, "config"), "config"), "layers");
    CHECK(cairn_value_count(layers) == 4);
    CHECK(cairn_value_get_type(cairn_value_at(layers, 2)) == CAIRN_VALUE_NULL);
    CHECK(cairn_value_get(meta, "layers/dense/vars@name") != NULL);
    cairn_value_free(meta);
    CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
}

/* Threads reading two HDF5 files at once: cairn serializes its libhdf5
 * calls, so every read is whole and right. */
static void *reader_thread(void *arg)
{
    cairn_file *f = arg;
    long bad = 0;
    for (int round = 0; round < 20; round++)
        for (uint64_t i = 0; i < cairn_file_count(f); i++) {
            cairn_tensor_info ti;
            double v[1000];
            if (cairn_tensor_info_at(f, i, &ti, NULL) != CAIRN_OK || ti.count > 1000 ||
                ti.dtype == CAIRN_C64 || ti.dtype == CAIRN_C128 || ti.dtype == CAIRN_I64 ||
                ti.dtype == CAIRN_U64)
                continue;
            if (cairn_tensor_read(f, i, CAIRN_F64, v, (size_t)ti.count * 8, 0, NULL) != CAIRN_OK)
                bad++;
            else if (strcmp(ti.name, "scalar") != 0 && ti.count > 1 && v[1] != expect_at(ti.name, 1))
                bad++;
        }
    return (void *)bad;
}

static void test_threads(void)
{
    char path[4200];
    cairn_file *f[2] = {NULL, NULL};
    snprintf(path, sizeof path, "%s/all.h5", dir);
    CHECK_OK(cairn_file_open(path, NULL, &f[0], NULL));
    CHECK_OK(cairn_file_open(path, NULL, &f[1], NULL));
    if (!f[0] || !f[1])
        return;
    pthread_t t[4];
    for (int k = 0; k < 4; k++)
        CHECK(pthread_create(&t[k], NULL, reader_thread, f[k % 2]) == 0);
    for (int k = 0; k < 4; k++) {
        void *bad = NULL;
        pthread_join(t[k], &bad);
        CHECK(bad == NULL);
    }
    cairn_file_close(f[0]);
    cairn_file_close(f[1]);
}

/* cairn writes; h5py checks the values and the attributes. */
static const char *check_script =
    "import sys, numpy as np, h5py\n"
    "f = h5py.File(sys.argv[2], 'r')\n"
    "ok = True\n"
    "for t in ['i1','i2','i4','i8','u1','u2','u4','u8','f2','f4','f8']:\n"
    "    ok &= f['w/' + t].dtype == np.dtype(t) and (f['w/' + t][()] == np.arange(6).reshape(2, 3)).all()\n"
    "ok &= f['w/bool'].dtype == np.dtype(bool) and (f['w/bool'][()] == (np.arange(6) % 2 == 1).reshape(2, 3)).all()\n"
    "ok &= f['w/c8'].dtype == np.dtype('c8') and f['w/c8'][()][1, 2] == 5 - 5j\n"
    "ok &= f['s'][()] == 7 and f['s'].shape == ()\n"
    "ok &= f.attrs['name'] == 'model' and f.attrs['epoch'] == 3 and f.attrs['lr'] == 0.25\n"
    "ok &= list(f['w'].attrs['layers']) == ['a', 'b'] and bool(f['w'].attrs['flag'])\n"
    "ok &= f.attrs['nested'].startswith('{')\n"
    "print('h5py check', 'OK' if ok else 'FAILED')\n"
    "sys.exit(0 if ok else 1)\n";

static void test_write(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/written.h5", dir);
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, &err));
    if (!w)
        return;
    const cairn_dtype dts[] = {CAIRN_I8, CAIRN_I16, CAIRN_I32, CAIRN_I64, CAIRN_U8, CAIRN_U16,
                               CAIRN_U32, CAIRN_U64, CAIRN_F16, CAIRN_F32, CAIRN_F64};
    const char *names[] = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"};
    uint64_t dims[2] = {2, 3};
    for (size_t k = 0; k < 11; k++) {
        uint8_t src[6] = {0, 1, 2, 3, 4, 5}, buf[48];
        size_t sz = cairn_dtype_size(dts[k]);
        memset(buf, 0, sizeof buf);
        if (dts[k] == CAIRN_F16 || dts[k] == CAIRN_F32 || dts[k] == CAIRN_F64)
            CHECK_OK(cairn_convert(CAIRN_U8, src, dts[k], buf, 6, &err));
        else
            for (int e = 0; e < 6; e++)
                buf[e * sz] = src[e]; /* little-endian integers */
        char name[32];
        snprintf(name, sizeof name, "w/%s", names[k]);
        CHECK_OK(cairn_writer_add(w, name, dts[k], 2, dims, buf, &err));
    }
    uint8_t bools[6] = {0, 1, 0, 1, 0, 1};
    CHECK_OK(cairn_writer_add(w, "w/bool", CAIRN_BOOL, 2, dims, bools, &err));
    float c[12];
    for (int k = 0; k < 6; k++) {
        c[2 * k] = (float)k;
        c[2 * k + 1] = (float)-k;
    }
    CHECK_OK(cairn_writer_add(w, "w/c8", CAIRN_C64, 2, dims, c, &err));
    int64_t s = 7;
    CHECK_OK(cairn_writer_add(w, "s", CAIRN_I64, 0, NULL, &s, &err));
    cairn_value *m = cairn_value_map(), *layers = cairn_value_list(), *nested = cairn_value_map();
    cairn_value_set(m, "name", cairn_value_string("model"), NULL);
    cairn_value_set(m, "@epoch", cairn_value_int(3), NULL);
    cairn_value_set(m, "lr", cairn_value_float(0.25), NULL);
    cairn_value_append(layers, cairn_value_string("a"), NULL);
    cairn_value_append(layers, cairn_value_string("b"), NULL);
    cairn_value_set(m, "w@layers", layers, NULL);
    cairn_value_set(m, "w@flag", cairn_value_bool(1), NULL);
    cairn_value_set(nested, "k", cairn_value_int(1), NULL);
    cairn_value_set(m, "nested", nested, NULL);
    CHECK_OK(cairn_writer_set_metadata(w, m, &err));
    cairn_value_free(m);
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK(run_py(check_script, path) == 0);
    /* and cairn reads its own file back, in insertion order */
    cairn_file *f;
    CHECK_OK(cairn_file_open(path, NULL, &f, &err));
    if (f) {
        CHECK(cairn_file_count(f) == 14);
        cairn_tensor_info ti;
        CHECK_OK(cairn_tensor_info_at(f, 0, &ti, &err));
        CHECK(strcmp(ti.name, "w/i1") == 0);
        CHECK_OK(cairn_tensor_info_at(f, 8, &ti, &err));
        CHECK(strcmp(ti.name, "w/f2") == 0);
        CHECK_OK(cairn_tensor_info_at(f, 13, &ti, &err));
        CHECK(strcmp(ti.name, "s") == 0);
        cairn_value *meta;
        CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
        int64_t q = 0;
        CHECK_OK(cairn_value_get_int(cairn_value_get(meta, "@epoch"), &q));
        CHECK(q == 3);
        cairn_value_free(meta);
        cairn_file_close(f);
    }
    /* a memory save opens from memory */
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_HDF5},
                                      &w, &err));
    uint16_t hv[6] = {1, 2, 3, 4, 5, 6};
    CHECK_OK(cairn_writer_add(w, "block.0.w", CAIRN_BF16, 2, dims, hv, &err));
    void *mem = NULL;
    size_t mlen = 0;
    CHECK_OK(cairn_writer_commit_memory(w, &mem, &mlen, &err));
    CHECK_OK(cairn_file_open_memory(mem, mlen, NULL, &f, &err));
    if (f) {
        uint16_t back[6] = {0};
        CHECK_OK(cairn_tensor_read(f, 0, CAIRN_BF16, back, sizeof back, 0, &err));
        CHECK(memcmp(back, hv, sizeof hv) == 0);
        cairn_file_close(f);
    }
    cairn_free(mem);
    /* FP8 is refused */
    CHECK_OK(cairn_writer_open_memory(&(cairn_write_opts){.struct_size = sizeof(cairn_write_opts),
                                                          .format = CAIRN_FORMAT_HDF5},
                                      &w, &err));
    uint8_t b8[6] = {0};
    CHECK_ST(cairn_writer_add(w, "x", CAIRN_F8_E4M3, 2, dims, b8, &err), CAIRN_E_UNSUPPORTED);
    cairn_writer_abort(w);
}

/* The public corpus: names, dtypes, shapes, SHA-256 of the bytes, order
 * (the expectation's key order is Keras' order) and attribute values. */
static void check_vector(const char *h5, const char *expect, int keras)
{
    json_error_t je;
    json_t *root = json_load_file(expect, 0, &je);
    CHECK(root != NULL);
    if (!root)
        return;
    cairn_file *f;
    cairn_error err;
    CHECK_OK(cairn_file_open(h5, NULL, &f, &err));
    json_t *tensors = json_object_get(root, "tensors");
    CHECK(f && cairn_file_count(f) == json_object_size(tensors));
    const char *key;
    json_t *val;
    uint64_t i = 0;
    json_object_foreach(tensors, key, val)
    {
        cairn_tensor_info ti;
        uint64_t at = 0;
        if (!f || cairn_tensor_find(f, key, &at, &ti, &err) != CAIRN_OK) {
            CHECK(0);
            continue;
        }
        if (keras) /* the expectation lists Keras files in Keras' order */
            CHECK(at == i);
        i = at + 1;
        CHECK(strcmp(cairn_dtype_name(ti.dtype), json_string_value(json_object_get(val, "dtype"))) == 0);
        void *b = malloc(ti.raw_size ? (size_t)ti.raw_size : 1);
        CHECK_OK(cairn_tensor_read(f, i - 1, ti.dtype, b, (size_t)ti.raw_size, 0, &err));
        uint8_t h[32];
        crypto_hash_sha256(h, b, ti.raw_size);
        char hex[65];
        for (int k = 0; k < 32; k++)
            snprintf(hex + 2 * k, 3, "%02x", h[k]);
        CHECK(strcmp(hex, json_string_value(json_object_get(val, "sha256"))) == 0);
        free(b);
    }
    json_t *values = json_object_get(root, "values");
    cairn_value *meta = NULL;
    if (f)
        CHECK_OK(cairn_file_read_metadata(f, &meta, &err));
    json_object_foreach(values, key, val)
    {
        if (!strchr(key, '@'))
            continue;
        const cairn_value *v = cairn_value_get(meta, key);
        CHECK(v != NULL);
        if (json_is_array(val)) {
            CHECK(cairn_value_count(v) == json_array_size(val));
            for (size_t k = 0; k < json_array_size(val) && k < cairn_value_count(v); k++) {
                const void *d;
                size_t len;
                const char *w = json_string_value(json_array_get(val, k));
                CHECK(cairn_value_get_data(cairn_value_at(v, k), &d, &len) == CAIRN_OK && w &&
                      len == strlen(w) && memcmp(d, w, len) == 0);
            }
        } else if (json_is_string(val)) {
            const void *d;
            size_t len;
            CHECK(cairn_value_get_data(v, &d, &len) == CAIRN_OK &&
                  len == strlen(json_string_value(val)));
        }
    }
    cairn_value_free(meta);
    if (f)
        CHECK_OK(cairn_file_verify(f, &err));
    cairn_file_close(f);
    json_decref(root);
}

static void test_corpus(void)
{
    const char *v = getenv("CAIRN_VECTORS");
    const char *files[] = {"keras_model.h5", "filters.h5"};
    for (int k = 0; k < 2; k++) {
        char h5[4200], ex[4300];
        snprintf(h5, sizeof h5, "%s/hdf5/%s", v ? v : "", files[k]);
        snprintf(ex, sizeof ex, "%s.expect.json", h5);
        if (!v || access(h5, R_OK) != 0) {
            fprintf(stderr, "corpus %s absent: skipped\n", files[k]);
            continue;
        }
        check_vector(h5, ex, k == 0);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    py = getenv("CAIRN_PYTHON");
    if (!py || !*py)
        py = "/usr/bin/python3";
    dir = tu_tmpdir("test_hdf5");
    test_corpus();
    if (run_py("import h5py\n", NULL) != 0) {
        fprintf(stderr, "h5py not available under %s: the h5py tests are skipped\n", py);
        if (tu_failures)
            TEST_MAIN_END();
        return 77;
    }
    CHECK(run_py(gen_script, NULL) == 0);
    test_h5py_files();
    test_user_block();
    test_keras_order();
    test_keras3();
    test_threads();
    test_write();
    TEST_MAIN_END();
}
