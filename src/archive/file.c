/* file.c -- opening inputs (io/source.h), format detection (format/registry.h), and the
 * format-independent query functions of cairn_file. */
#include "archive/archive.h"
#include "format/safetensors/safetensors.h"
#include "archive/safetensors_index.h"
#include "container/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cairn_format_name(cairn_format format)
{
    if (format == CAIRN_FORMAT_AUTO)
        return "auto";
    const cairn__format_row *row = cairn__format_row_of(format);
    return row ? row->name : NULL;
}

cairn_format cairn_format_from_name(const char *name)
{
    if (!name)
        return CAIRN_FORMAT_AUTO;
    if (!strcasecmp(name, "native"))
        return CAIRN_FORMAT_NATIVE;
    size_t count;
    const cairn__format_row *rows = cairn__format_rows(&count);
    for (size_t i = 0; i < count; i++)
        if (!strcasecmp(rows[i].name, name))
            return rows[i].format;
    return CAIRN_FORMAT_AUTO;
}

const char *cairn_format_extensions(cairn_format format)
{
    const cairn__format_row *row = cairn__format_row_of(format);
    return row && row->writer ? row->extensions : NULL;
}

/* Tries each row's probe in detection order; the composite archives (a
 * sharded safetensors index: JSON text) come after every row but the late
 * ones (a probe that accepts almost any bytes). */
static cairn_status detect(cairn_file *f, cairn_format wanted, cairn_error *err)
{
    if (wanted != CAIRN_FORMAT_AUTO) {
        const cairn__format_row *row = cairn__format_row_of(wanted);
        f->ops = row ? row->reader : NULL;
        if (!f->ops)
            return cairn__fail(err, CAIRN_E_ARG, "%s: unknown format code %d", f->path, (int)wanted);
        return CAIRN_OK;
    }
    uint8_t head[8] = {0};
    size_t n = f->src.size < sizeof head ? (size_t)f->src.size : sizeof head;
    CAIRN_TRY(cairn__file_read(f, 0, head, n, err));
    size_t count;
    const cairn__format_row *rows = cairn__format_rows(&count);
    for (int late = 0; late <= 1; late++) {
        for (size_t i = 0; i < count; i++) {
            if (!rows[i].probe || rows[i].probe_late != late)
                continue;
            const cairn__reader_ops *ops = NULL;
            CAIRN_TRY(rows[i].probe(f, head, n, &ops, err));
            if (ops) {
                f->ops = ops;
                return CAIRN_OK;
            }
        }
        if (!late && cairn__stindex_sniff(f)) /* JSON text: a sharded safetensors index, or nothing */
            return cairn__stindex_detect(f, err);
    }
    if (f->src.size == 0)
        return cairn__fail(err, CAIRN_E_FORMAT, "%s: empty file", f->path);
    return cairn__fail(err, CAIRN_E_FORMAT, "%s: not a cairn, .npy, .npz, safetensors, GGUF, "
                       "PyTorch, MXNet, HDF5 or pickle file (first bytes %02x %02x %02x %02x)",
                       f->path, head[0], head[1], head[2], head[3]);
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

static cairn_status finish_open(cairn_file *f, cairn_format format, cairn_file **out,
                                cairn_error *err)
{
    cairn_status st = detect(f, format, err);
    if (st == CAIRN_OK)
        st = f->ops->open(f, err);
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
    f->src.path = f->path;
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

    cairn__source src;
    cairn__source_kind kind;
    CAIRN_TRY(cairn__source_open_file(&src, path, (flags & CAIRN_OPEN_NO_MMAP) != 0, &kind, err));
    if (kind == CAIRN__SOURCE_DIRECTORY) {
        if ((format == CAIRN_FORMAT_AUTO || format == CAIRN_FORMAT_TORCH) &&
            cairn__skorch_sniff(path)) {
            if (opts_public_key(opts))
                return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a skorch directory carries no "
                                   "signature (sign it with cairn_sign_dir)", path);
            return open_skorch_dir(path, flags, max_inflate, out, err);
        }
        return cairn__fail(err, CAIRN_E_IO, "%s: not a regular file (a directory, but no skorch "
                           "checkpoint)", path);
    }
    cairn_file *f = file_new(path);
    if (!f) {
        cairn__source_close(&src);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    }
    f->flags = flags;
    f->max_inflate = max_inflate;
    read_extra_opts(f, opts);
    f->src = src;
    f->src.path = f->path;
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
    f->flags = flags & ~(unsigned)CAIRN_OPEN_NO_MMAP;
    f->max_inflate = max_inflate;
    read_extra_opts(f, opts);
    cairn__source_init_memory(&f->src, f->path, data, size);
    return finish_open(f, format, out, err);
}

void cairn_file_close(cairn_file *f)
{
    if (!f)
        return;
    if (f->ops && f->state)
        f->ops->close(f);
    cairn__source_close(&f->src);
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

cairn_status cairn__tensor_get(const cairn_file *f, uint64_t index, cairn__tensor *out,
                               cairn_error *err)
{
    uint64_t n = f->ops->count(f);
    if (index >= n)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: tensor index %llu out of range (%llu "
                           "tensors)", f->path, (unsigned long long)index,
                           (unsigned long long)n);
    return f->ops->tensor_at(f, index, out, err);
}

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
