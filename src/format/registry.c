/* registry.c -- the one table of formats (registry.h). */
#include "format/registry.h"
#include "container/zip.h"
#include "format/safetensors/safetensors.h"

#include <strings.h>

extern const cairn__reader_ops cairn__native_reader, cairn__npy_reader, cairn__safetensors_reader,
    cairn__npz_reader, cairn__gguf_reader, cairn__torch_reader, cairn__mxnet_reader,
    cairn__hdf5_reader, cairn__pickle_reader, cairn__json_reader;
extern const cairn__writer_ops cairn__native_writer, cairn__npy_writer, cairn__safetensors_writer,
    cairn__npz_writer, cairn__gguf_writer, cairn__torch_writer, cairn__mxnet_writer,
    cairn__hdf5_writer, cairn__json_writer;

static const uint8_t native_magic[8] = {0x89, 'C', 'A', 'I', 'R', 'N', '\r', '\n'};
static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
static const uint8_t hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

#define CLAIM_IF(cond, reader) \
    do {                       \
        if (cond)              \
            *ops = &(reader);  \
        return CAIRN_OK;       \
    } while (0)

static cairn_status probe_native(const cairn_file *f, const uint8_t *head, size_t n,
                                 const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(n >= sizeof native_magic && !memcmp(head, native_magic, sizeof native_magic),
             cairn__native_reader);
}

static cairn_status probe_npy(const cairn_file *f, const uint8_t *head, size_t n,
                              const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(n >= sizeof npy_magic && !memcmp(head, npy_magic, sizeof npy_magic),
             cairn__npy_reader);
}

static cairn_status probe_gguf(const cairn_file *f, const uint8_t *head, size_t n,
                               const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(n >= 4 && !memcmp(head, "GGUF", 4), cairn__gguf_reader);
}

static cairn_status probe_mxnet(const cairn_file *f, const uint8_t *head, size_t n,
                                const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(n == 8 && cairn__le64(head) == 0x112, cairn__mxnet_reader); /* nd.save's list magic */
}

static cairn_status probe_hdf5(const cairn_file *f, const uint8_t *head, size_t n,
                               const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(n == 8 && !memcmp(head, hdf5_magic, sizeof hdf5_magic), cairn__hdf5_reader);
}

/* A ZIP archive is a PyTorch file when it holds a data.pkl, an .npz when its
 * member names say so (any NAME.npy, or no members), a Keras 3 .keras
 * archive (HDF5 weights) when it holds model.weights.h5; other ZIP archives
 * are refused here. A malformed archive gives the ZIP reader's error. */
static cairn_status probe_zip(const cairn_file *f, const uint8_t *head, size_t n,
                              const cairn__reader_ops **ops, cairn_error *err)
{
    if (!cairn__zip_magic(head, n))
        return CAIRN_OK;
    cairn__zip_kind kind;
    CAIRN_TRY(cairn__zip_sniff(&f->src, &kind, err));
    if (kind == CAIRN__ZIP_NPZ || kind == CAIRN__ZIP_TORCH) {
        *ops = kind == CAIRN__ZIP_NPZ ? &cairn__npz_reader : &cairn__torch_reader;
        return CAIRN_OK;
    }
    if (cairn__keras_sniff(f)) {
        *ops = &cairn__hdf5_reader;
        return CAIRN_OK;
    }
    return cairn__fail(err, CAIRN_E_FORMAT, "%s: ZIP archive that is not an .npz, a PyTorch "
                       "file or a .keras archive (no member ends in .npy or is data.pkl or "
                       "model.weights.h5)", f->path);
}

static cairn_status probe_torch_legacy(const cairn_file *f, const uint8_t *head, size_t n,
                                       const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(cairn__torch_legacy_sniff(f), cairn__torch_reader); /* a pickle of torch's magic */
}

static cairn_status probe_json(const cairn_file *f, const uint8_t *head, size_t n,
                              const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(n > 0 && head[0] == '{' && cairn__json_sniff(f), cairn__json_reader);
}

/* safetensors has no magic: only after every magic failed. */
static cairn_status probe_safetensors(const cairn_file *f, const uint8_t *head, size_t n,
                                      const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(cairn__safetensors_sniff(f), cairn__safetensors_reader);
}

