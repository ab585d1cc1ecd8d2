/* pickle_read.c -- a plain pickle or joblib file (docs/FORMAT.md, "Pickle and
 * joblib as inert data"). Such a file is a program for Python's unpickler, so
 * by default it is refused, naming the first global cairn does not know. With
 * CAIRN_OPEN_INERT the restricted machine (pickle.h) records every global,
 * REDUCE, NEWOBJ and BUILD as a plain node and the object becomes the
 * metadata tree, where each NumPy array is a tensor named by its path
 * (pickle_flat.c finds them); nothing is ever called. joblib's compressed files (zlib, gzip,
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

/* A NumPy array the walk found (cairn__pk_array). */
/* What a packed record keeps beside the cairn__tensor: where its bytes are. */
typedef struct pickle_tail {
    const uint8_t *bytes; /* into `owned` or the pickle's bytes */
    uint8_t *owned;
} pickle_tail;

typedef struct pickle_state {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    cairn__packed tensors; /* tails are pickle_tail */
    uint64_t count;
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
    for (uint64_t i = 0; i < s->count; i++) {
        pickle_tail tail;
        cairn__packed_tail(&s->tensors, i, &tail);
        free(tail.owned);
    }
    cairn__packed_free(&s->tensors);
    cairn__nameset_free(&s->names);
    cairn__pk_flat_free(&s->flat);
    free(s->owned);
    free(s);
}

/* The host's consumed hook for a mapped pickle (the file itself): the run
 * is past its first `pos` bytes. */
static void forget_behind(void *ctx, size_t pos)
{
    const cairn_file *f = ctx;
    cairn__source_forget(&f->src, 0, pos);
}

/* ------------------------------------------------------------ arrays */

typedef struct sink_ctx {
    const cairn_file *f;
    pickle_state *s;
} sink_ctx;

/* An array the walk names becomes a row of the table (the walk's sink:
 * pickle.h); the name is copied, bytes the graph made move here. */
static cairn_status add_array(void *ctx, const cairn__pk_array *e, const uint64_t *dims,
                              cairn_error *err)
{
    sink_ctx *c = ctx;
    cairn__tensor t;
    memset(&t, 0, sizeof t);
    cairn_tensor_info *in = &t.info;
    in->name = e->name;
    in->name_len = e->len;
    in->dtype = (cairn_dtype)e->dtype;
    in->rank = e->rank;
    in->count = 1;
    for (uint32_t d = 0; d < e->rank; d++) {
        in->dims[d] = dims[d];
        in->count *= in->dims[d]; /* checked by cairn__np_array_of */
    }
    in->raw_size = in->stored_size = e->nbytes;
    in->alignment = 1;
    in->codec = CAIRN_CODEC_NONE;
    t.big_endian = e->big_endian;
    t.fortran_order = e->fortran;
    t.via_load = 1; /* the bytes are in the pickle (which may have been inflated) */
    pickle_tail tail = {e->bytes, e->owned};
    return cairn__packed_add(&c->s->tensors, &t, &tail, c->f->path, err);
}

/* The rows of a run that is not believed (pickle_read's compact run). */
static void drop_rows(pickle_state *s)
{
    for (uint64_t i = 0; i < s->tensors.count; i++) {
        pickle_tail tail;
        cairn__packed_tail(&s->tensors, i, &tail);
        free(tail.owned);
    }
    cairn__packed_free(&s->tensors);
    cairn__packed_init(&s->tensors, sizeof(pickle_tail));
}

/* Runs the pickle and walks it into *flat: the names and arrays only
 * (an open), or with the whole tree (full_tree: read_metadata); `compact`:
 * arrays are made compact as the run goes (pickle.h). */
static cairn_status run_once(const cairn_file *f, pickle_state *s, int full_tree,
                             int compact, cairn__pk_flat *flat, cairn_error *err)
{
    sink_ctx sink = {f, s};
    cairn__pickle_host host = {(void *)f, cairn__pickle_torch_global, NULL,
                               (f->flags & CAIRN_OPEN_INERT) != 0,
                               s->owned ? NULL : forget_behind, 0, compact};
    cairn__pickle vm;
    cairn__pickle_init(&vm, &host, s->where, 0);
    cairn_status st = cairn__pickle_run(&vm, s->p, s->len, NULL, err);
    if (st == CAIRN_OK)
        st = cairn__pickle_detach(&vm, err);
    /* The graph has its strings: a mapped pickle's pages may leave the
     * resident set (arrays read their elements from it again later). */
    if (st == CAIRN_OK && !s->owned)
        cairn__source_forget(&f->src, 0, s->len);
    /* The budget is set by the bytes the file holds. */
    if (st == CAIRN_OK)
        st = full_tree ? cairn__pickle_flatten(&vm, f->src.size, flat, err)
                       : cairn__pickle_flatten_names(&vm, f->src.size, add_array, &sink, flat, err);
    cairn__pickle_free(&vm);
    return st;
}

