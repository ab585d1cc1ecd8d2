/* pickle_read.c -- a plain pickle or joblib file (docs/FORMAT.md, "Pickle and
 * joblib as inert data"). Such a file is a program for Python's unpickler, so
 * by default it is refused, naming the first global cairn does not know. With
 * CAIRN_OPEN_INERT the restricted machine (pickle.h) records every global,
 * REDUCE, NEWOBJ and BUILD as a plain node and the object becomes the
 * metadata tree, and the NumPy arrays in it are also tensors named by their
 * path; nothing is ever called. joblib's compressed files (zlib, gzip,
 * bzip2, lz4, xz, lzma) are decompressed first (joblib_codec.c, bounded by
 * max_inflate and the machine's 64 MiB). */
#include "format/format.h"
#include "format/registry.h"
#include "container/pickle.h"
#include "codec/joblib_codec.h"
#include "common/nameset.h"
#include "common/value_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define PICKLE_WHERE_MAX 512

/* A NumPy array found in the tree: its bytes are a BYTES value of it. */
typedef struct pickle_tensor {
    cairn__tensor t;
    char *name;
    const uint8_t *bytes;
} pickle_tensor;

typedef struct pickle_state {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    pickle_tensor *tensors;
    uint64_t count, cap;
    uint8_t *owned;      /* the bytes when they are not the mapping's */
    const uint8_t *p;
    size_t len;
    int inflated;
    cairn__pk_flat flat;
    cairn__nameset names; /* the tensors by name: each name once */
    char where[PICKLE_WHERE_MAX];
} pickle_state;
CAIRN__TABLE_FIRST(pickle_state);

/* 1 when the input looks like a plain pickle (PROTO 2..5) or a compressed
 * joblib file (joblib_codec.h; checked only after every other format). */
int cairn__pickle_sniff(const cairn_file *f)
{
    uint8_t h[CAIRN__JOBLIB_MAGIC_MAX] = {0};
    size_t n = f->src.size < sizeof h ? (size_t)f->src.size : sizeof h;
    if (n < 3 || cairn__file_read(f, 0, h, n, NULL) != CAIRN_OK)
        return 0;
    return (h[0] == 0x80 && h[1] >= 2 && h[1] <= 5) || cairn__joblib_detect(h, n);
}

static cairn_status load_bytes(const cairn_file *f, pickle_state *s, cairn_error *err)
{
    if (f->src.size > CAIRN__PICKLE_MAX_BYTES)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: a pickle of %llu bytes (at most 64 MiB)",
                           f->path, (unsigned long long)f->src.size);
    size_t n = (size_t)f->src.size;
    const uint8_t *p = cairn__file_ptr(f, 0, n);
    uint8_t *copy = NULL;
    if (!p) {
        copy = malloc(n ? n : 1);
        if (!copy)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        cairn_status st = cairn__file_read(f, 0, copy, n, err);
        if (st != CAIRN_OK) {
            free(copy);
            return st;
        }
        p = copy;
    }
    cairn__joblib_codec codec = cairn__joblib_detect(p, n);
    if (codec == CAIRN__JOBLIB_NONE) {
        s->owned = copy;
        s->p = p;
        s->len = n;
        return CAIRN_OK;
    }
    uint8_t *out = NULL;
    size_t out_len = 0;
    /* The machine reads at most CAIRN__PICKLE_MAX_BYTES: no more is unpacked. */
    uint64_t limit = f->max_inflate < CAIRN__PICKLE_MAX_BYTES ? f->max_inflate
                                                              : CAIRN__PICKLE_MAX_BYTES;
    cairn_status st = cairn__joblib_unpack(f->path, limit, codec, p, n, &out, &out_len, err);
    free(copy);
    if (st == CAIRN_OK) { /* the whole stream is out: the state owns it and reads from it */
        s->owned = out;
        s->p = out;
        s->len = out_len;
        s->inflated = 1;
    }
    return st;
}

static void state_free(void *state)
{
    pickle_state *s = state;
    if (!s)
        return;
    for (uint64_t i = 0; i < s->count; i++)
        free(s->tensors[i].name);
    free(s->tensors);
    cairn__nameset_free(&s->names);
    cairn__pk_flat_free(&s->flat);
    free(s->owned);
    free(s);
}

