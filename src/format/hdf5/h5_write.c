/* h5_write.c -- saves as HDF5 (docs/FORMAT.md 17.4): the file is built in
 * memory through libhdf5 and its image handed to the sink at commit. */
#include "format/format.h"
#include "format/hdf5/h5_lib.h"

#include <stdio.h>
#include <stdlib.h>

/* ================================================================ writing */

/* The file is built in memory (core driver, no backing store) and its image
 * goes to the sink at commit, so saves keep cairn's temporary-file, fsync
 * and rename protocol and work for memory writers. */
typedef struct h5_writer {
    hid_t file;
    hid_t gcpl;      /* file creation properties: the root tracks creation order */
    hid_t group_cpl; /* group creation properties: likewise every group */
    cairn_value *meta;
} h5_writer;

/* Creates the missing groups of path's parent, each tracking creation
 * order (the intermediate groups libhdf5 would make do not). */
static herr_t make_parents(h5_writer *s, const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -1;
    herr_t e = 0;
    for (char *slash = strchr(p + (p[0] == '/'), '/'); e >= 0 && slash;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (p[0] && H5Lexists(s->file, p, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(s->file, p, H5P_DEFAULT, s->group_cpl, H5P_DEFAULT);
            e = g < 0 ? -1 : H5Gclose(g);
        }
        *slash = '/';
    }
    free(p);
    return e;
}

/* The file type of a dtype (little-endian), or -1; *owned as map_type. */
static hid_t file_type(cairn_dtype d, int *owned)
{
    *owned = 0;
    switch (d) {
    case CAIRN_F64: return H5T_IEEE_F64LE;
    case CAIRN_F32: return H5T_IEEE_F32LE;
    case CAIRN_I8: return H5T_STD_I8LE;
    case CAIRN_I16: return H5T_STD_I16LE;
    case CAIRN_I32: return H5T_STD_I32LE;
    case CAIRN_I64: return H5T_STD_I64LE;
    case CAIRN_U8: return H5T_STD_U8LE;
    case CAIRN_U16: return H5T_STD_U16LE;
    case CAIRN_U32: return H5T_STD_U32LE;
    case CAIRN_U64: return H5T_STD_U64LE;
    default: break;
    }
    hid_t t = -1;
    *owned = 1;
    if (d == CAIRN_F16 || d == CAIRN_BF16) { /* numpy's float16; bfloat16 as its bit fields */
        int h = d == CAIRN_F16;
        t = H5Tcopy(H5T_IEEE_F32LE);
        if (t >= 0 && (H5Tset_fields(t, 15, h ? 10 : 7, h ? 5 : 8, 0, h ? 10 : 7) < 0 ||
                       H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, h ? 15 : 127) < 0)) {
            H5Tclose(t);
            t = -1;
        }
    } else if (d == CAIRN_BOOL) { /* h5py's bool */
        int8_t f = 0, tr = 1;
        t = H5Tenum_create(H5T_NATIVE_INT8);
        if (t >= 0 && (H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &tr) < 0)) {
            H5Tclose(t);
            t = -1;
        }
    } else if (d == CAIRN_C64 || d == CAIRN_C128) { /* h5py's complex */
        size_t s = d == CAIRN_C64 ? 4 : 8;
        hid_t part = s == 4 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
        t = H5Tcreate(H5T_COMPOUND, 2 * s);
        if (t >= 0 && (H5Tinsert(t, "r", 0, part) < 0 || H5Tinsert(t, "i", s, part) < 0)) {
            H5Tclose(t);
            t = -1;
        }
    }
    return t;
}

static cairn_status hw_begin(cairn_writer *w, cairn_error *err)
{
    h5_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    s->file = s->gcpl = s->group_cpl = -1;
    w->state = s;
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    char name[64];
    snprintf(name, sizeof name, "cairn-writer-%p", (void *)w);
    /* Groups (the root included) track link creation order, so readers
     * that ask for it (cairn, h5py's track_order) get the insertion order. */
    s->gcpl = H5Pcreate(H5P_FILE_CREATE);
    s->group_cpl = H5Pcreate(H5P_GROUP_CREATE);
    unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
    if (s->gcpl < 0 || s->group_cpl < 0 || H5Pset_link_creation_order(s->gcpl, order) < 0 ||
        H5Pset_link_creation_order(s->group_cpl, order) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        fapl = -1;
    }
    /* The earliest file format (libhdf5's default): the superblock of the
     * 1.8+ formats comes out of H5Fget_file_image with a stale checksum in
     * libhdf5 1.10, which h5py then refuses. Its cost: no attribute above
     * 64 KiB (refused at commit, naming the key). */
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0)
        s->file = H5Fcreate(name, H5F_ACC_TRUNC, s->gcpl, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    cairn__h5_leave(&g);
    if (s->file < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: libhdf5 cannot create an in-memory file",
                           w->path);
    return CAIRN_OK;
}

