/* hdf5.c -- HDF5 files through libhdf5 (docs/FORMAT.md "HDF5"): every
 * dataset of a cairn dtype is a tensor named by its path, attributes fill the
 * metadata tree as "GROUPPATH@ATTR", Keras legacy weights come in Keras'
 * order; saves build the file in memory and hand its image to the sink. */
#include "format/format.h"
#include "format/registry.h"
#include "common/nameset.h"
#include "container/zip.h"

#include <jansson.h>

#include <dlfcn.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define H5_MAX_ATTR_ELEMS (1u << 20) /* attributes larger than this are left out */
#define KERAS_WEIGHTS "model.weights.h5"
#define KERAS_JSON_MAX (64u << 20) /* config.json, metadata.json */
#define KERAS_JSON_DEPTH 200
/* A dataset may hold at most max(max_inflate, this x the bytes libhdf5
 * stores for it) bytes of data: the ZIP reader's ratio (docs/FORMAT.md
 * 12.3), for fill values and filters alike. */
#define H5_RATIO_LIMIT CAIRN__ZIP_RATIO_LIMIT
/* verify reads a dataset in hyperslabs of at most this many bytes. */
#define H5_VERIFY_BLOCK (16u << 20)
/* Where Debian's HDF5 filter plugins are (hdf5-plugin-lzf,
 * hdf5-filter-plugin, hdf5-filter-plugin-blosc-serial). */
#ifndef CAIRN_HDF5_PLUGIN_DIR
#define CAIRN_HDF5_PLUGIN_DIR "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins"
#endif

/* libhdf5 as Debian builds it is not thread-safe, and its state (open ids,
 * the error stack, automatic error printing) is process-wide, so every call
 * cairn makes into it holds this one lock, whichever file it is for. Other
 * code of the process that uses libhdf5 must not run at the same time. */
static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct h5_guard {
    H5E_auto2_t func;
    void *data;
} h5_guard;

/* Takes the lock and silences libhdf5's automatic error printing (a library
 * prints nothing); h5_leave restores the caller's printer. */
static void h5_enter(h5_guard *g)
{
    pthread_mutex_lock(&h5_lock);
    H5Eget_auto2(H5E_DEFAULT, &g->func, &g->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Debian's LZF plugin is built for h5py, which links liblzf: the plugin
 * leaves lzf_decompress to the process. Loading liblzf into the global
 * symbol scope, once per process, lets libhdf5 load the plugin for cairn
 * too. Failure only leaves LZF unavailable (and named when a dataset needs
 * it). The handle is never closed: the library stays for the process. */
static void load_lzf(void)
{
    (void)dlopen("liblzf.so.1", RTLD_NOW | RTLD_GLOBAL);
}

/* Makes sure libhdf5 looks for filter plugins where Debian installs them,
 * also when HDF5_PLUGIN_PATH replaced its default search path: first, as
 * libhdf5 1.10 ends its search at the first directory it cannot open.
 * Called with the lock held; the search path is libhdf5's own process-wide
 * state, checked each time instead of remembered. */
static void plugin_path(void)
{
    static pthread_once_t lzf_once = PTHREAD_ONCE_INIT;
    pthread_once(&lzf_once, load_lzf);
    unsigned n = 0;
    char dir[sizeof CAIRN_HDF5_PLUGIN_DIR + 1];
    if (H5PLsize(&n) < 0)
        return;
    for (unsigned i = 0; i < n; i++)
        if (H5PLget(i, dir, sizeof dir) == (ssize_t)strlen(CAIRN_HDF5_PLUGIN_DIR) &&
            strcmp(dir, CAIRN_HDF5_PLUGIN_DIR) == 0)
            return;
    H5PLprepend(CAIRN_HDF5_PLUGIN_DIR);
}

static void h5_leave(const h5_guard *g)
{
    H5Eset_auto2(H5E_DEFAULT, g->func, g->data);
    pthread_mutex_unlock(&h5_lock);
}

/* Closes an id of any kind (type, space, attribute, dataset, property
 * list, file) unless the call that made it failed (< 0): it holds one
 * reference, and dropping it closes the object. */
static void h5_drop(hid_t id)
{
    if (id >= 0)
        H5Idec_ref(id);
}

static void h5_close_type(hid_t t, int owned)
{
    if (owned && t >= 0)
        H5Tclose(t);
}

/* The cairn dtype of a dataset type and the memory type that reads it as
 * little-endian elements of that dtype (libhdf5 converts byte order). *owned
 * says whether *mem must be closed. Returns NULL, or why the type is not a
 * tensor. */
static const char *map_int(hid_t ft, cairn_dtype *dt, hid_t *mem)
{
    size_t size = H5Tget_size(ft);
    int sign = H5Tget_sign(ft) == H5T_SGN_2;
    switch (size) {
    case 1: *dt = sign ? CAIRN_I8 : CAIRN_U8; *mem = sign ? H5T_STD_I8LE : H5T_STD_U8LE; break;
    case 2: *dt = sign ? CAIRN_I16 : CAIRN_U16; *mem = sign ? H5T_STD_I16LE : H5T_STD_U16LE; break;
    case 4: *dt = sign ? CAIRN_I32 : CAIRN_U32; *mem = sign ? H5T_STD_I32LE : H5T_STD_U32LE; break;
    case 8: *dt = sign ? CAIRN_I64 : CAIRN_U64; *mem = sign ? H5T_STD_I64LE : H5T_STD_U64LE; break;
    default: return "an integer of a size cairn has no dtype for";
    }
    return NULL;
}

static const char *map_float(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    size_t size = H5Tget_size(ft), spos, epos, esize, mpos, msize;
    if (size == 4 || size == 8) {
        *dt = size == 4 ? CAIRN_F32 : CAIRN_F64;
        *mem = size == 4 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
        return NULL;
    }
    if (size != 2 || H5Tget_fields(ft, &spos, &epos, &esize, &mpos, &msize) < 0)
        return "a float of a size cairn has no dtype for";
    if (esize == 5 && msize == 10)
        *dt = CAIRN_F16;
    else if (esize == 8 && msize == 7)
        *dt = CAIRN_BF16;
    else
        return "a 2-byte float that is neither binary16 nor bfloat16";
    *mem = H5Tcopy(ft);
    *owned = 1;
    if (*mem < 0 || H5Tset_order(*mem, H5T_ORDER_LE) < 0)
        return "a 2-byte float type libhdf5 cannot copy";
    return NULL;
}

/* h5py's bool: an enum of a 1-byte integer with FALSE = 0 and TRUE = 1. */
static const char *map_enum(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    if (H5Tget_size(ft) != 1 || H5Tget_nmembers(ft) != 2)
        return "an enum other than h5py's bool";
    int8_t v0 = -1, v1 = -1;
    H5Tget_member_value(ft, 0, &v0);
    H5Tget_member_value(ft, 1, &v1);
    if (!((v0 == 0 && v1 == 1) || (v0 == 1 && v1 == 0)))
        return "an enum other than h5py's bool";
    *dt = CAIRN_BOOL;
    *mem = H5Tcopy(ft);
    *owned = 1;
    return *mem < 0 ? "an enum libhdf5 cannot copy" : NULL;
}

/* h5py's complex: a compound {r, i} of two floats of one size. */
static const char *map_complex(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    if (H5Tget_nmembers(ft) != 2)
        return "a compound type other than h5py's complex {r, i}";
    hid_t m0 = H5Tget_member_type(ft, 0), m1 = H5Tget_member_type(ft, 1);
    char *n0 = H5Tget_member_name(ft, 0), *n1 = H5Tget_member_name(ft, 1);
    int ok = m0 >= 0 && m1 >= 0 && n0 && n1 && strcmp(n0, "r") == 0 && strcmp(n1, "i") == 0 &&
             H5Tget_class(m0) == H5T_FLOAT && H5Tget_class(m1) == H5T_FLOAT &&
             H5Tget_size(m0) == H5Tget_size(m1) &&
             (H5Tget_size(m0) == 4 || H5Tget_size(m0) == 8);
    size_t s = ok ? H5Tget_size(m0) : 0;
    h5_drop(m0);
    h5_drop(m1);
    H5free_memory(n0);
    H5free_memory(n1);
    if (!ok)
        return "a compound type other than h5py's complex {r, i}";
    hid_t part = s == 4 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
    *dt = s == 4 ? CAIRN_C64 : CAIRN_C128;
    *mem = H5Tcreate(H5T_COMPOUND, 2 * s);
    *owned = 1;
    if (*mem < 0 || H5Tinsert(*mem, "r", 0, part) < 0 || H5Tinsert(*mem, "i", s, part) < 0)
        return "a complex type libhdf5 cannot build";
    return NULL;
}

static const char *map_class(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    switch (H5Tget_class(ft)) {
    case H5T_INTEGER: return map_int(ft, dt, mem);
    case H5T_FLOAT: return map_float(ft, dt, mem, owned);
    case H5T_ENUM: return map_enum(ft, dt, mem, owned);
    case H5T_COMPOUND: return map_complex(ft, dt, mem, owned);
    case H5T_STRING: return "strings";
    case H5T_VLEN: return "variable-length data";
    case H5T_REFERENCE: return "references";
    case H5T_OPAQUE: return "opaque data";
    case H5T_ARRAY: return "an array type";
    default: return "a type cairn has no dtype for";
    }
}

/* map_class, closing what it made when the type is refused, so every
 * failure leaves no libhdf5 identifier open. */
static const char *map_type(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    *owned = 0;
    *mem = -1;
    const char *why = map_class(ft, dt, mem, owned);
    if (why) {
        h5_close_type(*mem, *owned);
        *mem = -1;
        *owned = 0;
    }
    return why;
}

/* Keras stores bfloat16 as 2-byte opaque data with a string attribute
 * dtype = "bfloat16" on the dataset. */
static int keras_bf16(hid_t ds, hid_t ft)
{
    if (H5Tget_class(ft) != H5T_OPAQUE || H5Tget_size(ft) != 2 ||
        H5Aexists(ds, "dtype") <= 0)
        return 0;
    hid_t a = H5Aopen(ds, "dtype", H5P_DEFAULT);
    hid_t at = a >= 0 ? H5Aget_type(a) : -1;
    char text[16] = {0};
    int yes = 0;
    if (at >= 0 && H5Tget_class(at) == H5T_STRING) {
        if (H5Tis_variable_str(at) > 0) {
            char *p = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            hid_t sp = H5Aget_space(a);
            if (mt >= 0 && sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
                H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &p) >= 0 && p) {
                yes = strcmp(p, "bfloat16") == 0;
                H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, &p);
            }
            h5_drop(mt);
            h5_drop(sp);
        } else if (H5Tget_size(at) < sizeof text && H5Aread(a, at, text) >= 0) {
            yes = strcmp(text, "bfloat16") == 0;
        }
    }
    h5_drop(at);
    h5_drop(a);
    return yes;
}

