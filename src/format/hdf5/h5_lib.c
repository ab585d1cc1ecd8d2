/* h5_lib.c -- libhdf5 as cairn uses it (h5_lib.h): the process-wide lock,
 * Debian's filter plugins, closing ids, and HDF5 types as cairn dtypes. */
#include "format/hdf5/h5_lib.h"

#include <dlfcn.h>
#include <pthread.h>

/* libhdf5 as Debian builds it is not thread-safe, and its state (open ids,
 * the error stack, automatic error printing) is process-wide, so every call
 * cairn makes into it holds this one lock, whichever file it is for. Other
 * code of the process that uses libhdf5 must not run at the same time. */
static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

void cairn__h5_enter(cairn__h5_guard *g)
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
void cairn__h5_plugin_path(void)
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

void cairn__h5_leave(const cairn__h5_guard *g)
{
    H5Eset_auto2(H5E_DEFAULT, g->func, g->data);
    pthread_mutex_unlock(&h5_lock);
}

/* An id (type, space, attribute, dataset, property list, file) holds one
 * reference, and dropping it closes the object. */
void cairn__h5_drop(hid_t id)
{
    if (id >= 0)
        H5Idec_ref(id);
}

void cairn__h5_close_type(hid_t t, int owned)
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
const char *cairn__h5_map_enum(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
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
    cairn__h5_drop(m0);
    cairn__h5_drop(m1);
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
    case H5T_ENUM: return cairn__h5_map_enum(ft, dt, mem, owned);
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
const char *cairn__h5_map_type(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    *owned = 0;
    *mem = -1;
    const char *why = map_class(ft, dt, mem, owned);
    if (why) {
        cairn__h5_close_type(*mem, *owned);
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
            cairn__h5_drop(mt);
            cairn__h5_drop(sp);
        } else if (H5Tget_size(at) < sizeof text && H5Aread(a, at, text) >= 0) {
            yes = strcmp(text, "bfloat16") == 0;
        }
    }
    cairn__h5_drop(at);
    cairn__h5_drop(a);
    return yes;
}

/* map_type for a dataset, which also knows Keras' bfloat16. */
const char *cairn__h5_dataset_type(hid_t ds, hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned)
{
    const char *why = cairn__h5_map_type(ft, dt, mem, owned);
    if (why && keras_bf16(ds, ft)) {
        *dt = CAIRN_BF16;
        *mem = H5Tcopy(ft); /* the bytes as stored: little-endian bfloat16 */
        *owned = *mem >= 0;
        why = *mem < 0 ? "an opaque type libhdf5 cannot copy" : NULL;
    }
    return why;
}