static cairn_status add_locked(cairn_writer *w, const char *name, cairn_dtype dtype,
                               uint32_t rank, const uint64_t *dims, const void *data,
                               cairn_error *err)
{
    h5_writer *s = w->state;
    int owned;
    hid_t ft = file_type(dtype, &owned);
    if (ft < 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': cairn writes no HDF5 "
                           "type for %s", w->path, name, cairn_dtype_name(dtype));
    hsize_t hd[CAIRN_MAX_RANK];
    for (uint32_t k = 0; k < rank; k++)
        hd[k] = dims[k];
    hid_t sp = rank ? H5Screate_simple((int)rank, hd, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t ds = -1;
    if (sp >= 0 && lcpl >= 0 && make_parents(s, name) >= 0)
        ds = H5Dcreate2(s->file, name, ft, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : 0;
    uint64_t count = 1;
    for (uint32_t k = 0; k < rank; k++)
        count *= dims[k];
    if (ds >= 0 && count > 0)
        e = H5Dwrite(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    cairn__h5_drop(ds);
    cairn__h5_drop(lcpl);
    cairn__h5_drop(sp);
    cairn__h5_close_type(ft, owned);
    if (ds < 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': libhdf5 cannot create a "
                           "dataset at that path (a part of it is already a dataset, or it is "
                           "not a valid HDF5 path)", w->path, name);
    if (e < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: tensor '%s': libhdf5 cannot write it", w->path,
                           name);
    return CAIRN_OK;
}

static cairn_status hw_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    if (dtype == CAIRN_F8_E4M3 || dtype == CAIRN_F8_E5M2)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': HDF5 readers know no "
                           "FP8 type; convert it to F16 or save in the native format",
                           w->path, name);
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn_status st = add_locked(w, name, dtype, rank, dims, data, err);
    cairn__h5_leave(&g);
    return st;
}

static cairn_status hw_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    h5_writer *s = w->state;
    (void)err;
    cairn_value_free(s->meta);
    s->meta = tree;
    return CAIRN_OK;
}

/* --------------------------------------------------------- attributes */

/* The kind of list: 1 all strings, 2 all ints, 3 all numbers, 0 other. */
static int list_kind(const cairn_value *v)
{
    int kind = 2;
    size_t n = cairn_value_count(v);
    for (size_t i = 0; i < n; i++) {
        cairn_value_type t = cairn_value_get_type(cairn_value_at(v, i));
        if (t == CAIRN_VALUE_STRING && (i == 0 || kind == 1))
            kind = 1;
        else if (t == CAIRN_VALUE_INT && kind >= 2)
            ;
        else if (t == CAIRN_VALUE_FLOAT && kind >= 2)
            kind = 3;
        else
            return 0;
    }
    return n == 0 ? 3 : kind; /* Keras writes an empty weight_names as float64 */
}

static herr_t write_attr(hid_t obj, const char *name, hid_t type, hsize_t n, int scalar,
                         const void *buf)
{
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = sp >= 0 ? H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t e = a >= 0 ? H5Awrite(a, type, buf) : -1;
    cairn__h5_drop(a);
    cairn__h5_drop(sp);
    return e;
}

static herr_t write_strings(hid_t obj, const char *name, const char **s, hsize_t n, int scalar)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    herr_t e = -1;
    if (t >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0)
        e = write_attr(obj, name, t, n, scalar, s);
    if (t >= 0)
        H5Tclose(t);
    return e;
}

static herr_t write_list(hid_t obj, const char *name, const cairn_value *v, int kind)
{
    size_t n = cairn_value_count(v);
    void *buf = malloc((n ? n : 1) * 8);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const cairn_value *c = cairn_value_at(v, i);
        const void *d;
        size_t len;
        int64_t q;
        double x;
        if (kind == 1 && cairn_value_get_data(c, &d, &len) == CAIRN_OK)
            ((const char **)buf)[i] = d;
        else if (kind == 2 && cairn_value_get_int(c, &q) == CAIRN_OK)
            ((int64_t *)buf)[i] = q;
        else if (cairn_value_get_int(c, &q) == CAIRN_OK)
            ((double *)buf)[i] = (double)q;
        else if (cairn_value_get_float(c, &x) == CAIRN_OK)
            ((double *)buf)[i] = x;
    }
    herr_t e = kind == 1 ? write_strings(obj, name, buf, n, 0)
                         : write_attr(obj, name, kind == 2 ? H5T_STD_I64LE : H5T_IEEE_F64LE, n,
                                      0, buf);
    free(buf);
    return e;
}

/* A tree value as one attribute: scalars and flat lists natively, anything
 * else as its JSON text (docs/FORMAT.md "HDF5"). */