/* map_type for a dataset, which also knows Keras' bfloat16. */
static const char *dataset_type(hid_t ds, hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    const char *why = map_type(ft, dt, mem, owned);
    if (why && keras_bf16(ds, ft)) {
        *dt = CAIRN_BF16;
        *mem = H5Tcopy(ft); /* the bytes as stored: little-endian bfloat16 */
        *owned = *mem >= 0;
        why = *mem < 0 ? "an opaque type libhdf5 cannot copy" : NULL;
    }
    return why;
}

/* ================================================================ reading */

typedef struct h5_skip {
    char *path;
    const char *why; /* static text */
} h5_skip;

/* A file image libhdf5 reads in place (open_file); it must outlive the file
 * (libhdf5 calls back with it until H5Fclose). */
typedef struct h5_image {
    void *buf;
    size_t size;
} h5_image;

typedef struct h5_reader {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    hid_t file;
    h5_image image; /* an image's callback data, for the file's lifetime */
    uint8_t *owned_image; /* a .keras archive's weights, or a remote file's image: freed after the file */
    cairn__tensor *tensors;
    uint64_t count, cap;
    char **objects; /* every group and dataset path, for the attributes */
    size_t nobjects, objcap;
    h5_skip *skipped;
    size_t nskipped, skipcap;
    char **strings; /* string datasets, carried in the tree under their paths */
    size_t nstrings, strcap;
    cairn__nameset index;
    uint64_t payload;
    cairn_value *keras; /* a .keras archive: {"config", "metadata"} from its JSON members */
    cairn_status st; /* the first failure inside a libhdf5 callback */
    cairn_error *err;
    const cairn_file *f;
} h5_reader;
CAIRN__TABLE_FIRST(h5_reader);

static const char *tensor_name_at(const void *ctx, uint32_t index, size_t *len)
{
    const h5_reader *r = ctx;
    *len = r->tensors[index].info.name_len;
    return r->tensors[index].info.name;
}

static int grow(void **p, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return 1;
    size_t n = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, n * elem);
    if (!q)
        return 0;
    *p = q;
    *cap = n;
    return 1;
}

static cairn_status rnomem(h5_reader *r)
{
    return r->st = cairn__fail(r->err, CAIRN_E_NOMEM, "%s: out of memory", r->f->path);
}

static cairn_status skip(h5_reader *r, const char *path, const char *why)
{
    if (!grow((void **)&r->skipped, &r->skipcap, r->nskipped, sizeof *r->skipped))
        return rnomem(r);
    char *p = strdup(path);
    if (!p)
        return rnomem(r);
    r->skipped[r->nskipped].path = p;
    r->skipped[r->nskipped++].why = why;
    return CAIRN_OK;
}

/* Refuses what would make libhdf5 read other files, which a hostile file
 * could point anywhere (Keras' own loader refuses external links too). */
static const char *storage_refusal(hid_t ds)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0)
        return "its creation properties cannot be read";
    const char *why = NULL;
    if (H5Pget_layout(dcpl) == H5D_VIRTUAL)
        why = "is a virtual dataset (its data lives in other files)";
    else if (H5Pget_external_count(dcpl) > 0)
        why = "has external storage (its data lives in other files)";
    H5Pclose(dcpl);
    return why;
}

/* 1 when `raw` bytes of data are more than max_inflate and more than
 * H5_RATIO_LIMIT times the bytes libhdf5 stores for dataset ds (a dataset
 * never written reads as its fill value from no storage at all; a filter
 * bomb inflates a few chunk bytes into many). */
static int over_ratio(const cairn_file *f, hid_t ds, uint64_t raw)
{
    uint64_t stored = H5Dget_storage_size(ds), cap;
    return raw > f->max_inflate &&
           !cairn__mul_overflow(stored, (uint64_t)H5_RATIO_LIMIT, &cap) && raw > cap;
}

/* Fills a tensor from an open dataset; *why says why it is skipped instead. */
static cairn_status dataset_shape(h5_reader *r, hid_t ds, const char *path, cairn__tensor *t,
                                  const char **why)
{
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds), mem;
    int owned;
    *why = ft < 0 || sp < 0 ? "its type or shape cannot be read"
                            : dataset_type(ds, ft, &t->info.dtype, &mem, &owned);
    if (!*why)
        h5_close_type(mem, owned);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    H5S_class_t cls = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
    hsize_t dims[H5S_MAX_RANK];
    if (!*why && cls == H5S_NULL)
        *why = "it has a null dataspace (no elements, no shape)";
    else if (!*why && (rank < 0 || rank > CAIRN_MAX_RANK))
        *why = "its rank is more than cairn's 8";
    else if (!*why && H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        *why = "its shape cannot be read";
    h5_drop(ft);
    h5_drop(sp);
    if (*why)
        return CAIRN_OK;
    t->info.rank = (uint32_t)rank;
    t->info.count = 1;
    for (int k = 0; k < rank; k++)
        t->info.dims[k] = dims[k];
    if (cairn__shape_too_big(t->info.rank, t->info.dims, cairn_dtype_size(t->info.dtype))) {
        *why = "its size, counting each zero dimension as 1, is more than 2^62 bytes";
        return CAIRN_OK;
    }
    for (int k = 0; k < rank; k++)
        t->info.count *= dims[k];
    t->info.raw_size = t->info.count * cairn_dtype_size(t->info.dtype);
    return CAIRN_OK;
}

