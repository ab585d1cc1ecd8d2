/* h5_load.c -- reading an HDF5 dataset's elements (docs/FORMAT.md 17.1):
 * whole, or in hyperslabs for verify, after the ratio limit. */
#include "format/hdf5/h5_reader.h"

#include <stdlib.h>

/* verify reads a dataset in hyperslabs of at most this many bytes. */
#define H5_VERIFY_BLOCK (16u << 20)

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
    if (!cairn__h5_over_ratio(f, ds, raw))
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
    const char *why = ft < 0 ? "no type" : cairn__h5_dataset_type(*ds, ft, &dt, mem, owned);
    if (ft >= 0)
        H5Tclose(ft);
    cairn_status st = CAIRN_OK;
    if (why || dt != t->info.dtype)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: hdf5 dataset '%s' changed type since the "
                         "file was opened", f->path, t->info.name);
    if (st == CAIRN_OK)
        st = check_inflate(f, *ds, t->info.name, t->info.raw_size, err);
    if (st != CAIRN_OK) {
        cairn__h5_close_type(*mem, *owned);
        H5Dclose(*ds);
        *ds = *mem = -1;
        *owned = 0;
    }
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
    cairn__h5_drop(fs);
    cairn__h5_drop(ms);
    return e;
}

/* Elements [a, b) of the dataset in C order into dst, as hyperslabs that
 * are each a run of the flat order: from a, the largest block of whole
 * rows of the innermost axes that a starts and that fits before b (so a
 * partial row at either end, whole blocks between: at most 2 x rank - 1
 * reads). The whole dataset is one read. */
static herr_t read_flat(hid_t ds, hid_t mem, const cairn_tensor_info *in, uint64_t a,
                        uint64_t b, uint8_t *dst)
{
    size_t es = cairn_dtype_size(in->dtype);
    if (a == 0 && b == in->count)
        return in->count ? H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) : 0;
    int rank = (int)in->rank; /* >= 1: a rank-0 tensor has one element, read whole */
    for (uint64_t at = a; at < b;) {
        int j = rank - 1;
        uint64_t unit = 1; /* elements per index of axis j */
        while (j > 0 && at % (unit * in->dims[j]) == 0 && b - at >= unit * in->dims[j])
            unit *= in->dims[j--];
        hsize_t start[CAIRN_MAX_RANK], count[CAIRN_MAX_RANK];
        uint64_t rest = at / unit;
        for (int k = rank - 1; k >= 0; k--) {
            start[k] = k > j ? 0 : rest % in->dims[k];
            count[k] = k > j ? in->dims[k] : 1;
            if (k <= j)
                rest /= in->dims[k];
        }
        uint64_t n = (b - at) / unit;
        count[j] = n < in->dims[j] - start[j] ? n : in->dims[j] - start[j];
        if (read_slab(ds, mem, rank, start, count, dst + (at - a) * es) < 0)
            return -1;
        at += count[j] * unit;
    }
    return 0;
}

/* Raw bytes [lo, hi) of tensor t (element boundaries) into dst. */
static cairn_status range_locked(const cairn_file *f, const cairn__tensor *t, uint64_t lo,
                                 uint64_t hi, void *dst, cairn_error *err)
{
    size_t es = cairn_dtype_size(t->info.dtype);
    if (lo % es || hi % es || lo > hi || hi > t->info.raw_size)
        return cairn__fail(err, CAIRN_E_ARG, "%s: hdf5 dataset '%s': bytes [%llu, %llu) are "
                           "not whole elements of it", f->path, t->info.name,
                           (unsigned long long)lo, (unsigned long long)hi);
    hid_t ds, mem;
    int owned;
    CAIRN_TRY(open_for_read(f, t, &ds, &mem, &owned, err));
    herr_t e = read_flat(ds, mem, &t->info, lo / es, hi / es, dst);
    cairn_status st = e < 0 ? read_failed(f, ds, t->info.name, err) : CAIRN_OK;
    cairn__h5_close_type(mem, owned);
    H5Dclose(ds);
    return st;
}

/* Elements [lo, hi) of dataset index, converted by libhdf5 to the
 * little-endian type of its dtype: only the hyperslabs that hold them are
 * read (the ratio limit first, on the whole dataset). */
cairn_status cairn__h5_load_range(const cairn_file *f, uint64_t index, uint64_t lo, uint64_t hi,
                                  void *dst, cairn_error *err)
{
    cairn__tensor t;
    cairn__table_tensor_at(f, index, &t, err); /* cannot fail */
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn_status st = range_locked(f, &t, lo, hi, dst, err);
    cairn__h5_leave(&g);
    return st;
}

cairn_status cairn__h5_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    cairn__tensor t;
    cairn__table_tensor_at(f, index, &t, err); /* cannot fail */
    return cairn__h5_load_range(f, index, 0, t.info.raw_size, dst, err);
}

/* Reads a whole dataset once, in flat windows of at most H5_VERIFY_BLOCK
 * bytes (read_flat), into one buffer of that size. */
static cairn_status verify_locked(const cairn_file *f, const cairn__tensor *t, cairn_error *err)
{
    hid_t ds, mem;
    int owned;
    CAIRN_TRY(open_for_read(f, t, &ds, &mem, &owned, err));
    const cairn_tensor_info *in = &t->info;
    uint64_t per = H5_VERIFY_BLOCK / cairn_dtype_size(in->dtype); /* elements per window */
    uint64_t n = in->count < per ? in->count : per;
    void *buf = malloc(n ? (size_t)(n * cairn_dtype_size(in->dtype)) : 1);
    herr_t e = buf ? 0 : -1;
    for (uint64_t at = 0; buf && e >= 0 && at < in->count; at += per)
        e = read_flat(ds, mem, in, at, in->count - at < per ? in->count : at + per, buf);
    cairn_status st = !buf ? cairn__fail(err, CAIRN_E_NOMEM, "%s: hdf5 dataset '%s': out of "
                                         "memory", f->path, in->name)
                      : e < 0 ? read_failed(f, ds, in->name, err)
                              : CAIRN_OK;
    free(buf);
    cairn__h5_close_type(mem, owned);
    H5Dclose(ds);
    return st;
}

/* Reads every dataset once (filters and fletcher32 checked by libhdf5). */
cairn_status cairn__h5_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err)
{
    cairn__tensor t;
    cairn__table_tensor_at(f, index, &t, err); /* cannot fail */
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn_status st = verify_locked(f, &t, err);
    cairn__h5_leave(&g);
    return st;
}
