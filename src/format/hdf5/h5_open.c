/* h5_open.c -- opening an HDF5 file (docs/FORMAT.md 17.1): libhdf5 opens
 * the descriptor, a memory image or a .keras member; a walk of its links
 * finds the tensors. */
#include "format/hdf5/h5_reader.h"

#include "format/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

const char *cairn__h5_name(const h5_reader *r, uint64_t pos, size_t *len)
{
    return cairn__packed_name(&r->tensors, r->order ? r->order[pos] : pos, len);
}

static const char *tensor_name_at(const void *ctx, uint32_t index, size_t *len)
{
    return cairn__h5_name(ctx, index, len);
}

cairn_status cairn__h5_order(h5_reader *r)
{
    uint64_t n = r->tensors.count;
    if (r->order)
        return CAIRN_OK;
    if (n > SIZE_MAX / sizeof *r->order || !(r->order = malloc(n ? (size_t)n * sizeof *r->order : 1)))
        return cairn__h5_nomem(r);
    for (uint64_t i = 0; i < n; i++)
        r->order[i] = (size_t)i;
    return CAIRN_OK;
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

cairn_status cairn__h5_nomem(h5_reader *r)
{
    return r->st = cairn__fail(r->err, CAIRN_E_NOMEM, "%s: out of memory", r->f->path);
}

static cairn_status skip(h5_reader *r, const char *path, const char *why)
{
    if (!grow((void **)&r->skipped, &r->skipcap, r->nskipped, sizeof *r->skipped))
        return cairn__h5_nomem(r);
    char *p = strdup(path);
    if (!p)
        return cairn__h5_nomem(r);
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
int cairn__h5_over_ratio(const cairn_file *f, hid_t ds, uint64_t raw)
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
                            : cairn__h5_dataset_type(ds, ft, &t->info.dtype, &mem, &owned);
    if (!*why)
        cairn__h5_close_type(mem, owned);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    H5S_class_t cls = sp >= 0 ? H5Sget_simple_extent_type(sp) : H5S_NO_CLASS;
    hsize_t dims[H5S_MAX_RANK];
    if (!*why && cls == H5S_NULL)
        *why = "it has a null dataspace (no elements, no shape)";
    else if (!*why && (rank < 0 || rank > CAIRN_MAX_RANK))
        *why = "its rank is more than cairn's 8";
    else if (!*why && H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        *why = "its shape cannot be read";
    cairn__h5_drop(ft);
    cairn__h5_drop(sp);
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
        return cairn__h5_nomem(r);
    if (!((*list)[*n] = strdup(path)))
        return cairn__h5_nomem(r);
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
    t.info.name = path;
    t.info.name_len = strlen(path);
    t.info.stored_size = t.info.raw_size;
    t.info.alignment = 1;
    t.via_load = 1; /* libhdf5 reads it: chunks, filters and byte order are its business */
    if ((st = cairn__packed_add(&r->tensors, &t, NULL, r->f->path, r->err)) != CAIRN_OK)
        return r->st = st;
    r->payload += t.info.raw_size;
    return CAIRN_OK;
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
    if (oi.type == H5O_TYPE_DATASET && add_dataset(r, name) != CAIRN_OK)
        return -1;
    return 0;
}

/* Drops what a walk collected, for a walk in another order. */
static void forget_walk(h5_reader *r)
{
    cairn__packed_free(&r->tensors);
    for (size_t i = 0; i < r->nskipped; i++)
        free(r->skipped[i].path);
    for (size_t i = 0; i < r->nstrings; i++)
        free(r->strings[i]);
    r->nstrings = 0;
    r->nskipped = 0;
    r->payload = 0;
}

static void reader_free(h5_reader *r)
{
    if (!r)
        return;
    forget_walk(r);
    free(r->order);
    free(r->skipped);
    free(r->strings);
    cairn__nameset_free(&r->index);
    cairn_value_free(r->keras);
    if (r->file >= 0)
        H5Fclose(r->file);
    free(r->owned_image);
    if (r->mapped)
        munmap(r->mapped, r->mapped_size);
    cairn__spool_close(&r->weights);
    free(r);
}

/* The file image callbacks that make libhdf5 read bytes in place instead of
 * copying them (a read-only open never writes or grows the image): every
 * "allocation" of an image of that size is the image itself, copies onto
 * itself are no-ops and nothing is freed (the owner frees it after
 * H5Fclose). So a memory input costs its size once, not twice. */
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

/* libhdf5 keeps the object headers it has read in a metadata cache that
 * grows to 32 MiB by default, and what it decoded from each header (layout,
 * type, shape: about 250 bytes more than the header's own size) beside it,
 * uncounted: walking 20,000 datasets kept about 1 KB each at the default,
 * ~200 bytes at 1-2 MiB. The walk reads each header once, so a cache of
 * 64-128 KiB costs no reads for h5py's files (the same time), and twice
 * the time for groups in dense storage (files cairn writes: 20,000 links
 * in 1.1 s instead of 0.55 s); a dataset's reads keep their speed (its
 * chunk index nodes fit). */
static void small_cache(hid_t fapl)
{
    H5AC_cache_config_t c;
    memset(&c, 0, sizeof c);
    c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pget_mdc_config(fapl, &c) < 0)
        return;
    c.set_initial_size = 1;
    c.initial_size = (size_t)64 << 10;
    c.min_size = (size_t)64 << 10;
    c.max_size = (size_t)128 << 10;
    H5Pset_mdc_config(fapl, &c); /* a cache libhdf5 refuses leaves its default */
}

const char *cairn__h5_fd_path(int fd, char *buf, size_t size)
{
    snprintf(buf, size, "/proc/self/fd/%d", fd);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* A path (the input's descriptor, or a .keras archive's spooled weights)
 * is opened by libhdf5 itself; bytes in memory (a memory input, borrowed
 * until close, or a remote file's image, which the reader keeps until
 * close) as a file image on the core driver, read in place. */
hid_t cairn__h5_open_file(const cairn_file *f, h5_reader *r, const char *path, int stdio,
                          const void *image, size_t size)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t file = -1;
    if (fapl >= 0)
        small_cache(fapl);
    if (!image) {
        if (fapl >= 0 && stdio)
            H5Pset_fapl_stdio(fapl);
        file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
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

static cairn_status index_tensors(h5_reader *r)
{
    if (r->tensors.count > UINT32_MAX - 1)
        return cairn__fail(r->err, CAIRN_E_LIMIT, "%s: too many datasets", r->f->path);
    for (uint64_t i = 0; i < r->tensors.count; i++)
        CAIRN_TRY(cairn__nameset_insert(&r->index, (uint32_t)i, tensor_name_at, r, r->err));
    return CAIRN_OK;
}

static cairn_status parse_locked(const cairn_file *f, h5_reader *r)
{
    cairn__h5_plugin_path();
    uint8_t head[4] = {0};
    if (f->src.size >= 4)
        CAIRN_TRY(cairn__file_read(f, 0, head, 4, r->err));
    if (cairn__zip_magic(head, f->src.size < 4 ? (size_t)f->src.size : 4)) {
        CAIRN_TRY(cairn__h5_open_keras(f, r));
    } else {
        /* A source with neither a path libhdf5 can open nor bytes in memory
         * (object storage): libhdf5 needs the whole image, which the reader
         * keeps until close (owned_image). */
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
        /* a path input: the file cairn opened and checked, not whatever the
         * path names now */
        char self[64];
        const char *path = image ? NULL : cairn__h5_fd_path(f->src.fd, self, sizeof self);
        r->file = cairn__h5_open_file(f, r, path ? path : f->path, 0, image,
                                      (size_t)f->src.size);
        if (r->file < 0)
            return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: libhdf5 cannot open it as an HDF5 "
                               "file (damaged superblock or structure)", f->path);
    }
    /* Creation order where every group tracks it (files cairn writes: the
     * tensors' insertion order), else name order. */
    r->walk_index = H5_INDEX_CRT_ORDER;
    herr_t e = H5Lvisit(r->file, r->walk_index, H5_ITER_INC, visit_link, r);
    if (e < 0 && r->st == CAIRN_OK) {
        forget_walk(r);
        r->walk_index = H5_INDEX_NAME;
        e = H5Lvisit(r->file, r->walk_index, H5_ITER_INC, visit_link, r);
    }
    if (r->st != CAIRN_OK)
        return r->st;
    if (e < 0)
        return cairn__fail(r->err, CAIRN_E_CORRUPT, "%s: libhdf5 cannot walk its groups",
                           f->path);
    if (r->keras && r->tensors.count > 1) /* Keras 3 names its variables 0, 1, ..., 10 */
        CAIRN_TRY(cairn__h5_natural_order(r));
    cairn_value *tree;
    CAIRN_TRY(cairn__h5_build_tree(r, &tree));
    cairn_status st = cairn__h5_keras_order(r, tree);
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
    r->weights.fd = -1;
    cairn__packed_init(&r->tensors, 0);
    r->f = f;
    r->err = err;
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn_status st = parse_locked(f, r);
    if (st != CAIRN_OK)
        reader_free(r);
    cairn__h5_leave(&g);
    if (st != CAIRN_OK)
        return st;
    r->err = NULL;
    /* close is h5_close: libhdf5 is entered under its lock. HDF5 files
     * carry per-structure versions, not one. */
    cairn__table_init_packed(&r->table, &r->tensors, r->order, NULL);
    cairn__table_index(&r->table, &r->index, tensor_name_at, r);
    cairn__table_info(&r->table, CAIRN_FORMAT_HDF5, 0, r->payload, r->payload, 1, 1);
    f->state = r;
    return CAIRN_OK;
}

static void h5_close(cairn_file *f)
{
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    reader_free(f->state);
    cairn__h5_leave(&g);
    f->state = NULL;
}

static cairn_status h5_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    h5_reader *r = f->state;
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    r->err = err;
    r->st = CAIRN_OK;
    cairn_status st = cairn__h5_build_tree(r, out);
    r->err = NULL;
    cairn__h5_leave(&g);
    return st;
}

/* The structure is libhdf5's to check; the attributes must decode. */
const cairn__reader_ops cairn__hdf5_reader =
    CAIRN__READER_OPS(h5, CAIRN_FORMAT_HDF5, .close = h5_close,
                      .verify_structure = cairn__metadata_check,
                      .read_metadata = h5_read_metadata, .load = cairn__h5_load,
                      .load_range = cairn__h5_load_range,
                      .verify_tensor = cairn__h5_verify_tensor);