/* Appends a copy of path to a list of paths. */
static cairn_status add_path(h5_reader *r, char ***list, size_t *cap, size_t *n, const char *path)
{
    if (!grow((void **)list, cap, *n, sizeof **list))
        return rnomem(r);
    if (!((*list)[*n] = strdup(path)))
        return rnomem(r);
    (*n)++;
    return CAIRN_OK;
}

static cairn_status add_dataset(h5_reader *r, const char *path)
{
    hid_t ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    if (ds < 0)
        return r->st = cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: hdf5 dataset '%s' cannot be "
                                   "opened", r->f->path, path);
    const char *why = storage_refusal(ds);
    if (why) {
        H5Dclose(ds);
        return r->st = cairn__fail(r->err, CAIRN_E_UNSUPPORTED, "%s: hdf5 dataset '%s' %s; "
                                   "cairn refuses it", r->f->path, path, why);
    }
    hid_t ft = H5Dget_type(ds);
    int is_string = ft >= 0 && H5Tget_class(ft) == H5T_STRING;
    if (ft >= 0)
        H5Tclose(ft);
    if (is_string) {
        H5Dclose(ds);
        return add_path(r, &r->strings, &r->strcap, &r->nstrings, path);
    }
    cairn__tensor t;
    memset(&t, 0, sizeof t);
    cairn_status st = dataset_shape(r, ds, path, &t, &why);
    H5Dclose(ds);
    CAIRN_TRY(st);
    if (!why && cairn__name_check(path, strlen(path), "tensor name", NULL) != CAIRN_OK)
        why = "its path is not a valid tensor name";
    if (why)
        return skip(r, path, why);
    if (!grow((void **)&r->tensors, (size_t *)&r->cap, (size_t)r->count, sizeof *r->tensors))
        return rnomem(r);
    char *name = strdup(path);
    if (!name)
        return rnomem(r);
    t.info.name = name;
    t.info.name_len = strlen(name);
    t.info.stored_size = t.info.raw_size;
    t.info.alignment = 1;
    t.via_load = 1; /* libhdf5 reads it: chunks, filters and byte order are its business */
    r->tensors[r->count++] = t;
    r->payload += t.info.raw_size;
    return CAIRN_OK;
}

static cairn_status add_object(h5_reader *r, const char *path)
{
    return add_path(r, &r->objects, &r->objcap, &r->nobjects, path);
}

static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *ctx)
{
    h5_reader *r = ctx;
    if (info->type == H5L_TYPE_EXTERNAL || info->type >= H5L_TYPE_UD_MIN) {
        r->st = cairn__fail(r->err, CAIRN_E_UNSUPPORTED, "%s: hdf5 link '%s' is an external or "
                            "user-defined link (it points into another file); cairn refuses it",
                            r->f->path, name);
        return -1;
    }
    if (info->type == H5L_TYPE_SOFT) /* not followed: the target has its own hard link */
        return skip(r, name, "a soft link (its target is read under its own path)") ? -1 : 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
        r->st = cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: hdf5 object '%s' cannot be read",
                            r->f->path, name);
        return -1;
    }
    if (oi.type == H5O_TYPE_GROUP || oi.type == H5O_TYPE_DATASET)
        if (add_object(r, name) != CAIRN_OK)
            return -1;
    if (oi.type == H5O_TYPE_DATASET && add_dataset(r, name) != CAIRN_OK)
        return -1;
    return 0;
}

/* ------------------------------------------------------------ attributes */

static cairn_value *string_value(const char *s, size_t len)
{
    cairn_value *v = cairn__utf8_valid(s, len) ? cairn_value_string_n(s, len) : NULL;
    return v ? v : cairn_value_bytes(s, len);
}

/* Reads n strings of attribute a (fixed or variable length) into list. */
static int read_strings(hid_t a, hid_t ft, hid_t sp, size_t n, cairn_value *list)
{
    int ok = 1;
    if (H5Tis_variable_str(ft) > 0) {
        char **s = calloc(n ? n : 1, sizeof *s);
        hid_t mt = H5Tcopy(H5T_C_S1);
        ok = s && mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(mt, H5Tget_cset(ft)) >= 0 && H5Aread(a, mt, s) >= 0;
        for (size_t i = 0; ok && i < n; i++) {
            cairn_value *v = string_value(s[i] ? s[i] : "", s[i] ? strlen(s[i]) : 0);
            ok = v && cairn_value_append(list, v, NULL) == CAIRN_OK;
            if (!ok)
                cairn_value_free(v);
        }
        if (s && mt >= 0 && ok)
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, s);
        if (mt >= 0)
            H5Tclose(mt);
        free(s);
        return ok;
    }
    size_t w = H5Tget_size(ft);
    char *buf = w && n ? malloc(n * w) : NULL;
    if (n && (!w || !buf || H5Aread(a, ft, buf) < 0)) {
        free(buf);
        return 0;
    }
    for (size_t i = 0; ok && i < n; i++) {
        const char *p = buf + i * w;
        size_t len = strnlen(p, w);
        cairn_value *v = string_value(p, len);
        ok = v && cairn_value_append(list, v, NULL) == CAIRN_OK;
        if (!ok)
            cairn_value_free(v);
    }
    free(buf);
    return ok;
}

static int read_numbers(hid_t a, hid_t ft, size_t n, cairn_value *list)
{
    H5T_class_t cls = H5Tget_class(ft);
    int is_bool = 0, owned = 0;
    cairn_dtype dt;
    hid_t mem = -1;
    if (cls == H5T_ENUM)
        is_bool = map_enum(ft, &dt, &mem, &owned) == NULL;
    if (cls == H5T_ENUM && !is_bool) {
        h5_close_type(mem, owned);
        return 1; /* left out */
    }
    int is_int = cls == H5T_INTEGER;
    double *d = malloc((n ? n : 1) * sizeof(double));
    int64_t *q = (int64_t *)d;
    int8_t *b = (int8_t *)d;
    int ok = d && H5Aread(a, is_bool ? mem : is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, d) >= 0;
    for (size_t i = 0; ok && i < n; i++) {
        cairn_value *v = is_bool  ? cairn_value_bool(b[i] != 0)
                         : is_int ? cairn_value_int(q[i])
                                  : cairn_value_float(d[i]);
        ok = v && cairn_value_append(list, v, NULL) == CAIRN_OK;
        if (!ok)
            cairn_value_free(v);
    }
    h5_close_type(mem, owned);
    free(d);
    return ok;
}

/* An attribute as a tree value: scalars as scalars, arrays of any rank as
 * flat lists. *out stays NULL for types the tree does not take. */
static int attr_value(hid_t a, cairn_value **out)
{
    *out = NULL;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int scalar = sp >= 0 && H5Sget_simple_extent_type(sp) == H5S_SCALAR;
    int ok = 1;
    if (n >= 0 && (size_t)n <= H5_MAX_ATTR_ELEMS &&
        (cls == H5T_STRING || cls == H5T_INTEGER || cls == H5T_FLOAT || cls == H5T_ENUM)) {
        cairn_value *list = cairn_value_list();
        ok = list && (cls == H5T_STRING ? read_strings(a, ft, sp, (size_t)n, list)
                                        : read_numbers(a, ft, (size_t)n, list));
        if (ok && scalar && cairn_value_count(list) == 1) {
            *out = cairn_value_clone(cairn_value_at(list, 0));
            ok = *out != NULL;
            cairn_value_free(list);
        } else if (ok && (!scalar || cls != H5T_ENUM || cairn_value_count(list))) {
            *out = list;
        } else {
            cairn_value_free(list);
        }
    }
    h5_drop(ft);
    h5_drop(sp);
    return ok;
}