static cairn_status run(const cairn_file *f, pickle_state *s, cairn_error *err)
{
    cairn__pickle_host host = {NULL, cairn__pickle_torch_global, NULL,
                               (f->flags & CAIRN_OPEN_INERT) != 0};
    cairn__pickle vm;
    cairn__pickle_init(&vm, &host, s->where, 0);
    cairn_status st = cairn__pickle_run(&vm, s->p, s->len, NULL, err);
    if (st == CAIRN_OK)
        st = cairn__pickle_flatten(&vm, f->src.size, &s->flat, err); /* as the file holds it */
    cairn__pickle_free(&vm);
    return st;
}

/* ------------------------------------------------------------ arrays */

static int is_str(const cairn_value *v, const char *lit)
{
    const void *d;
    size_t len;
    return v && cairn_value_get_type(v) == CAIRN_VALUE_STRING &&
           cairn_value_get_data(v, &d, &len) == CAIRN_OK && len == strlen(lit) &&
           memcmp(d, lit, len) == 0;
}

/* Item i of a list node as an int, or 0 with *ok cleared. */
static int64_t list_int(const cairn_value *list, size_t i, int *ok)
{
    int64_t v = 0;
    if (cairn_value_get_int(cairn_value_at(list, i), &v) != CAIRN_OK)
        *ok = 0;
    return v;
}

/* numpy.dtype('f8', False, True) with state (3, '<', ...): cairn's dtype and
 * whether the bytes are big-endian, read as NumPy reads it (pickle_numpy.c);
 * CAIRN_DTYPE_INVALID for what cairn has no dtype for or refuses. */
static cairn_dtype numpy_dtype(const cairn_value *dt, int *big)
{
    const cairn_value *args = cairn_value_get(dt, "args");
    const cairn_value *st = cairn_value_get(dt, "state");
    cairn__np_dtype_args a;
    cairn__np_dtype np;
    const void *d;
    memset(&a, 0, sizeof a);
    if (!is_str(cairn_value_get(dt, "$class"), "numpy.dtype") ||
        cairn_value_get_type(cairn_value_at(args, 0)) != CAIRN_VALUE_STRING ||
        cairn_value_get_data(cairn_value_at(args, 0), &d, &a.code_len) != CAIRN_OK)
        return CAIRN_DTYPE_INVALID;
    a.code = d;
    a.has_state = st != NULL;
    if (cairn_value_get_type(st) == CAIRN_VALUE_LIST) {
        size_t n = cairn_value_count(st), elen = 0;
        int ok = n >= 7 && n <= 9;
        const void *e = NULL;
        (void)list_int(st, 0, &ok);
        ok = ok && cairn_value_get_type(cairn_value_at(st, 1)) == CAIRN_VALUE_STRING &&
             cairn_value_get_data(cairn_value_at(st, 1), &e, &elen) == CAIRN_OK && elen == 1;
        a.endian = ok ? *(const char *)e : 0;
        for (size_t i = 2; ok && i <= 4; i++)
            a.structured |= cairn_value_get_type(cairn_value_at(st, i)) != CAIRN_VALUE_NULL;
        a.elsize = list_int(st, 5, &ok);
        (void)list_int(st, 6, &ok);
        a.flags = n > 7 ? list_int(st, 7, &ok) : 0;
        a.state_ok = ok;
    }
    if (cairn__np_dtype_resolve(&a, &np))
        return CAIRN_DTYPE_INVALID;
    *big = np.big_endian;
    return np.dtype;
}

typedef struct array_view {
    const cairn_value *shape, *dtype, *bytes;
    int fortran;
} array_view;

/* A joblib NumpyArrayWrapper node (state + data) or a pickled ndarray
 * (_reconstruct + state (version, shape, dtype, is_fortran, bytes)). */
