/* file.c -- opening inputs (mmap, pread or memory), format detection, and the
 * format-independent query functions of cairn_file. */
#include "archive/archive.h"
#include "format/safetensors/safetensors.h"
#include "archive/safetensors_index.h"
#include "container/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char native_magic[8] = {'\x89', 'C', 'A', 'I', 'R', 'N', '\r', '\n'};
static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
static const char hdf5_magic[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};

const char *cairn_format_name(cairn_format format)
{
    switch (format) {
    case CAIRN_FORMAT_NATIVE: return "cairn";
    case CAIRN_FORMAT_NPY: return "npy";
    case CAIRN_FORMAT_SAFETENSORS: return "safetensors";
    case CAIRN_FORMAT_NPZ: return "npz";
    case CAIRN_FORMAT_GGUF: return "gguf";
    case CAIRN_FORMAT_TORCH: return "torch";
    case CAIRN_FORMAT_MXNET: return "mxnet";
    case CAIRN_FORMAT_HDF5: return "hdf5";
    case CAIRN_FORMAT_PICKLE: return "pickle";
    case CAIRN_FORMAT_AUTO: return "auto";
    }
    return NULL;
}

static const cairn__reader_ops *ops_for(cairn_format format)
{
    switch (format) {
    case CAIRN_FORMAT_NATIVE: return &cairn__native_reader;
    case CAIRN_FORMAT_NPY: return &cairn__npy_reader;
    case CAIRN_FORMAT_SAFETENSORS: return &cairn__safetensors_reader;
    case CAIRN_FORMAT_NPZ: return &cairn__npz_reader;
    case CAIRN_FORMAT_GGUF: return &cairn__gguf_reader;
    case CAIRN_FORMAT_TORCH: return &cairn__torch_reader;
    case CAIRN_FORMAT_MXNET: return &cairn__mxnet_reader;
    case CAIRN_FORMAT_HDF5: return &cairn__hdf5_reader;
    case CAIRN_FORMAT_PICKLE: return &cairn__pickle_reader;
    case CAIRN_FORMAT_AUTO: break;
    }
    return NULL;
}

cairn_status cairn__source_read(const cairn_file *f, uint64_t offset, void *dst, size_t len,
                                cairn_error *err)
{
    uint64_t end;
    if (cairn__add_overflow(offset, len, &end) || end > f->src.size)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: read of %zu bytes at offset %llu runs past "
                           "the end of the input (%llu bytes)", f->path, len,
                           (unsigned long long)offset, (unsigned long long)f->src.size);
    /* Large copies from a file go through pread even when it is mapped: the
     * kernel copies from the page cache directly, where touching the mapping
     * would take a page fault per 4 KiB. */
    if (len == 0) /* an empty tensor may come with a NULL dst */
        return CAIRN_OK;
    if (f->src.base && (f->src.fd < 0 || len < (64u << 10))) {
        memcpy(dst, f->src.base + offset, len);
        return CAIRN_OK;
    }
    uint8_t *p = dst;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = pread(f->src.fd, p, chunk, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: read at offset %llu: %s", f->path,
                               (unsigned long long)offset, strerror(errno));
        if (n == 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: file shrank while open (read at offset %llu "
                               "hit its end)", f->path, (unsigned long long)offset);
        p += n;
        offset += (uint64_t)n;
        len -= (size_t)n;
    }
    return CAIRN_OK;
}

const uint8_t *cairn__source_ptr(const cairn_file *f, uint64_t offset, uint64_t len)
{
    (void)len;
    return f->src.base ? f->src.base + offset : NULL;
}

/* A ZIP archive is a PyTorch file when it holds a data.pkl, else an .npz
 * when its member names say so (cairn__zip_sniff: any NAME.npy, or no
 * members); other ZIP archives are refused here. A malformed archive gives
 * the ZIP reader's error. */