/* Appends the n strings at ptrs (NUL-terminated, NULL for none) to list,
 * counting their bytes into *total; 0 when out of memory. */
static int append_strings(char **ptrs, size_t n, uint64_t *total, cairn_value *list)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = ptrs[i] ? strlen(ptrs[i]) : 0;
        *total += len;
        cairn_value *v = string_value(ptrs[i] ? ptrs[i] : "", len);
        if (!v || cairn_value_append(list, v, NULL) != CAIRN_OK) {
            cairn_value_free(v);
            return 0;
        }
    }
    return 1;
}

/* Variable-length strings of dataset ds into list, 16 at a time (element
 * selections), stopping once more than `budget` bytes came: many elements
 * may point at one long string in the file's heap, so no more than 16 of
 * them are ever in memory at once. Returns NULL or why it stopped. */
static const char *read_vlen(hid_t ds, hid_t ft, hid_t sp, size_t n, uint64_t budget,
                             cairn_value *list)
{
    enum { K = 16 };
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK], coords[K * H5S_MAX_RANK];
    if (rank < 0 || (rank > 0 && H5Sget_simple_extent_dims(sp, dims, NULL) < 0))
        return "a string dataset whose shape cannot be read";
    hid_t mt = H5Tcopy(H5T_C_S1), fs = H5Scopy(sp);
    const char *why = mt < 0 || fs < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
                              H5Tset_cset(mt, H5Tget_cset(ft)) < 0
                          ? "a string dataset libhdf5 cannot read"
                          : NULL;
    uint64_t total = 0;
    for (size_t at = 0; !why && at < n; at += K) {
        hsize_t k = n - at < K ? n - at : K;
        for (hsize_t j = 0; j < k; j++) { /* element at + j, unravelled (row-major) */
            uint64_t rest = at + j;
            for (int d = rank - 1; d >= 0; d--) {
                coords[j * (hsize_t)rank + (hsize_t)d] = rest % dims[d];
                rest /= dims[d];
            }
        }
        char *ptrs[K] = {0};
        hid_t ms = H5Screate_simple(1, &k, NULL);
        herr_t e = ms < 0 ? -1
                   : rank == 0 ? H5Sselect_all(fs)
                               : H5Sselect_elements(fs, H5S_SELECT_SET, (size_t)k, coords);
        if (e >= 0)
            e = H5Dread(ds, mt, ms, fs, H5P_DEFAULT, ptrs);
        if (e < 0)
            why = "a string dataset whose strings cannot be read";
        else if (!append_strings(ptrs, (size_t)k, &total, list))
            why = "a string dataset cairn ran out of memory for";
        else if (total > budget)
            why = "a string dataset of more bytes than cairn reads for the tree (16 x the file "
                  "size + 1 MiB)";
        if (e >= 0)
            H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, ptrs);
        if (ms >= 0)
            H5Sclose(ms);
    }
    h5_drop(mt);
    h5_drop(fs);
    return why;
}

/* String dataset `path` as a tree value (a scalar as a string, an array of
 * any rank as a flat list), or NULL with *why saying why it is not carried.
 * Bounded like attributes (2^20 strings) and tensors (the ratio limit),
 * in bytes by 16 x the file size + 1 MiB, and in strings by that / 16. */
static cairn_value *string_dataset(const h5_reader *r, const char *path, const char **why)
{
    hid_t ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    hid_t ft = ds >= 0 ? H5Dget_type(ds) : -1, sp = ds >= 0 ? H5Dget_space(ds) : -1;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int vlen = ft >= 0 && H5Tis_variable_str(ft) > 0;
    uint64_t w = ft >= 0 ? H5Tget_size(ft) : 0, budget, bytes = 0;
    if (cairn__mul_overflow(r->f->src.size, 16, &budget) ||
        cairn__add_overflow(budget, UINT64_C(1) << 20, &budget))
        budget = UINT64_MAX;
    cairn_value *list = NULL;
    *why = NULL;
    if (ds < 0 || ft < 0 || sp < 0 || n < 0)
        *why = "a string dataset whose type or shape cannot be read";
    else if (H5Sget_simple_extent_type(sp) == H5S_NULL)
        *why = "a string dataset with a null dataspace";
    else if ((uint64_t)n > H5_MAX_ATTR_ELEMS || (uint64_t)n > budget / 16)
        *why = "a string dataset of more than 2^20 strings, or more than one per byte of the "
               "file (each costs a tree node)";
    else if (cairn__mul_overflow((uint64_t)n, w, &bytes) || over_ratio(r->f, ds, bytes))
        *why = "a string dataset of far more data than the file stores for it (ratio limit)";
    else if (!vlen && bytes > budget)
        *why = "a string dataset of more bytes than cairn reads for the tree (16 x the file "
               "size + 1 MiB)";
    else if (!(list = cairn_value_list()))
        *why = "a string dataset cairn ran out of memory for";
    else if (vlen)
        *why = read_vlen(ds, ft, sp, (size_t)n, budget, list);
    else if (n > 0) {
        char *buf = malloc((size_t)bytes);
        hid_t mt = H5Tcopy(ft);
        if (!buf || mt < 0 || H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            *why = "a string dataset whose strings cannot be read";
        for (size_t i = 0; !*why && i < (size_t)n; i++) {
            const char *q = buf + i * w;
            cairn_value *v = string_value(q, strnlen(q, (size_t)w));
            if (!v || cairn_value_append(list, v, NULL) != CAIRN_OK) {
                cairn_value_free(v);
                *why = "a string dataset cairn ran out of memory for";
            }
        }
        if (mt >= 0)
            H5Tclose(mt);
        free(buf);
    }
    if (!*why && H5Sget_simple_extent_type(sp) == H5S_SCALAR && cairn_value_count(list) == 1) {
        cairn_value *one = cairn_value_clone(cairn_value_at(list, 0));
        cairn_value_free(list);
        list = one;
        if (!one)
            *why = "a string dataset cairn ran out of memory for";
    }
    if (*why) {
        cairn_value_free(list);
        list = NULL;
    }
    h5_drop(ft);
    h5_drop(sp);
    h5_drop(ds);
    return list;
}

typedef struct attr_walk {
    h5_reader *r;
    const char *path;
    cairn_value *tree;
} attr_walk;

static herr_t visit_attr(hid_t obj, const char *name, const H5A_info_t *info, void *ctx)
{
    attr_walk *w = ctx;
    (void)info;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    cairn_value *v = NULL;
    int ok = a >= 0 && attr_value(a, &v);
    if (a >= 0)
        H5Aclose(a);
    if (!ok) {
        cairn_value_free(v);
        w->r->st = cairn__fail(w->r->err, CAIRN_E_CORRUPT, "%s: hdf5 attribute '%s@%s' cannot "
                               "be read", w->r->f->path, w->path, name);
        return -1;
    }
    if (!v)
        return 0;
    size_t plen = strlen(w->path), nlen = strlen(name);
    char *key = malloc(plen + nlen + 2);
    if (!key) {
        cairn_value_free(v);
        rnomem(w->r);
        return -1;
    }
    memcpy(key, w->path, plen);
    key[plen] = '@';
    memcpy(key + plen + 1, name, nlen + 1);
    if (cairn_value_set(w->tree, key, v, NULL) != CAIRN_OK) {
        cairn_value_free(v);
        free(key);
        rnomem(w->r);
        return -1;
    }
    free(key);
    return 0;
}

static cairn_status object_attrs(h5_reader *r, const char *path, cairn_value *tree)
{
    hid_t o = H5Oopen(r->file, path[0] ? path : "/", H5P_DEFAULT);
    if (o < 0)
        return r->st = cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: hdf5 object '%s' cannot be "
                                   "opened", r->f->path, path);
    attr_walk w = {r, path, tree};
    hsize_t idx = 0;
    herr_t e = H5Aiterate2(o, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, visit_attr, &w);
    if (e < 0 && r->st == CAIRN_OK) { /* no creation order tracked: by name */
        idx = 0;
        e = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, &w);
    }
    H5Oclose(o);
    if (e < 0 && r->st == CAIRN_OK)
        r->st = cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: hdf5 attributes of '%s' cannot be "
                            "read", r->f->path, path);
    return r->st;
}

