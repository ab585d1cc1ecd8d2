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

static cairn_status load_locked(const cairn_file *f, const cairn__tensor *t, void *dst,
                                cairn_error *err)
{
    hid_t ds, mem;
    int owned;
    CAIRN_TRY(open_for_read(f, t, &ds, &mem, &owned, err));
    herr_t e = t->info.count ? H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) : 0;
    cairn_status st = e < 0 ? read_failed(f, ds, t->info.name, err) : CAIRN_OK;
    cairn__h5_close_type(mem, owned);
    H5Dclose(ds);
    return st;
}

cairn_status cairn__h5_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    cairn__tensor t;
    cairn__table_tensor_at(f, index, &t, err); /* cannot fail */
    cairn__h5_guard g;
    cairn__h5_enter(&g);
    cairn_status st = load_locked(f, &t, dst, err);
    cairn__h5_leave(&g);
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