static cairn_status detect_zip(cairn_file *f, cairn_error *err)
{
    cairn__zip_kind kind;
    CAIRN_TRY(cairn__zip_sniff(f, &kind, err));
    if (kind == CAIRN__ZIP_NPZ || kind == CAIRN__ZIP_TORCH) {
        f->ops = kind == CAIRN__ZIP_NPZ ? &cairn__npz_reader : &cairn__torch_reader;
        return CAIRN_OK;
    }
    if (cairn__keras_sniff(f)) { /* a Keras 3 .keras archive: its weights are HDF5 */
        f->ops = &cairn__hdf5_reader;
        return CAIRN_OK;
    }
    return cairn__fail(err, CAIRN_E_FORMAT, "%s: ZIP archive that is not an .npz, a PyTorch "
                       "file or a .keras archive (no member ends in .npy or is data.pkl or "
                       "model.weights.h5)", f->path);
}

/* HDF5 lets a file start with a user block of 512, 1024, 2048, ... bytes
 * (h5py's userblock_size; MATLAB's v7.3 .mat files are HDF5 behind a
 * 512-byte one): the superblock signature is then at that offset, where
 * libhdf5 itself looks for it. */
static int hdf5_after_user_block(const cairn_file *f)
{
    uint8_t sig[sizeof hdf5_magic];
    for (uint64_t at = 512; at <= f->src.size && f->src.size - at >= sizeof sig; at *= 2)
        if (cairn__source_read(f, at, sig, sizeof sig, NULL) == CAIRN_OK &&
            memcmp(sig, hdf5_magic, sizeof sig) == 0)
            return 1;
    return 0;
}

static cairn_status detect(cairn_file *f, cairn_format wanted, cairn_error *err)
{
    if (wanted != CAIRN_FORMAT_AUTO) {
        f->ops = ops_for(wanted);
        if (!f->ops)
            return cairn__fail(err, CAIRN_E_ARG, "%s: unknown format code %d", f->path, (int)wanted);
        return CAIRN_OK;
    }
    uint8_t head[8] = {0};
    size_t n = f->src.size < sizeof head ? (size_t)f->src.size : sizeof head;
    CAIRN_TRY(cairn__source_read(f, 0, head, n, err));
    if (n >= sizeof native_magic && memcmp(head, native_magic, sizeof native_magic) == 0)
        f->ops = &cairn__native_reader;
    else if (n >= sizeof npy_magic && memcmp(head, npy_magic, sizeof npy_magic) == 0)
        f->ops = &cairn__npy_reader;
    else if (n >= 4 && memcmp(head, "GGUF", 4) == 0)
        f->ops = &cairn__gguf_reader;
    else if (n == 8 && cairn__le64(head) == 0x112) /* MXNet nd.save's list magic */
        f->ops = &cairn__mxnet_reader;
    else if (n == 8 && memcmp(head, hdf5_magic, sizeof hdf5_magic) == 0)
        f->ops = &cairn__hdf5_reader;
    else if (cairn__zip_magic(head, n))
        return detect_zip(f, err);
    else if (cairn__torch_legacy_sniff(f)) /* a pickle of torch's magic number */
        f->ops = &cairn__torch_reader;
    else if (cairn__safetensors_sniff(f)) /* no magic: only after every magic failed */
        f->ops = &cairn__safetensors_reader;
    else if (cairn__stindex_sniff(f)) /* JSON text: a sharded safetensors index, or nothing */
        return cairn__stindex_detect(f, err);
    else if (cairn__pickle_sniff(f)) /* a plain pickle or a compressed joblib file */
        f->ops = &cairn__pickle_reader;
    else if (hdf5_after_user_block(f)) /* last: a user block is any bytes at all */
        f->ops = &cairn__hdf5_reader;
    else if (f->src.size == 0)
        return cairn__fail(err, CAIRN_E_FORMAT, "%s: empty file", f->path);
    else
        return cairn__fail(err, CAIRN_E_FORMAT, "%s: not a cairn, .npy, .npz, safetensors, GGUF, PyTorch, MXNet or HDF5 file "
                           "(first bytes %02x %02x %02x %02x)", f->path, head[0], head[1],
                           head[2], head[3]);
    return CAIRN_OK;
}