/* ---------------------------------------------------------- Keras order */

/* The list attribute `key` of the tree as strings, or NULL. */
static const cairn_value *string_list(const cairn_value *tree, const char *key)
{
    const cairn_value *v = cairn_value_get(tree, key);
    return v && cairn_value_get_type(v) == CAIRN_VALUE_LIST ? v : NULL;
}

/* Moves the tensor at path `key` to position *next if it is at or after it. */
static void move_front(h5_reader *r, const char *key, uint64_t *next)
{
    for (uint64_t k = *next; k < r->count; k++) {
        if (strcmp(r->tensors[k].info.name, key) != 0)
            continue;
        cairn__tensor t = r->tensors[k];
        memmove(&r->tensors[*next + 1], &r->tensors[*next], (k - *next) * sizeof t);
        r->tensors[(*next)++] = t;
        return;
    }
}

/* Entry j of a Keras string list as a path under `dir` ("" for the root)
 * into buf; 0 when the entry is not a name. */
static int list_path(const cairn_value *list, size_t j, const char *dir, char *buf, size_t size)
{
    const void *name;
    size_t len;
    if (cairn_value_get_data(cairn_value_at(list, j), &name, &len) != CAIRN_OK ||
        len > CAIRN_NAME_MAX)
        return 0;
    snprintf(buf, size, "%s%s%.*s", dir, dir[0] ? "/" : "", (int)len, (const char *)name);
    return 1;
}

/* Moves the datasets `weights` (a list of names under group `dir`) to the
 * front, in that order. */
static void weights_front(h5_reader *r, const cairn_value *weights, const char *dir,
                          uint64_t *next)
{
    char key[2 * CAIRN_NAME_MAX + 8];
    for (size_t j = 0; weights && j < cairn_value_count(weights); j++)
        if (list_path(weights, j, dir, key, sizeof key))
            move_front(r, key, next);
}

/* Keras' legacy order: the layers of `layer_names` (in model_weights, or at
 * the root for save_weights files), each layer's `weight_names` in order,
 * then optimizer_weights' `weight_names`; other datasets follow by path. */
static cairn_status keras_order(h5_reader *r, const cairn_value *tree)
{
    const char *base = cairn_value_get(tree, "model_weights@layer_names") ? "model_weights" : "";
    char key[2 * CAIRN_NAME_MAX + 64], dir[CAIRN_NAME_MAX + 64];
    snprintf(key, sizeof key, "%s@layer_names", base);
    const cairn_value *layers = string_list(tree, key);
    uint64_t next = 0;
    for (size_t i = 0; layers && i < cairn_value_count(layers); i++) {
        if (!list_path(layers, i, base, dir, sizeof dir))
            continue;
        snprintf(key, sizeof key, "%s@weight_names", dir);
        weights_front(r, string_list(tree, key), dir, &next);
    }
    if (layers)
        weights_front(r, string_list(tree, "optimizer_weights@weight_names"), "optimizer_weights",
                      &next);
    return CAIRN_OK;
}

/* Appends {"path", "why"} to the list of what the tree leaves out; 0 when
 * out of memory. */
static int skipped_entry(cairn_value *list, const char *path, const char *why)
{
    cairn_value *m = cairn_value_map(), *p = cairn_value_string(path),
                *w = cairn_value_string(why);
    if (m && p && cairn_value_set(m, "path", p, NULL) == CAIRN_OK) {
        p = NULL;
        if (w && cairn_value_set(m, "why", w, NULL) == CAIRN_OK) {
            w = NULL;
            if (cairn_value_append(list, m, NULL) == CAIRN_OK)
                return 1;
        }
    }
    cairn_value_free(p);
    cairn_value_free(w);
    cairn_value_free(m);
    return 0;
}

/* String datasets as keys named by their paths; those not carried go to
 * the skipped list. */
static cairn_status string_datasets(h5_reader *r, cairn_value *tree, cairn_value *skipped)
{
    for (size_t i = 0; i < r->nstrings; i++) {
        const char *why = NULL;
        cairn_value *v = NULL;
        if (cairn_value_get(tree, r->strings[i]))
            why = "a string dataset whose path is already a key of the tree";
        else
            v = string_dataset(r, r->strings[i], &why);
        if (v && cairn_value_set(tree, r->strings[i], v, NULL) != CAIRN_OK) {
            cairn_value_free(v);
            return rnomem(r);
        }
        if (!v && !skipped_entry(skipped, r->strings[i], why))
            return rnomem(r);
    }
    return CAIRN_OK;
}

/* The tree: every attribute as "GROUPPATH@ATTR" (root attributes "@ATTR"),
 * every string dataset as "PATH", plus "hdf5.skipped" listing datasets and
 * links the tree and the tensors leave out. */
static cairn_status build_tree(h5_reader *r, cairn_value **out)
{
    cairn_value *tree = cairn_value_map(), *skipped = cairn_value_list();
    cairn_status st = tree && skipped ? object_attrs(r, "", tree) : rnomem(r);
    for (size_t i = 0; st == CAIRN_OK && r->keras && i < cairn_value_count(r->keras); i++) {
        cairn_value *c = cairn_value_clone(cairn_value_at(r->keras, i));
        if (!c || cairn_value_set(tree, cairn_value_key_at(r->keras, i), c, NULL) != CAIRN_OK) {
            cairn_value_free(c);
            st = rnomem(r);
        }
    }
    for (size_t i = 0; st == CAIRN_OK && i < r->nobjects; i++)
        st = object_attrs(r, r->objects[i], tree);
    for (size_t i = 0; st == CAIRN_OK && i < r->nskipped; i++)
        if (!skipped_entry(skipped, r->skipped[i].path, r->skipped[i].why))
            st = rnomem(r);
    if (st == CAIRN_OK)
        st = string_datasets(r, tree, skipped);
    if (st == CAIRN_OK && cairn_value_count(skipped)) {
        if (cairn_value_set(tree, "hdf5.skipped", skipped, NULL) == CAIRN_OK)
            skipped = NULL;
        else
            st = rnomem(r);
    }
    cairn_value_free(skipped);
    if (st != CAIRN_OK) {
        cairn_value_free(tree);
        return st;
    }
    *out = tree;
    return CAIRN_OK;
}

/* Drops what a walk collected, for a walk in another order. */
static void forget_walk(h5_reader *r)
{
    for (uint64_t i = 0; i < r->count; i++)
        free((char *)r->tensors[i].info.name);
    for (size_t i = 0; i < r->nobjects; i++)
        free(r->objects[i]);
    for (size_t i = 0; i < r->nskipped; i++)
        free(r->skipped[i].path);
    for (size_t i = 0; i < r->nstrings; i++)
        free(r->strings[i]);
    r->nstrings = 0;
    r->count = 0;
    r->nobjects = 0;
    r->nskipped = 0;
    r->payload = 0;
}

static void reader_free(h5_reader *r)
{
    if (!r)
        return;
    forget_walk(r);
    free(r->tensors);
    free(r->objects);
    free(r->skipped);
    free(r->strings);
    cairn__nameset_free(&r->index);
    cairn_value_free(r->keras);
    if (r->file >= 0)
        H5Fclose(r->file);
    free(r->owned_image);
    free(r);
}

/* The file image callbacks that make libhdf5 read bytes in place instead of
 * copying them (a read-only open never writes or grows the image): every
 * "allocation" of an image of that size is the image itself, copies onto
 * itself are no-ops and nothing is freed (the owner frees it after
 * H5Fclose). So a .keras weights member costs its size once, not twice. */
static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
    const h5_image *im = udata;
    (void)op;
    return size == im->size ? im->buf : NULL;
}