static int as_array(const cairn_value *node, array_view *a)
{
    const cairn_value *cls = cairn_value_get(node, "$class");
    const cairn_value *st = cairn_value_get(node, "state");
    const cairn_value *args = cairn_value_get(node, "args");
    if ((is_str(cls, "numpy.core.multiarray.scalar") ||
         is_str(cls, "numpy._core.multiarray.scalar")) && cairn_value_count(args) == 2) {
        a->shape = NULL; /* rank 0: a NumPy scalar such as LinearRegression.intercept_ */
        a->dtype = cairn_value_at(args, 0);
        a->bytes = cairn_value_at(args, 1);
        a->fortran = 0;
        return cairn_value_get_type(a->bytes) == CAIRN_VALUE_BYTES;
    }
    if ((is_str(cls, "numpy.core.numeric._frombuffer") ||
         is_str(cls, "numpy._core.numeric._frombuffer")) && cairn_value_count(args) == 4) {
        a->bytes = cairn_value_at(args, 0); /* protocol 5: (buffer, dtype, shape, order) */
        a->dtype = cairn_value_at(args, 1);
        a->shape = cairn_value_at(args, 2);
        a->fortran = is_str(cairn_value_at(args, 3), "F");
        return cairn_value_get_type(a->bytes) == CAIRN_VALUE_BYTES &&
               cairn_value_get_type(a->shape) == CAIRN_VALUE_LIST;
    }
    if (!st)
        return 0;
    if (is_str(cls, "joblib.numpy_pickle.NumpyArrayWrapper")) {
        a->shape = cairn_value_get(st, "shape");
        a->dtype = cairn_value_get(st, "dtype");
        a->bytes = cairn_value_get(node, "data");
        a->fortran = is_str(cairn_value_get(st, "order"), "F");
        return a->shape && a->dtype && a->bytes;
    }
    if ((is_str(cls, "numpy.core.multiarray._reconstruct") ||
         is_str(cls, "numpy._core.multiarray._reconstruct")) &&
        cairn_value_get_type(st) == CAIRN_VALUE_LIST && cairn_value_count(st) == 5) {
        a->shape = cairn_value_at(st, 1);
        a->dtype = cairn_value_at(st, 2);
        a->bytes = cairn_value_at(st, 4);
        int b = 0;
        a->fortran = cairn_value_get_bool(cairn_value_at(st, 3), &b) == CAIRN_OK && b;
        return cairn_value_get_type(a->bytes) == CAIRN_VALUE_BYTES;
    }
    return 0;
}

static cairn_status add_array(const cairn_file *f, pickle_state *s, const char *path,
                              const array_view *a, cairn_error *err)
{
    pickle_tensor pt = {0};
    cairn_tensor_info *in = &pt.t.info;
    in->dtype = numpy_dtype(a->dtype, &pt.t.big_endian);
    size_t n = a->shape ? cairn_value_count(a->shape) : 0, len = 0;
    const void *d = NULL;
    if (in->dtype == CAIRN_DTYPE_INVALID || n > CAIRN_MAX_RANK ||
        cairn_value_get_data(a->bytes, &d, &len) != CAIRN_OK)
        return CAIRN_OK; /* an array cairn has no dtype for stays bytes in the tree */
    in->rank = (uint32_t)n;
    in->count = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t dim;
        if (cairn_value_get_int(cairn_value_at(a->shape, i), &dim) != CAIRN_OK || dim < 0)
            return CAIRN_OK;
        in->dims[i] = (uint64_t)dim;
        if (dim && in->count > UINT64_MAX / (uint64_t)dim)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: array '%s': its shape overflows",
                               f->path, path);
        in->count *= (uint64_t)dim;
    }
    uint64_t esize = cairn_dtype_size(in->dtype);
    if (in->count > UINT64_MAX / esize || in->count * esize != len)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: array '%s': shape and dtype say %llu "
                           "elements, but it holds %zu bytes", f->path, path,
                           (unsigned long long)in->count, len);
    if (s->count == s->cap) {
        uint64_t cap = s->cap ? 2 * s->cap : 8;
        pickle_tensor *t = realloc(s->tensors, cap * sizeof *t);
        if (!t)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
        s->tensors = t;
        s->cap = cap;
    }
    pt.name = strdup(path);
    if (!pt.name)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    in->name = pt.name;
    in->name_len = strlen(path);
    in->raw_size = in->stored_size = len;
    in->alignment = 1;
    in->codec = CAIRN_CODEC_NONE;
    pt.t.fortran_order = a->fortran && n > 1;
    pt.t.via_load = 1; /* the bytes are a copy in the tree (and may have been inflated) */
    pt.bytes = d;
    s->tensors[s->count++] = pt;
    return CAIRN_OK;
}

static const char *tensor_name_at(const void *ctx, uint32_t index, size_t *len)
{
    const pickle_state *s = ctx;
    *len = s->tensors[index].t.info.name_len;
    return s->tensors[index].name;
}

/* Two arrays whose paths read alike ({"a.b": x, "a": {"b": y}}, or a key
 * "a.0" beside item 0 of a list "a") would give one name to two tensors, the
 * second unreachable: refused, as for .pt files (docs/FORMAT.md §18). */
static cairn_status index_names(const cairn_file *f, pickle_state *s, cairn_error *err)
{
    for (uint64_t i = 0; i < s->count; i++) {
        const cairn_tensor_info *in = &s->tensors[i].t.info;
        if (cairn__nameset_find(&s->names, in->name, in->name_len, tensor_name_at, s) >= 0) {
            char shown[160];
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: two arrays are both named '%s' "
                               "(a dotted key and nested containers that spell the same path)",
                               f->path, cairn__printable(in->name, in->name_len, shown,
                                                         sizeof shown));
        }
        CAIRN_TRY(cairn__nameset_insert(&s->names, (uint32_t)i, tensor_name_at, s, err));
    }
    return CAIRN_OK;
}