static cairn_status read_opts(const cairn_open_opts *opts, unsigned *flags, cairn_format *format,
                              uint64_t *max_inflate, cairn_error *err)
{
    *flags = 0;
    *format = CAIRN_FORMAT_AUTO;
    *max_inflate = CAIRN_MAX_INFLATE_DEFAULT;
    if (!opts)
        return CAIRN_OK;
    if (opts->struct_size < sizeof(size_t) + sizeof(unsigned))
        return cairn__fail(err, CAIRN_E_ARG, "cairn_open_opts.struct_size %zu is too small",
                           opts->struct_size);
    *flags = opts->flags;
    if (opts->struct_size >= offsetof(cairn_open_opts, format) + sizeof opts->format)
        *format = opts->format;
    if (opts->struct_size >= offsetof(cairn_open_opts, max_inflate) + sizeof opts->max_inflate &&
        opts->max_inflate != 0)
        *max_inflate = opts->max_inflate;
    return CAIRN_OK;
}

/* Fields added with format 1.1 (threads, public_key), when the caller's
 * struct has them. */
static const uint8_t *opts_public_key(const cairn_open_opts *opts)
{
    if (!opts || opts->struct_size < offsetof(cairn_open_opts, public_key) + sizeof opts->public_key)
        return NULL;
    return opts->public_key;
}

static void read_extra_opts(cairn_file *f, const cairn_open_opts *opts)
{
    if (opts && opts->struct_size >= offsetof(cairn_open_opts, threads) + sizeof opts->threads)
        f->threads = opts->threads;
    const uint8_t *pk = opts_public_key(opts);
    if (pk) {
        memcpy(f->public_key, pk, CAIRN_PUBLIC_KEY_BYTES);
        f->has_public_key = 1;
    }
}

#ifdef CAIRN_CHECK_TENSORS
static void check_all_tensors(const cairn_file *f);
#endif

static cairn_status finish_open(cairn_file *f, cairn_format format, cairn_file **out,
                                cairn_error *err)
{
    cairn_status st = detect(f, format, err);
    if (st == CAIRN_OK)
        st = f->ops->open(f, err);
#ifdef CAIRN_CHECK_TENSORS
    if (st == CAIRN_OK)
        check_all_tensors(f);
#endif
    if (st == CAIRN_OK && f->has_public_key)
        st = cairn_file_verify_signature(f, f->public_key, err);
    if (st == CAIRN_OK && (f->flags & CAIRN_OPEN_VERIFY))
        st = cairn_file_verify(f, err);
    if (st != CAIRN_OK) {
        cairn_file_close(f);
        return st;
    }
    *out = f;
    return CAIRN_OK;
}

static cairn_file *file_new(const char *path)
{
    cairn_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->src.fd = -1;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

/* A skorch checkpoint directory: one archive of its files (skorch.c). */
static cairn_status open_skorch_dir(const char *path, unsigned flags, uint64_t max_inflate,
                                    cairn_file **out, cairn_error *err)
{
    cairn_file *f = file_new(path);
    if (!f)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    f->flags = flags;
    f->max_inflate = max_inflate;
    f->ops = &cairn__skorch_reader;
    cairn_status st = f->ops->open(f, err);
    if (st == CAIRN_OK && (flags & CAIRN_OPEN_VERIFY))
        st = cairn_file_verify(f, err);
    if (st != CAIRN_OK) {
        cairn_file_close(f);
        return st;
    }
    *out = f;
    return CAIRN_OK;
}

cairn_status cairn_file_open(const char *path, const cairn_open_opts *opts, cairn_file **out,
                             cairn_error *err)
{
    unsigned flags;
    cairn_format format;
    uint64_t max_inflate;
    if (out)
        *out = NULL;
    if (!path || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_open: path and out must not be NULL");
    CAIRN_TRY(read_opts(opts, &flags, &format, &max_inflate, err));

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode) && (format == CAIRN_FORMAT_AUTO || format == CAIRN_FORMAT_TORCH) &&
        cairn__skorch_sniff(path)) {
        close(fd);
        if (opts_public_key(opts))
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a skorch directory carries no "
                               "signature (sign it with cairn_sign_dir)", path);
        return open_skorch_dir(path, flags, max_inflate, out, err);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cairn__fail(err, CAIRN_E_IO, "%s: not a regular file%s", path,
                           S_ISDIR(st.st_mode) ? " (a directory, but no skorch checkpoint)" : "");
    }
    cairn_file *f = file_new(path);
    if (!f) {
        close(fd);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    }
    f->flags = flags;
    f->max_inflate = max_inflate;
    read_extra_opts(f, opts);
    f->src.fd = fd;
    f->src.size = (uint64_t)st.st_size;
    if (!(flags & CAIRN_OPEN_NO_MMAP) && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) { /* on failure, fall back to pread */
            f->src.base = m;
            f->src.mapped = 1;
        }
    }
    return finish_open(f, format, out, err);
}

