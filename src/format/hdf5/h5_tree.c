/* h5_tree.c -- an HDF5 file's metadata tree (docs/FORMAT.md 17.2): every
 * attribute as "GROUPPATH@ATTR", string datasets under their paths, and
 * what the tensors leave out under "hdf5.skipped". */
#include "format/hdf5/h5_reader.h"

#include <stdlib.h>

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
        is_bool = cairn__h5_map_enum(ft, &dt, &mem, &owned) == NULL;
    if (cls == H5T_ENUM && !is_bool) {
        cairn__h5_close_type(mem, owned);
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
    cairn__h5_close_type(mem, owned);
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
    cairn__h5_drop(ft);
    cairn__h5_drop(sp);
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
    cairn__h5_drop(mt);
    cairn__h5_drop(fs);
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
    else if (cairn__mul_overflow((uint64_t)n, w, &bytes) || cairn__h5_over_ratio(r->f, ds, bytes))
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
    cairn__h5_drop(ft);
    cairn__h5_drop(sp);
    cairn__h5_drop(ds);
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
        cairn__h5_nomem(w->r);
        return -1;
    }
    memcpy(key, w->path, plen);
    key[plen] = '@';
    memcpy(key + plen + 1, name, nlen + 1);
    if (cairn_value_set(w->tree, key, v, NULL) != CAIRN_OK) {
        cairn_value_free(v);
        free(key);
        cairn__h5_nomem(w->r);
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
            return cairn__h5_nomem(r);
        }
        if (!v && !skipped_entry(skipped, r->strings[i], why))
            return cairn__h5_nomem(r);
    }
    return CAIRN_OK;
}

typedef struct tree_walk {
    h5_reader *r;
    cairn_value *tree;
} tree_walk;

/* The attributes of every group and dataset reached through hard links, in
 * the order of the open's walk (which refused external links and listed
 * soft ones): the walk keeps no list of paths. Objects without attributes
 * are not opened. */
static herr_t visit_object(hid_t g, const char *name, const H5L_info_t *info, void *ctx)
{
    tree_walk *w = ctx;
    if (info->type != H5L_TYPE_HARD)
        return 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS,
                             H5P_DEFAULT) < 0) {
        w->r->st = cairn__fail(w->r->err, CAIRN_E_CORRUPT, "%s: hdf5 object '%s' cannot be read",
                               w->r->f->path, name);
        return -1;
    }
    if ((oi.type == H5O_TYPE_GROUP || oi.type == H5O_TYPE_DATASET) && oi.num_attrs > 0 &&
        object_attrs(w->r, name, w->tree) != CAIRN_OK)
        return -1;
    return 0;
}

static cairn_status objects_attrs(h5_reader *r, cairn_value *tree)
{
    tree_walk w = {r, tree};
    herr_t e = H5Lvisit(r->file, r->walk_index, H5_ITER_INC, visit_object, &w);
    if (r->st != CAIRN_OK)
        return r->st;
    if (e < 0)
        return r->st = cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: libhdf5 cannot walk its groups",
                                   r->f->path);
    return CAIRN_OK;
}

/* The tree: every attribute as "GROUPPATH@ATTR" (root attributes "@ATTR"),
 * every string dataset as "PATH", plus "hdf5.skipped" listing datasets and
 * links the tree and the tensors leave out. */
cairn_status cairn__h5_build_tree(h5_reader *r, cairn_value **out)
{
    cairn_value *tree = cairn_value_map(), *skipped = cairn_value_list();
    cairn_status st = tree && skipped ? object_attrs(r, "", tree) : cairn__h5_nomem(r);
    for (size_t i = 0; st == CAIRN_OK && r->keras && i < cairn_value_count(r->keras); i++) {
        cairn_value *c = cairn_value_clone(cairn_value_at(r->keras, i));
        if (!c || cairn_value_set(tree, cairn_value_key_at(r->keras, i), c, NULL) != CAIRN_OK) {
            cairn_value_free(c);
            st = cairn__h5_nomem(r);
        }
    }
    if (st == CAIRN_OK)
        st = objects_attrs(r, tree);
    for (size_t i = 0; st == CAIRN_OK && i < r->nskipped; i++)
        if (!skipped_entry(skipped, r->skipped[i].path, r->skipped[i].why))
            st = cairn__h5_nomem(r);
    if (st == CAIRN_OK)
        st = string_datasets(r, tree, skipped);
    if (st == CAIRN_OK && cairn_value_count(skipped)) {
        if (cairn_value_set(tree, "hdf5.skipped", skipped, NULL) == CAIRN_OK)
            skipped = NULL;
        else
            st = cairn__h5_nomem(r);
    }
    cairn_value_free(skipped);
    if (st != CAIRN_OK) {
        cairn_value_free(tree);
        return st;
    }
    *out = tree;
    return CAIRN_OK;
}