/* Names each array by its path ("state.coef_"; list items by index). The
 * tree's depth is bounded by the walker that made it. */
static cairn_status find_arrays(const cairn_file *f, pickle_state *s, const cairn_value *v,
                                char *path, size_t used, size_t cap, cairn_error *err)
{
    cairn_value_type type = cairn_value_get_type(v);
    if ((type != CAIRN_VALUE_MAP && type != CAIRN_VALUE_LIST) || v->pack)
        return CAIRN_OK; /* a packed list holds only numbers or strings: left packed */
    array_view a;
    if (type == CAIRN_VALUE_MAP && as_array(v, &a))
        return add_array(f, s, used ? path : "array", &a, err);
    for (size_t i = 0; i < cairn_value_count(v); i++) {
        char idx[24];
        const char *key = type == CAIRN_VALUE_MAP ? cairn_value_key_at(v, i) : idx;
        snprintf(idx, sizeof idx, "%zu", i);
        size_t klen = strlen(key), at = used ? used + 1 : 0;
        if (at + klen + 1 > cap)
            continue; /* too long a path to name: the array stays in the tree only */
        if (used)
            path[used] = '.';
        memcpy(path + at, key, klen + 1);
        CAIRN_TRY(find_arrays(f, s, cairn_value_at(v, i), path, at + klen, cap, err));
        path[used] = '\0';
    }
    return CAIRN_OK;
}

static cairn_status pickle_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const pickle_state *s = f->state;
    memcpy(dst, s->tensors[index].bytes, (size_t)s->tensors[index].t.info.raw_size);
    return CAIRN_OK;
}

static cairn_status pickle_open(cairn_file *f, cairn_error *err)
{
    pickle_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = load_bytes(f, s, err);
    if (st == CAIRN_OK) {
        snprintf(s->where, sizeof s->where, "%s%s", f->path,
                 s->inflated ? " (inflated)" : "");
        st = run(f, s, err);
    }
    if (st == CAIRN_OK) {
        char path[1024] = {0};
        st = find_arrays(f, s, s->flat.tree, path, 0, sizeof path, err);
    }
    if (st == CAIRN_OK)
        st = index_names(f, s, err);
    if (st != CAIRN_OK && !(f->flags & CAIRN_OPEN_INERT) && st == CAIRN_E_UNSUPPORTED &&
        err && strstr(err->message, "is not allowed")) {
        size_t used = strlen(err->message);
        snprintf(err->message + used, sizeof err->message - used,
                 " (open with --inert to read it as data)");
    }
    if (st != CAIRN_OK) {
        state_free(s);
        return st;
    }
    uint64_t payload = 0;
    for (uint64_t i = 0; i < s->count; i++)
        payload += s->tensors[i].t.info.stored_size;
    /* version: the pickle protocol */
    cairn__table_init(&s->table, s->tensors, sizeof *s->tensors, s->count, state_free);
    cairn__table_info(&s->table, CAIRN_FORMAT_PICKLE, s->len > 1 ? s->p[1] : 0, payload, 0, 1,
                      cairn_value_count(s->flat.tree) > 0);
    f->state = s;
    return CAIRN_OK;
}

static cairn_status pickle_find(const cairn_file *f, const char *name, size_t name_len,
                                uint64_t *index, cairn_error *err)
{
    const pickle_state *s = f->state;
    int64_t i = cairn__nameset_find(&s->names, name, name_len, tensor_name_at, s);
    if (i >= 0) {
        *index = (uint64_t)i;
        return CAIRN_OK;
    }
    char shown[96];
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s' (names are paths in the "
                       "object, e.g. 'state.coef_')", f->path,
                       cairn__printable(name, name_len, shown, sizeof shown));
}

static cairn_status pickle_read_metadata(const cairn_file *f, cairn_value **out,
                                         cairn_error *err)
{
    const pickle_state *s = f->state;
    return cairn__metadata_copy(f, s->flat.tree, out, err);
}

const cairn__reader_ops cairn__pickle_reader =
    CAIRN__READER_OPS(pickle, CAIRN_FORMAT_PICKLE, .find = pickle_find,
                      .read_metadata = pickle_read_metadata, .load = pickle_load);