static void *image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op,
                          void *udata)
{
    (void)size;
    (void)op;
    (void)udata;
    return dest == src ? dest : NULL;
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
    const h5_image *im = udata;
    (void)op;
    return ptr == im->buf ? 0 : -1;
}

/* libhdf5 wants both when there is callback data: it is shared, not copied
 * (the reader owns it for the file's lifetime). */
static void *image_udata_copy(void *udata) { return udata; }

static herr_t image_udata_free(void *udata)
{
    (void)udata;
    return 0;
}

/* A path input is opened by libhdf5 itself; bytes in memory (a memory
 * input, borrowed until close, or a .keras archive's weights, which the
 * reader keeps until close) as a file image on the core driver, read in
 * place. */
/* libhdf5 keeps the object headers it has read in a metadata cache that
 * grows to 32 MiB by default: walking a file of 20,000 datasets kept about
 * 1 KB each. The walk reads each header once, so a small cache costs no
 * reads and bounds what the reader holds whatever the file's size. */
static void small_cache(hid_t fapl)
{
    H5AC_cache_config_t c;
    memset(&c, 0, sizeof c);
    c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pget_mdc_config(fapl, &c) < 0)
        return;
    c.set_initial_size = 1;
    c.initial_size = (size_t)1 << 20;
    c.min_size = (size_t)1 << 20;
    c.max_size = (size_t)2 << 20;
    H5Pset_mdc_config(fapl, &c); /* a cache libhdf5 refuses leaves its default */
}

static hid_t open_file(const cairn_file *f, h5_reader *r, const void *image, size_t size)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t file = -1;
    if (fapl >= 0)
        small_cache(fapl);
    if (!image) { /* the file cairn opened and checked, not whatever the path names now */
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", f->src.fd);
        file = H5Fopen(access(self, R_OK) == 0 ? self : f->path, H5F_ACC_RDONLY,
                       fapl >= 0 ? fapl : H5P_DEFAULT);
        if (fapl >= 0)
            H5Pclose(fapl);
        return file;
    }
    r->image = (h5_image){(void *)image, size};
    H5FD_file_image_callbacks_t cb = {image_malloc,     image_memcpy,     NULL, image_free,
                                      image_udata_copy, image_udata_free, &r->image};
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 &&
        H5Pset_file_image_callbacks(fapl, &cb) >= 0 &&
        H5Pset_file_image(fapl, (void *)image, size) >= 0) {
        char name[64];
        snprintf(name, sizeof name, "cairn-image-%p", (const void *)f);
        file = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    }
    if (fapl >= 0)
        H5Pclose(fapl);
    return file;
}

/* ------------------------------------------------------ .keras archives */

static cairn_value *json_value(const json_t *j, int depth);

static cairn_value *json_container(const json_t *j, int depth)
{
    int is_map = json_is_object(j);
    cairn_value *v = is_map ? cairn_value_map() : cairn_value_list();
    const char *key;
    json_t *child;
    size_t i;
    if (!v)
        return NULL;
    if (is_map) {
        json_object_foreach((json_t *)j, key, child) {
            cairn_value *c = json_value(child, depth + 1);
            if (!c || cairn_value_set(v, key, c, NULL) != CAIRN_OK) {
                cairn_value_free(c);
                cairn_value_free(v);
                return NULL;
            }
        }
        return v;
    }
    json_array_foreach(j, i, child) {
        cairn_value *c = json_value(child, depth + 1);
        if (!c || cairn_value_append(v, c, NULL) != CAIRN_OK) {
            cairn_value_free(c);
            cairn_value_free(v);
            return NULL;
        }
    }
    return v;
}

/* JSON as a tree (NULL on failure or nesting deeper than KERAS_JSON_DEPTH). */
static cairn_value *json_value(const json_t *j, int depth)
{
    if (depth > KERAS_JSON_DEPTH)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY: return json_container(j, depth);
    case JSON_STRING: return cairn_value_string_n(json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return cairn_value_int((int64_t)json_integer_value(j));
    case JSON_REAL: return cairn_value_float(json_real_value(j));
    case JSON_TRUE: return cairn_value_bool(1);
    case JSON_FALSE: return cairn_value_bool(0);
    case JSON_NULL: return cairn_value_null();
    }
    return NULL;
}

/* Member `name` of the archive, inflated and checked (CRC-32), in a new
 * buffer; *m is NULL when the member is absent. */
static cairn_status member_bytes(const cairn_file *f, const cairn__zip *z, const char *name,
                                 uint64_t max, uint8_t **out, size_t *len, cairn_error *err)
{
    const cairn__zip_member *m = cairn__zip_find(z, name, strlen(name));
    *out = NULL;
    *len = 0;
    if (!m)
        return CAIRN_OK;
    if (m->size > max || m->size > SIZE_MAX - 1)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: .keras member '%s' is %llu bytes, more than "
                           "the %llu cairn reads", f->path, name, (unsigned long long)m->size,
                           (unsigned long long)max);
    uint8_t *b = malloc((size_t)m->size + 1);
    if (!b)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: .keras member '%s': out of memory", f->path,
                           name);
    cairn_status st = cairn__zip_read(&f->src, m, 0, b, (size_t)m->size, CAIRN__ZIP_CHECK, err);
    if (st != CAIRN_OK) {
        free(b);
        return st;
    }
    b[m->size] = 0;
    *out = b;
    *len = (size_t)m->size;
    return CAIRN_OK;
}

static cairn_status keras_json(h5_reader *r, const cairn__zip *z, const char *member,
                               const char *key)
{
    uint8_t *text;
    size_t len;
    CAIRN_TRY(member_bytes(r->f, z, member, KERAS_JSON_MAX, &text, &len, r->err));
    if (!text)
        return CAIRN_OK;
    json_error_t je;
    json_t *j = json_loadb((const char *)text, len, JSON_DECODE_ANY, &je);
    free(text);
    if (!j)
        return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: .keras member '%s': invalid JSON at "
                           "byte %d: %s", r->f->path, member, je.position, je.text);
    cairn_value *v = json_value(j, 0);
    json_decref(j);
    if (!v || cairn_value_set(r->keras, key, v, NULL) != CAIRN_OK) {
        cairn_value_free(v);
        return cairn__fail(r->err, CAIRN_E_LIMIT, "%s: .keras member '%s': out of memory, "
                           "nesting deeper than %d, or text that is not UTF-8", r->f->path,
                           member, KERAS_JSON_DEPTH);
    }
    return CAIRN_OK;
}

/* A Keras 3 .keras archive (a ZIP of config.json, metadata.json and
 * model.weights.h5): the weights file opened from memory, the JSON members
 * into the tree under "config" and "metadata". */
static cairn_status open_keras(const cairn_file *f, h5_reader *r)
{
    cairn__zip z;
    memset(&z, 0, sizeof z);
    uint8_t *h5 = NULL;
    size_t len = 0;
    cairn_status st = cairn__zip_open(&f->src, f->max_inflate, &z, r->err);
    if (st == CAIRN_OK)
        st = member_bytes(f, &z, KERAS_WEIGHTS, UINT64_MAX, &h5, &len, r->err);
    if (st == CAIRN_OK && !h5)
        st = cairn__fail(r->err, CAIRN_E_FORMAT, "%s: ZIP archive without " KERAS_WEIGHTS
                         " (not a .keras file)", f->path);
    if (st == CAIRN_OK && !(r->keras = cairn_value_map()))
        st = rnomem(r);
    if (st == CAIRN_OK)
        st = keras_json(r, &z, "config.json", "config");
    if (st == CAIRN_OK)
        st = keras_json(r, &z, "metadata.json", "metadata");
    if (st == CAIRN_OK) {
        r->owned_image = h5; /* read in place: kept until the file is closed */
        h5 = NULL;
        r->file = open_file(f, r, r->owned_image, len);
        if (r->file < 0)
            st = cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: .keras member " KERAS_WEIGHTS ": "
                             "libhdf5 cannot open it as an HDF5 file", f->path);
    }
    free(h5);
    cairn__zip_close(&z);
    return st;
}