static cairn_status probe_pickle(const cairn_file *f, const uint8_t *head, size_t n,
                                 const cairn__reader_ops **ops, cairn_error *err)
{
    CLAIM_IF(cairn__pickle_sniff(f), cairn__pickle_reader); /* plain pickle or joblib */
}

/* HDF5 lets a file start with a user block of 512, 1024, 2048, ... bytes
 * (h5py's userblock_size; MATLAB v7.3 .mat files): the superblock
 * signature is then at that offset, where libhdf5 itself looks for it.
 * Late: a user block is any bytes at all. */
static cairn_status probe_hdf5_user_block(const cairn_file *f, const uint8_t *head, size_t n,
                                          const cairn__reader_ops **ops, cairn_error *err)
{
    uint8_t sig[sizeof hdf5_magic];
    for (uint64_t at = 512; at <= f->src.size && f->src.size - at >= sizeof sig; at *= 2)
        if (cairn__file_read(f, at, sig, sizeof sig, NULL) == CAIRN_OK &&
            memcmp(sig, hdf5_magic, sizeof sig) == 0) {
            *ops = &cairn__hdf5_reader;
            break;
        }
    return CAIRN_OK;
}

/* In detection order. A format detected in more than one way has more than
 * one row; the first row of a format code names it and carries its writer. */
static const cairn__format_row rows[] = {
    {CAIRN_FORMAT_NATIVE, "cairn", ".cairn", &cairn__native_reader, &cairn__native_writer,
     probe_native, 0, 64},
    {CAIRN_FORMAT_NPY, "npy", ".npy", &cairn__npy_reader, &cairn__npy_writer, probe_npy, 0, 64},
    {CAIRN_FORMAT_GGUF, "gguf", ".gguf", &cairn__gguf_reader, &cairn__gguf_writer, probe_gguf,
     0, 32 /* GGUF's own default when general.alignment is absent */},
    {CAIRN_FORMAT_MXNET, "mxnet", ".params", &cairn__mxnet_reader, &cairn__mxnet_writer,
     probe_mxnet, 0, 64},
    {CAIRN_FORMAT_HDF5, "hdf5", ".h5 .hdf5", &cairn__hdf5_reader, &cairn__hdf5_writer,
     probe_hdf5, 0, 64},
    {CAIRN_FORMAT_NPZ, "npz", ".npz", &cairn__npz_reader, &cairn__npz_writer, probe_zip, 0, 64},
    {CAIRN_FORMAT_TORCH, "torch", ".pt .pth", &cairn__torch_reader, &cairn__torch_writer,
     probe_torch_legacy, 0, 64},
    {CAIRN_FORMAT_JSON, "json", ".json", &cairn__json_reader, &cairn__json_writer, probe_json, 0,
     8 /* unused: text has no payload alignment */},
    {CAIRN_FORMAT_SAFETENSORS, "safetensors", ".safetensors", &cairn__safetensors_reader,
     &cairn__safetensors_writer, probe_safetensors, 0, 64},
    {CAIRN_FORMAT_PICKLE, "pickle", ".pkl .pickle .joblib", &cairn__pickle_reader,
     NULL /* a pickle is a program for Python: read as inert data only */, probe_pickle, 0, 64},
    {CAIRN_FORMAT_HDF5, "hdf5", NULL, &cairn__hdf5_reader, NULL, probe_hdf5_user_block, 1, 64},
};

const cairn__format_row *cairn__format_rows(size_t *count)
{
    *count = sizeof rows / sizeof rows[0];
    return rows;
}

const cairn__format_row *cairn__format_row_of(cairn_format format)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].format == format)
            return &rows[i];
    return NULL;
}

static int ends_with(const char *s, size_t len, const char *suffix, size_t slen)
{
    return len >= slen && strncasecmp(s + len - slen, suffix, slen) == 0;
}

const cairn__format_row *cairn__format_row_for_path(const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *e = rows[i].extensions;
        if (!rows[i].writer || !e)
            continue;
        while (*e) {
            size_t n = strcspn(e, " ");
            if (ends_with(path, len, e, n))
                return &rows[i];
            e += n;
            e += strspn(e, " ");
        }
    }
    return NULL;
}
