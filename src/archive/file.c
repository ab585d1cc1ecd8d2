/* file.c -- opening inputs (io/source.h), format detection (format/registry.h), and the
 * format-independent query functions of cairn_file. */
#include "archive/archive.h"
#include "io/remote.h"
#include "format/safetensors/safetensors.h"
#include "archive/safetensors_index.h"
#include "container/zip.h"
#include "common/opts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The caller's options as far as its struct goes (common/opts.h), the
 * defaults beyond: no flags, detection, CAIRN_MAX_INFLATE_DEFAULT, a thread
 * per CPU, no public key. */
static cairn_status read_opts(const cairn_open_opts *opts, cairn_open_opts *o, cairn_error *err)
{
    *o = (cairn_open_opts){.struct_size = sizeof *o, .format = CAIRN_FORMAT_AUTO};
    CAIRN_TRY(CAIRN__OPTS_COPY(o, opts, cairn_open_opts, flags, err));
    if (o->max_inflate == 0)
        o->max_inflate = CAIRN_MAX_INFLATE_DEFAULT;
    return CAIRN_OK;
}

static void apply_opts(cairn_file *f, const cairn_open_opts *o)
{
    f->max_inflate = o->max_inflate;
    f->threads = o->threads;
    if (o->public_key) {
        memcpy(f->public_key, o->public_key, CAIRN_PUBLIC_KEY_BYTES);
        f->has_public_key = 1;
    }
}

#ifdef CAIRN_CHECK_TENSORS
static void check_all_tensors(const cairn_file *f);
#endif

/* The end of every open, after the reader's open gave st: the whole file
 * checked if the options ask it; *out = f, or f is closed. */
static cairn_status opened(cairn_file *f, cairn_status st, cairn_file **out, cairn_error *err)
{
    if (st == CAIRN_OK && (f->flags & CAIRN_OPEN_VERIFY))
        st = cairn_file_verify(f, err);
    if (st == CAIRN_OK)
        *out = f;
    else
        cairn_file_close(f);
    return st;
}

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
    return opened(f, st, out, err);
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

/* A directory opened as one archive of its files: a skorch checkpoint
 * (skorch.c) or a distributed checkpoint (dist_read.c). */
static cairn_status open_dir(const char *path, const cairn__reader_ops *ops,
                             const cairn_open_opts *o, cairn_file **out, cairn_error *err)
{
    cairn_file *f = file_new(path);
    if (!f)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    f->flags = o->flags;
    apply_opts(f, o);
    f->ops = ops;
    return opened(f, f->ops->open(f, err), out, err);
}

/* An object URL with no object: a distributed checkpoint when a manifest
 * object sits under it as a key prefix (docs/DISTRIBUTED.md). */
static int remote_dist(const char *path, cairn_format format)
{
    return cairn__remote_is_url(path) &&
           (format == CAIRN_FORMAT_AUTO || format == CAIRN_FORMAT_NATIVE) &&
           cairn__dist_sniff(path);
}

static cairn_status open_remote_dist(const char *path, const cairn_open_opts *o,
                                     cairn_file **out, cairn_error *err)
{
    if (o->public_key)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a distributed checkpoint carries no "
                           "signature", path);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    char *p = strndup(path, len);
    if (!p)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    cairn_status st = open_dir(p, &cairn__dist_reader, o, out, err);
    free(p);
    return st;
}

cairn_status cairn_file_open(const char *path, const cairn_open_opts *opts, cairn_file **out,
                             cairn_error *err)
{
    cairn_open_opts o;
    if (out)
        *out = NULL;
    if (!path || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_open: path and out must not be NULL");
    CAIRN_TRY(read_opts(opts, &o, err));
    unsigned flags = o.flags;
    cairn_format format = o.format;

    cairn__source src;
    cairn__source_kind kind;
    cairn_status st = cairn__source_open_file(&src, path, (flags & CAIRN_OPEN_NO_MMAP) != 0,
                                              &kind, err);
    if (st == CAIRN_E_NOT_FOUND && remote_dist(path, format)) {
        cairn__clear(err); /* no object: a key prefix holding a distributed checkpoint */
        return open_remote_dist(path, &o, out, err);
    }
    CAIRN_TRY(st);
    if (kind == CAIRN__SOURCE_DIRECTORY) {
        const cairn__reader_ops *ops = NULL;
        if ((format == CAIRN_FORMAT_AUTO || format == CAIRN_FORMAT_NATIVE) &&
            cairn__dist_sniff(path))
            ops = &cairn__dist_reader;
        else if ((format == CAIRN_FORMAT_AUTO || format == CAIRN_FORMAT_TORCH) &&
                 cairn__skorch_sniff(path))
            ops = &cairn__skorch_reader;
        if (!ops)
            return cairn__fail(err, CAIRN_E_IO, "%s: not a regular file (a directory, but no "
                               "skorch or distributed checkpoint)", path);
        if (o.public_key)
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a %s directory carries no "
                               "signature (sign it with cairn_sign_dir)", path,
                               ops == &cairn__dist_reader ? "distributed checkpoint" : "skorch");
        return open_dir(path, ops, &o, out, err);
    }
    cairn_file *f = file_new(path);
    if (!f) {
        cairn__source_close(&src);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    }
    f->flags = flags;
    apply_opts(f, &o);
    f->src = src;
    f->src.path = f->path;
    return finish_open(f, format, out, err);
}

cairn_status cairn_file_open_memory(const void *data, size_t size, const cairn_open_opts *opts,
                                    cairn_file **out, cairn_error *err)
{
    cairn_open_opts o;
    if (out)
        *out = NULL;
    if ((!data && size > 0) || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_open_memory: data and out must not be NULL");
    CAIRN_TRY(read_opts(opts, &o, err));
    cairn_file *f = file_new("<memory>");
    if (!f)
        return cairn__fail(err, CAIRN_E_NOMEM, "<memory>: out of memory");
    f->flags = o.flags & ~(unsigned)CAIRN_OPEN_NO_MMAP;
    apply_opts(f, &o);
    cairn__source_init_memory(&f->src, f->path, data, size);
    return finish_open(f, o.format, out, err);
}

void cairn_file_close(cairn_file *f)
{
    if (!f)
        return;
    if (f->ops && f->state)
        cairn__reader_close(f);
    cairn__source_close(&f->src);
    free(f->path);
    free(f);
}

const char *cairn_file_path(const cairn_file *f) { return f ? f->path : NULL; }

uint64_t cairn_file_count(const cairn_file *f) { return f ? cairn__reader_count(f) : 0; }

cairn_status cairn_file_get_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    if (!f || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_get_info: NULL argument");
    memset(out, 0, sizeof *out);
    return cairn__reader_file_info(f, out, err);
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
    uint64_t n = cairn__reader_count(f);
    if (index >= n)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: tensor index %llu out of range (%llu "
                           "tensors)", f->path, (unsigned long long)index,
                           (unsigned long long)n);
    CAIRN_TRY(cairn__reader_tensor_at(f, index, out, err));
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
    uint64_t n = cairn__reader_count(f);
    for (uint64_t i = 0; i < n; i++) {
        cairn__tensor t;
        cairn_error e;
        if (cairn__reader_tensor_at(f, i, &t, NULL) != CAIRN_OK)
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
    CAIRN_TRY(cairn__reader_find(f, name, strlen(name), &i, err));
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
    return cairn__metadata_copy(f, NULL, out, err); /* no metadata: an empty map */
}