int cairn__keras_sniff(const cairn_file *f)
{
    cairn__zip z;
    memset(&z, 0, sizeof z);
    int yes = cairn__zip_open(&f->src, UINT64_MAX, &z, NULL) == CAIRN_OK &&
              cairn__zip_find(&z, KERAS_WEIGHTS, strlen(KERAS_WEIGHTS)) != NULL;
    cairn__zip_close(&z);
    return yes;
}

/* Compares paths with runs of digits as numbers, so Keras 3's vars/2
 * comes before vars/10. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            const char *x = a, *y = b;
            while (*x == '0' && x[1] >= '0' && x[1] <= '9')
                x++;
            while (*y == '0' && y[1] >= '0' && y[1] <= '9')
                y++;
            size_t nx = strspn(x, "0123456789"), ny = strspn(y, "0123456789");
            if (nx != ny)
                return nx < ny ? -1 : 1;
            int c = memcmp(x, y, nx);
            if (c)
                return c;
            a = x + nx;
            b = y + ny;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int tensor_natural_cmp(const void *x, const void *y)
{
    return natural_cmp(((const cairn__tensor *)x)->info.name,
                       ((const cairn__tensor *)y)->info.name);
}

static cairn_status index_tensors(h5_reader *r)
{
    if (r->count > UINT32_MAX - 1)
        return cairn__fail(r->err, CAIRN_E_LIMIT, "%s: too many datasets", r->f->path);
    for (uint64_t i = 0; i < r->count; i++)
        CAIRN_TRY(cairn__nameset_insert(&r->index, (uint32_t)i, tensor_name_at, r, r->err));
    return CAIRN_OK;
}

static cairn_status parse_locked(const cairn_file *f, h5_reader *r)
{
    plugin_path();
    uint8_t head[4] = {0};
    if (f->src.size >= 4)
        CAIRN_TRY(cairn__file_read(f, 0, head, 4, r->err));
    if (cairn__zip_magic(head, f->src.size < 4 ? (size_t)f->src.size : 4)) {
        CAIRN_TRY(open_keras(f, r));
    } else {
        /* A source with neither a path libhdf5 can open nor bytes in memory
         * (object storage): libhdf5 needs the whole image, which the reader
         * keeps until close (owned_image), as a .keras archive's weights. */
        const void *image = f->src.fd >= 0 ? NULL : f->src.base;
        if (f->src.fd < 0 && !image) {
            uint8_t *whole = f->src.size <= SIZE_MAX
                                 ? malloc(f->src.size ? (size_t)f->src.size : 1)
                                 : NULL;
            if (!whole)
                return cairn__fail(r->err, CAIRN_E_NOMEM, "%s: cannot hold the %llu-byte HDF5 "
                                   "file in memory", f->path, (unsigned long long)f->src.size);
            cairn_status st = cairn__file_read(f, 0, whole, (size_t)f->src.size, r->err);
            if (st != CAIRN_OK) {
                free(whole);
                return st;
            }
            free(r->owned_image);
            r->owned_image = whole;
            image = whole;
        }
        r->file = open_file(f, r, image, (size_t)f->src.size);
        if (r->file < 0)
            return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: libhdf5 cannot open it as an HDF5 "
                               "file (damaged superblock or structure)", f->path);
    }
    /* Creation order where every group tracks it (files cairn writes: the
     * tensors' insertion order), else name order. */
    herr_t e = H5Lvisit(r->file, H5_INDEX_CRT_ORDER, H5_ITER_INC, visit_link, r);
    if (e < 0 && r->st == CAIRN_OK) {
        forget_walk(r);
        e = H5Lvisit(r->file, H5_INDEX_NAME, H5_ITER_INC, visit_link, r);
    }
    if (r->st != CAIRN_OK)
        return r->st;
    if (e < 0)
        return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: libhdf5 cannot walk its groups",
                           f->path);
    if (r->keras && r->count > 1) /* Keras 3 names its variables 0, 1, ..., 10 */
        qsort(r->tensors, (size_t)r->count, sizeof *r->tensors, tensor_natural_cmp);
    cairn_value *tree;
    CAIRN_TRY(build_tree(r, &tree));
    cairn_status st = keras_order(r, tree);
    cairn_value_free(tree);
    CAIRN_TRY(st);
    return index_tensors(r);
}

static cairn_status h5_open(cairn_file *f, cairn_error *err)
{
    h5_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    r->file = -1;
    r->f = f;
    r->err = err;
    h5_guard g;
    h5_enter(&g);
    cairn_status st = parse_locked(f, r);
    if (st != CAIRN_OK)
        reader_free(r);
    h5_leave(&g);
    if (st != CAIRN_OK)
        return st;
    r->err = NULL;
    /* close is h5_close: libhdf5 is entered under its lock. HDF5 files
     * carry per-structure versions, not one. */
    cairn__table_init(&r->table, r->tensors, sizeof *r->tensors, r->count, NULL);
    cairn__table_index(&r->table, &r->index, tensor_name_at, r);
    cairn__table_info(&r->table, CAIRN_FORMAT_HDF5, 0, r->payload, r->payload, 1, 1);
    f->state = r;
    return CAIRN_OK;
}

static void h5_close(cairn_file *f)
{
    h5_guard g;
    h5_enter(&g);
    reader_free(f->state);
    h5_leave(&g);
    f->state = NULL;
}

static cairn_status h5_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    h5_reader *r = f->state;
    h5_guard g;
    h5_enter(&g);
    r->err = err;
    r->st = CAIRN_OK;
    cairn_status st = build_tree(r, out);
    r->err = NULL;
    h5_leave(&g);
    return st;
}

/* The Debian package that holds a filter plugin cairn knows of, for the
 * message when libhdf5 cannot load it. */
static const char *filter_package(H5Z_filter_t id)
{
    switch (id) {
    case 32000: return "hdf5-plugin-lzf";                 /* LZF (h5py's 'lzf') */
    case 32001: return "hdf5-filter-plugin-blosc-serial"; /* Blosc */
    case 307:                                             /* BZip2 */
    case 32004: return "hdf5-filter-plugin";              /* LZ4 */
    case 32008: return "no Debian package (Bitshuffle)";
    default: return NULL;
    }
}

/* After a failed read: CAIRN_E_UNSUPPORTED naming the first filter of the
 * dataset that libhdf5 cannot load (its id, the name the file gives it, the
 * package that has it), else CAIRN_E_CORRUPT. Filters h5py writes are
 * marked optional, but a chunk they were applied to cannot be read
 * without them, so every filter counts. */
static cairn_status read_failed(const cairn_file *f, hid_t ds, const char *name,
                                cairn_error *err)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: hdf5 dataset '%s': its creation "
                           "properties cannot be read", f->path, name);
    int n = H5Pget_nfilters(dcpl);
    cairn_status st = CAIRN_OK;
    for (int i = 0; st == CAIRN_OK && i < n; i++) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        char fname[64] = "", shown[96];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname,
                                         fname, NULL);
        if (id < 0 || H5Zfilter_avail(id) > 0)
            continue;
        const char *pkg = filter_package(id);
        st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: hdf5 dataset '%s' needs filter %d "
                         "('%s'), which libhdf5 cannot load%s%s (plugins are looked up in "
                         "HDF5_PLUGIN_PATH and " CAIRN_HDF5_PLUGIN_DIR ")", f->path, name,
                         (int)id, cairn__printable(fname, strnlen(fname, sizeof fname), shown,
                                                   sizeof shown),
                         pkg ? ": install " : "", pkg ? pkg : "");
    }
    H5Pclose(dcpl);
    if (st == CAIRN_OK)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: hdf5 dataset '%s': libhdf5 cannot read it "
                         "(damaged chunk, failed filter or fletcher32 checksum)", f->path, name);
    return st;
}

/* The ratio limit (over_ratio): CAIRN_E_LIMIT before anything is read or
 * allocated. */