cairn_status cairn_file_open_memory(const void *data, size_t size, const cairn_open_opts *opts,
                                    cairn_file **out, cairn_error *err)
{
    unsigned flags;
    cairn_format format;
    uint64_t max_inflate;
    if (out)
        *out = NULL;
    if ((!data && size > 0) || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_open_memory: data and out must not be NULL");
    CAIRN_TRY(read_opts(opts, &flags, &format, &max_inflate, err));
    cairn_file *f = file_new("<memory>");
    if (!f)
        return cairn__fail(err, CAIRN_E_NOMEM, "<memory>: out of memory");
    static const uint8_t empty[1] = {0};
    f->flags = flags & ~(unsigned)CAIRN_OPEN_NO_MMAP;
    f->max_inflate = max_inflate;
    read_extra_opts(f, opts);
    f->src.base = data ? data : empty;
    f->src.size = size;
    return finish_open(f, format, out, err);
}

void cairn_file_close(cairn_file *f)
{
    if (!f)
        return;
    if (f->ops && f->state)
        f->ops->close(f);
    if (f->src.mapped)
        munmap((void *)f->src.base, (size_t)f->src.size);
    if (f->src.fd >= 0)
        close(f->src.fd);
    free(f->path);
    free(f);
}

const char *cairn_file_path(const cairn_file *f) { return f ? f->path : NULL; }

uint64_t cairn_file_count(const cairn_file *f) { return f ? f->ops->count(f) : 0; }

cairn_status cairn_file_get_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    if (!f || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_get_info: NULL argument");
    memset(out, 0, sizeof *out);
    return f->ops->file_info(f, out, err);
}

cairn_status cairn_tensor_info_at(const cairn_file *f, uint64_t index, cairn_tensor_info *out,
                                  cairn_error *err)
{
    if (!f || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_tensor_info_at: NULL argument");
    memset(out, 0, sizeof *out);
    cairn__tensor t;
    CAIRN_TRY(cairn__tensor_get(f, index, &t, err));
    *out = t.info;
    return CAIRN_OK;
}

cairn_status cairn__find_by_name(const cairn_file *f, const cairn__nameset *names,
                                 cairn__name_fn name_at, const void *ctx, const char *name,
                                 size_t len, uint64_t *index, cairn_error *err)
{
    char shown[96];
    int64_t i = cairn__nameset_find(names, name, len, name_at, ctx);
    if (i >= 0) {
        *index = (uint64_t)i;
        return CAIRN_OK;
    }
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s'", f->path,
                       cairn__printable(name, len, shown, sizeof shown));
}

/* What every reader's tensor must say of itself, whatever its format: a
 * known dtype, rank <= 8, count == product of dims (0 when one is 0) and
 * raw_size == count x
 * element size (all without wrapping), and for bytes read straight from the
 * input (not via_load) a range inside it, of raw_size bytes when not
 * encoded (a codec the library cannot decode stays not via_load: read.c
 * refuses it by name). The read
 * paths (read.c) size their buffers and copies from these numbers, so a
 * reader that got one wrong yields CAIRN_E_CORRUPT here instead of a short
 * buffer or a wrapped size. */
cairn_status cairn__tensor_check(const cairn_file *f, const cairn__tensor *t, cairn_error *err)
{
    const cairn_tensor_info *in = &t->info;
    uint64_t count = 1, bytes = 0, end = 0;
    size_t esize = cairn_dtype_size(in->dtype);
    const char *why = NULL;
    char shown[96];
    if (esize == 0)
        why = "its dtype is not one cairn knows";
    else if (in->rank > CAIRN_MAX_RANK)
        why = "its rank is above 8";
    int zero = 0; /* a zero dimension makes the product 0 whatever the others are */
    for (uint32_t d = 0; !why && d < in->rank; d++)
        zero |= in->dims[d] == 0;
    for (uint32_t d = 0; !why && !zero && d < in->rank; d++)
        if (cairn__mul_overflow(count, in->dims[d], &count))
            why = "the product of its dimensions overflows 64 bits";
    if (zero)
        count = 0;
    if (!why && count != in->count)
        why = "its element count is not the product of its dimensions";
    else if (!why && (cairn__mul_overflow(count, esize, &bytes) || bytes != in->raw_size))
        why = "its byte size is not its element count times its element size";
    else if (!why && !t->via_load && !f->ops->owner &&
             ((in->codec == CAIRN_CODEC_NONE && in->stored_size != in->raw_size) ||
              cairn__add_overflow(in->offset, in->stored_size, &end) || end > f->src.size))
        why = "its bytes are not a range of the input of its byte size";
    if (!why)
        return CAIRN_OK;
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: tensor '%s': %s (%s x %llu elements, %llu "
                       "bytes, %llu stored at offset %llu)", f->path,
                       in->name ? cairn__printable(in->name, in->name_len, shown, sizeof shown)
                                : "?",
                       why, cairn_dtype_name(in->dtype) ? cairn_dtype_name(in->dtype) : "?",
                       (unsigned long long)in->count, (unsigned long long)in->raw_size,
                       (unsigned long long)in->stored_size, (unsigned long long)in->offset);
}

cairn_status cairn__tensor_get(const cairn_file *f, uint64_t index, cairn__tensor *out,
                               cairn_error *err)
{
    uint64_t n = f->ops->count(f);
    if (index >= n)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: tensor index %llu out of range (%llu "
                           "tensors)", f->path, (unsigned long long)index,
                           (unsigned long long)n);
    CAIRN_TRY(f->ops->tensor_at(f, index, out, err));
    return cairn__tensor_check(f, out, err);
}

#ifdef CAIRN_CHECK_TENSORS
/* Check builds (the sanitizer and fuzz builds): every file any test or
 * fuzz input opens has every tensor checked at open, and a reader that
 * yields a tensor breaking cairn__tensor_check is a bug in cairn, so the
 * process stops there, loudly, as an assert would. A tensor its reader
 * refuses (an error from tensor_at) is the reader doing its job. */
static void check_all_tensors(const cairn_file *f)
{
    uint64_t n = f->ops->count(f);
    for (uint64_t i = 0; i < n; i++) {
        cairn__tensor t;
        cairn_error e;
        if (f->ops->tensor_at(f, i, &t, NULL) != CAIRN_OK)
            continue;
        if (cairn__tensor_check(f, &t, &e) != CAIRN_OK) {
            fprintf(stderr, "cairn: reader invariant broken: %s\n", e.message);
            abort();
        }
    }
}
#endif

cairn_status cairn_tensor_find(const cairn_file *f, const char *name, uint64_t *index,
                               cairn_tensor_info *out, cairn_error *err)
{
    uint64_t i = 0;
    if (index)
        *index = 0;
    if (out)
        memset(out, 0, sizeof *out);
    if (!f || !name)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_tensor_find: NULL argument");
    CAIRN_TRY(f->ops->find(f, name, strlen(name), &i, err));
    if (index)
        *index = i;
    return out ? cairn_tensor_info_at(f, i, out, err) : CAIRN_OK;
}

cairn_status cairn_file_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    if (out)
        *out = NULL;
    if (!f || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_read_metadata: NULL argument");
    if (f->ops->read_metadata)
        return f->ops->read_metadata(f, out, err);
    *out = cairn_value_map();
    return *out ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
}