/* An open lists the arrays of an inert pickle with each made compact as
 * soon as it is built (a pickle of N arrays keeps N small records, not N
 * object graphs, until the walk); a compact run that fails is not believed
 * (pickle_compact.c): the pickle runs again the plain way, and that run's
 * result, error message included, is the answer. */
static cairn_status run(const cairn_file *f, pickle_state *s, int full_tree,
                        cairn__pk_flat *flat, cairn_error *err)
{
    int compact = !full_tree && (f->flags & CAIRN_OPEN_INERT);
    cairn_error unbelieved;
    if (!compact)
        return run_once(f, s, full_tree, 0, flat, err);
    if (run_once(f, s, 0, 1, flat, &unbelieved) == CAIRN_OK)
        return CAIRN_OK;
    drop_rows(s);
    return run_once(f, s, full_tree, 0, flat, err);
}

static const char *tensor_name_at(const void *ctx, uint32_t index, size_t *len)
{
    const pickle_state *s = ctx;
    return cairn__packed_name(&s->tensors, index, len);
}

/* Two arrays whose paths read alike ({"a.b": x, "a": {"b": y}}, or a key
 * "a.0" beside item 0 of a list "a") would give one name to two tensors, the
 * second unreachable: refused, as for .pt files (docs/FORMAT.md §18). */
static cairn_status index_names(const cairn_file *f, pickle_state *s, cairn_error *err)
{
    for (uint64_t i = 0; i < s->count; i++) {
        size_t len;
        const char *name = cairn__packed_name(&s->tensors, i, &len);
        if (cairn__nameset_find(&s->names, name, len, tensor_name_at, s) >= 0) {
            char shown[160];
            return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: two arrays are both named '%s' "
                               "(a dotted key and nested containers that spell the same path)",
                               f->path, cairn__printable(name, len, shown, sizeof shown));
        }
        CAIRN_TRY(cairn__nameset_insert(&s->names, (uint32_t)i, tensor_name_at, s, err));
    }
    return CAIRN_OK;
}

static cairn_status pickle_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const pickle_state *s = f->state;
    cairn__tensor t;
    pickle_tail tail;
    cairn__packed_get(&s->tensors, index, &t);
    cairn__packed_tail(&s->tensors, index, &tail);
    memcpy(dst, tail.bytes, (size_t)t.info.raw_size);
    return CAIRN_OK;
}

static cairn_status pickle_open(cairn_file *f, cairn_error *err)
{
    pickle_state *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn__packed_init(&s->tensors, sizeof(pickle_tail));
    cairn_status st = load_bytes(f, s, err);
    if (st == CAIRN_OK) {
        snprintf(s->where, sizeof s->where, "%s%s", f->path,
                 s->inflated ? " (inflated)" : "");
        st = run(f, s, 0, &s->flat, err);
    }
    s->count = s->tensors.count;
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
    for (uint64_t i = 0; i < s->count; i++) {
        cairn__tensor t;
        cairn__packed_get(&s->tensors, i, &t);
        payload += t.info.stored_size;
    }
    /* version: the pickle protocol */
    cairn__table_init_packed(&s->table, &s->tensors, NULL, state_free);
    cairn__table_info(&s->table, CAIRN_FORMAT_PICKLE, s->len > 1 ? s->p[1] : 0, payload, 0, 1,
                      cairn__pk_flat_has_tree(&s->flat));
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
    /* The open kept the names only: the pickle (still in memory) is run
     * again for the tree. */
    cairn__pk_flat flat;
    memset(&flat, 0, sizeof flat);
    cairn_status st = run(f, f->state, 1, &flat, err);
    *out = NULL;
    if (st == CAIRN_OK) {
        *out = flat.tree;
        flat.tree = NULL;
    }
    cairn__pk_flat_free(&flat);
    return st;
}

const cairn__reader_ops cairn__pickle_reader =
    CAIRN__READER_OPS(pickle, CAIRN_FORMAT_PICKLE, .find = pickle_find,
                      .read_metadata = pickle_read_metadata, .load = pickle_load);