static cairn_status check_inflate(const cairn_file *f, hid_t ds, const char *name, uint64_t raw,
                                  cairn_error *err)
{
    if (!over_ratio(f, ds, raw))
        return CAIRN_OK;
    uint64_t stored = H5Dget_storage_size(ds);
    return cairn__fail(err, CAIRN_E_LIMIT, "%s: hdf5 dataset '%s' is %llu bytes of data from "
                       "%llu bytes stored in the file (never-written data read as its fill "
                       "value, or a compression bomb): more than %d times that and more than "
                       "max_inflate (%llu bytes); raise cairn_open_opts.max_inflate to read it",
                       f->path, name, (unsigned long long)raw, (unsigned long long)stored,
                       H5_RATIO_LIMIT, (unsigned long long)f->max_inflate);
}

/* Opens tensor t's dataset for reading, with the memory type that reads
 * it, after the type and ratio checks. On failure nothing stays
 * open. */
static cairn_status open_for_read(const cairn_file *f, const cairn__tensor *t, hid_t *ds,
                                  hid_t *mem, int *owned, cairn_error *err)
{
    const h5_reader *r = f->state;
    *mem = -1;
    *owned = 0;
    *ds = H5Dopen2(r->file, t->info.name, H5P_DEFAULT);
    if (*ds < 0)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: hdf5 dataset '%s' cannot be opened",
                           f->path, t->info.name);
    hid_t ft = H5Dget_type(*ds);
    cairn_dtype dt = CAIRN_DTYPE_INVALID;
    const char *why = ft < 0 ? "no type" : dataset_type(*ds, ft, &dt, mem, owned);
    if (ft >= 0)
        H5Tclose(ft);
    cairn_status st = CAIRN_OK;
    if (why || dt != t->info.dtype)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: hdf5 dataset '%s' changed type since the "
                         "file was opened", f->path, t->info.name);
    if (st == CAIRN_OK)
        st = check_inflate(f, *ds, t->info.name, t->info.raw_size, err);
    if (st != CAIRN_OK) {
        h5_close_type(*mem, *owned);
        H5Dclose(*ds);
        *ds = *mem = -1;
        *owned = 0;
    }
    return st;
}

static cairn_status load_locked(const cairn_file *f, const cairn__tensor *t, void *dst,
                                cairn_error *err)
{
    hid_t ds, mem;
    int owned;
    CAIRN_TRY(open_for_read(f, t, &ds, &mem, &owned, err));
    herr_t e = t->info.count ? H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) : 0;
    cairn_status st = e < 0 ? read_failed(f, ds, t->info.name, err) : CAIRN_OK;
    h5_close_type(mem, owned);
    H5Dclose(ds);
    return st;
}

static cairn_status h5_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const h5_reader *r = f->state;
    h5_guard g;
    h5_enter(&g);
    cairn_status st = load_locked(f, &r->tensors[index], dst, err);
    h5_leave(&g);
    return st;
}

/* Reads hyperslab [start, start + count) of ds into buf. */
static herr_t read_slab(hid_t ds, hid_t mem, int rank, const hsize_t *start,
                        const hsize_t *count, void *buf)
{
    hsize_t n = 1;
    for (int k = 0; k < rank; k++)
        n *= count[k];
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, &n, NULL);
    herr_t e = fs < 0 || ms < 0 ? -1
                                : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (e >= 0)
        e = H5Dread(ds, mem, ms, fs, H5P_DEFAULT, buf);
    h5_drop(fs);
    h5_drop(ms);
    return e;
}

/* Reads a whole dataset once, in hyperslabs of at most H5_VERIFY_BLOCK
 * bytes (or one row of the innermost axis when a single element is larger,
 * which no dtype is): axis `a` is the outermost one whose inner rows fit,
 * read `b` rows at a time, for every index of the axes before it. */
static cairn_status verify_locked(const cairn_file *f, const cairn__tensor *t, cairn_error *err)
{
    hid_t ds, mem;
    int owned;
    CAIRN_TRY(open_for_read(f, t, &ds, &mem, &owned, err));
    const cairn_tensor_info *in = &t->info;
    int rank = (int)in->rank;
    uint64_t block = in->raw_size <= H5_VERIFY_BLOCK ? in->raw_size : 0, b = 0;
    uint64_t inner = cairn_dtype_size(in->dtype); /* bytes of one index of axis a */
    int a = rank - 1;
    hsize_t start[CAIRN_MAX_RANK] = {0}, count[CAIRN_MAX_RANK];
    if (!block) { /* in pieces: b rows of axis a, one index of each axis before it */
        /* no overflow: no dimension is 0, and every product is at most raw_size */
        while (a > 0 && inner * in->dims[a] <= H5_VERIFY_BLOCK)
            inner *= in->dims[a--];
        b = H5_VERIFY_BLOCK / inner ? H5_VERIFY_BLOCK / inner : 1;
        if (b > in->dims[a])
            b = in->dims[a];
        block = b * inner;
        for (int k = 0; k < rank; k++)
            count[k] = k < a ? 1 : k == a ? b : in->dims[k];
    }
    void *buf = malloc(block ? (size_t)block : 1);
    herr_t e = buf ? 0 : -1;
    if (buf && !b && in->count)
        e = H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    while (buf && b && e >= 0) {
        count[a] = in->dims[a] - start[a] < b ? in->dims[a] - start[a] : b;
        e = read_slab(ds, mem, rank, start, count, buf);
        int k = a; /* the next hyperslab: an odometer over axes 0..a */
        start[k] += count[k];
        while (k > 0 && start[k] >= in->dims[k]) {
            start[k--] = 0;
            start[k]++;
        }
        if (start[0] >= in->dims[0])
            break;
    }
    cairn_status st = !buf ? cairn__fail(err, CAIRN_E_NOMEM, "%s: hdf5 dataset '%s': out of "
                                         "memory", f->path, in->name)
                      : e < 0 ? read_failed(f, ds, in->name, err)
                              : CAIRN_OK;
    free(buf);
    h5_close_type(mem, owned);
    H5Dclose(ds);
    return st;
}

/* Reads every dataset once (filters and fletcher32 checked by libhdf5). */
static cairn_status h5_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    const h5_reader *r = f->state;
    h5_guard g;
    h5_enter(&g);
    cairn_status st = verify_locked(f, &r->tensors[index], err);
    h5_leave(&g);
    return st;
}

/* The structure is libhdf5's to check; the attributes must decode. */
const cairn__reader_ops cairn__hdf5_reader =
    CAIRN__READER_OPS(h5, CAIRN_FORMAT_HDF5, .close = h5_close,
                      .verify_structure = cairn__metadata_check,
                      .read_metadata = h5_read_metadata, .load = h5_load,
                      .verify_tensor = h5_verify_tensor);

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
    h5_guard g;
    h5_enter(&g);
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
    h5_leave(&g);
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
    h5_drop(ds);
    h5_drop(lcpl);
    h5_drop(sp);
    h5_close_type(ft, owned);
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
    h5_guard g;
    h5_enter(&g);
    cairn_status st = add_locked(w, name, dtype, rank, dims, data, err);
    h5_leave(&g);
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
    h5_drop(a);
    h5_drop(sp);
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
        h5_close_type(t, owned);
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
    h5_guard g;
    h5_enter(&g);
    cairn_status st = finish_locked(w, err);
    h5_leave(&g);
    return st;
}

static void hw_destroy(cairn_writer *w)
{
    h5_writer *s = w->state;
    h5_guard g;
    h5_enter(&g);
    h5_drop(s->file);
    h5_drop(s->gcpl);
    h5_drop(s->group_cpl);
    h5_leave(&g);
    cairn_value_free(s->meta);
    free(s);
}

const cairn__writer_ops cairn__hdf5_writer = CAIRN__WRITER_OPS(
    hw, CAIRN_FORMAT_HDF5, .no_alias = "cairn writes every HDF5 dataset separately",
    .set_metadata = hw_set_metadata);