static herr_t write_value(hid_t obj, const char *name, const cairn_value *v)
{
    const void *d;
    size_t len;
    int64_t q;
    double x;
    int b;
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_STRING:
        if (cairn_value_get_data(v, &d, &len) == CAIRN_OK && memchr(d, 0, len) == NULL) {
            const char *s = d;
            return write_strings(obj, name, &s, 1, 1);
        }
        break;
    case CAIRN_VALUE_INT:
        cairn_value_get_int(v, &q);
        return write_attr(obj, name, H5T_STD_I64LE, 1, 1, &q);
    case CAIRN_VALUE_FLOAT:
        cairn_value_get_float(v, &x);
        return write_attr(obj, name, H5T_IEEE_F64LE, 1, 1, &x);
    case CAIRN_VALUE_BOOL: {
        int owned;
        hid_t t = file_type(CAIRN_BOOL, &owned);
        cairn_value_get_bool(v, &b);
        int8_t c = (int8_t)(b != 0);
        herr_t e = t >= 0 ? write_attr(obj, name, t, 1, 1, &c) : -1;
        cairn__h5_close_type(t, owned);
        return e;
    }
    case CAIRN_VALUE_LIST: {
        int kind = list_kind(v);
        if (kind)
            return write_list(obj, name, v, kind);
        break;
    }
    default:
        break;
    }
    char *json = NULL;
    if (cairn_value_to_json(v, 0, &json, NULL) != CAIRN_OK)
        return -1;
    const char *s = json;
    herr_t e = write_strings(obj, name, &s, 1, 1);
    cairn_free(json);
    return e;
}

/* The object at `path` ("" = root), made a group if it does not exist. */
static hid_t object_for(h5_writer *s, hid_t file, const char *path)
{
    if (!path[0])
        return H5Oopen(file, "/", H5P_DEFAULT);
    if (H5Lexists(file, path, H5P_DEFAULT) > 0)
        return H5Oopen(file, path, H5P_DEFAULT);
    if (make_parents(s, path) < 0)
        return -1;
    return H5Gcreate2(file, path, H5P_DEFAULT, s->group_cpl, H5P_DEFAULT);
}

/* Key "PATH@ATTR" is attribute ATTR of object PATH; a key without '@' is a
 * root attribute. */
static cairn_status write_meta(cairn_writer *w, cairn_error *err)
{
    h5_writer *s = w->state;
    size_t n = s->meta ? cairn_value_count(s->meta) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = cairn_value_key_at(s->meta, i);
        const char *at = strrchr(key, '@');
        char *path = strdup(key);
        if (!path)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
        const char *attr = key;
        if (at) {
            path[at - key] = '\0';
            attr = at + 1;
        } else {
            path[0] = '\0';
        }
        hid_t obj = attr[0] ? object_for(s, s->file, path) : -1;
        herr_t e = obj >= 0 ? write_value(obj, attr, cairn_value_at(s->meta, i)) : -1;
        if (obj >= 0)
            H5Oclose(obj);
        free(path);
        if (e < 0)
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: metadata key '%s': libhdf5 "
                               "cannot store it as an attribute (empty attribute name, a "
                               "path that is not a group or dataset, or a repeated name)",
                               w->path, key);
    }
    return CAIRN_OK;
}

static cairn_status finish_locked(cairn_writer *w, cairn_error *err)
{
    h5_writer *s = w->state;
    if (s->meta && cairn_value_get_type(s->meta) != CAIRN_VALUE_MAP)
        return cairn__fail(err, CAIRN_E_ARG, "%s: metadata: the tree's root must be a map",
                           w->path);
    CAIRN_TRY(write_meta(w, err));
    if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: libhdf5 cannot flush the file", w->path);
    ssize_t size = H5Fget_file_image(s->file, NULL, 0);
    if (size < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: libhdf5 cannot size the file image", w->path);
    void *buf = malloc(size ? (size_t)size : 1);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for a %zd-byte HDF5 image",
                           w->path, size);
    cairn_status st = H5Fget_file_image(s->file, buf, (size_t)size) == size
                          ? cairn__sink_write(&w->sink, buf, (size_t)size, err)
                          : cairn__fail(err, CAIRN_E_IO, "%s: libhdf5 cannot copy the file "
                                        "image", w->path);
    free(buf);
    return st;
}

static cairn_status hw_finish(cairn_writer *w, cairn_error *err)
{
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn_status st = finish_locked(w, err);
    cairn__h5_leave(&g);
    return st;
}

static void hw_destroy(cairn_writer *w)
{
    h5_writer *s = w->state;
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn__h5_drop(s->file);
    cairn__h5_drop(s->gcpl);
    cairn__h5_drop(s->group_cpl);
    cairn__h5_leave(&g);
    cairn_value_free(s->meta);
    free(s);
}

const cairn__writer_ops cairn__hdf5_writer = CAIRN__WRITER_OPS(
    hw, CAIRN_FORMAT_HDF5, .no_alias = "cairn writes every HDF5 dataset separately",
    .set_metadata = hw_set_metadata);
