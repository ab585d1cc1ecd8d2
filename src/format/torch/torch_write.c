/* torch_write.c -- writes PyTorch .pt files (docs/FORMAT.md "PyTorch .pt
 * (write)"): the ZIP layout of torch.save, with a protocol-2 pickle that uses
 * only globals of torch.load(weights_only=True)'s allow-list.
 *
 * Storages are written as ZIP members <prefix>/data/<key> the moment their
 * tensor arrives, so memory stays bounded by the tensor table; data.pkl (which
 * names every storage), byteorder, version and the central directory follow
 * at commit. torch.load finds members through the central directory, so the
 * order of members does not matter to it. */
#include "format/format.h"
#include "common/buf.h"
#include "common/nameset.h"
#include "common/value_internal.h"
#include "container/zip.h"

#include <stdio.h>
#include <stdlib.h>

#define TW_ALIGN_CAP 4096       /* the ZIP writer pads members to at most a page */
#define TW_DEFAULT_PREFIX "archive" /* torch.save's folder when saving to a buffer */
#define TW_BATCH 1000           /* items per APPENDS / SETITEMS, as CPython's pickler */
#define TW_TENSORS_KEY "tensors" /* where tensors the tree leaves out go */
#define TW_MAX_TENSORS (CAIRN__ZIP_MAX_MEMBERS - 8) /* room for data.pkl, version, ... */

/* Pickle opcodes (protocol 2 and below; pickletools names). */
enum {
    OP_MARK = '(',
    OP_STOP = '.',
    OP_BININT = 'J',
    OP_BININT1 = 'K',
    OP_BININT2 = 'M',
    OP_NONE = 'N',
    OP_BINPERSID = 'Q',
    OP_REDUCE = 'R',
    OP_BINUNICODE = 'X',
    OP_APPENDS = 'e',
    OP_GLOBAL = 'c',
    OP_BINFLOAT = 'G',
    OP_EMPTY_DICT = '}',
    OP_EMPTY_LIST = ']',
    OP_EMPTY_TUPLE = ')',
    OP_SETITEMS = 'u',
    OP_TUPLE = 't',
    OP_PROTO = 0x80,
    OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86,
    OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a
};

/* The legacy typed storage class torch 1.13 rebuilds each dtype from
 * (torch.storage._dtype_to_storage_type_map); NULL where it has none. */
static const char *storage_class(cairn_dtype dtype)
{
    switch (dtype) {
    case CAIRN_F64: return "DoubleStorage";
    case CAIRN_F32: return "FloatStorage";
    case CAIRN_F16: return "HalfStorage";
    case CAIRN_BF16: return "BFloat16Storage";
    case CAIRN_I8: return "CharStorage";
    case CAIRN_U8: return "ByteStorage";
    case CAIRN_I16: return "ShortStorage";
    case CAIRN_I32: return "IntStorage";
    case CAIRN_I64: return "LongStorage";
    case CAIRN_BOOL: return "BoolStorage";
    case CAIRN_C64: return "ComplexFloatStorage";
    case CAIRN_C128: return "ComplexDoubleStorage";
    default: return NULL;
    }
}

/* ----------------------------------------------------------- pickle buffer */

/* Emitters stay one line per opcode: the buffer's first allocation failure
 * sticks (buf.h) and the caller checks once at the end. */

static void pk_op(cairn__buf *b, uint8_t op)
{
    cairn__buf_put(b, &op, 1);
}

/* An int the way CPython's pickler writes it: the shortest of BININT1,
 * BININT2, BININT (signed 32 bits) and LONG1 (minimal two's complement). */
static void pk_int(cairn__buf *b, int64_t v)
{
    uint8_t x[9];
    if (v >= 0 && v <= 0xFF) {
        x[0] = OP_BININT1;
        x[1] = (uint8_t)v;
        cairn__buf_put(b, x, 2);
    } else if (v >= 0 && v <= 0xFFFF) {
        x[0] = OP_BININT2;
        cairn__put16(x + 1, (uint16_t)v);
        cairn__buf_put(b, x, 3);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        x[0] = OP_BININT;
        cairn__put32(x + 1, (uint32_t)v);
        cairn__buf_put(b, x, 5);
    } else {
        uint8_t le[8];
        cairn__put64(le, (uint64_t)v);
        size_t n = 8; /* drop bytes that only repeat the sign */
        while (n > 1 && ((le[n - 1] == 0x00 && !(le[n - 2] & 0x80)) ||
                         (le[n - 1] == 0xFF && (le[n - 2] & 0x80))))
            n--;
        x[0] = OP_LONG1;
        x[1] = (uint8_t)n;
        cairn__buf_put(b, x, 2);
        cairn__buf_put(b, le, n);
    }
}

/* BINFLOAT: the IEEE bits, big-endian (so NaN payloads and -0.0 survive). */
static void pk_float(cairn__buf *b, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    uint8_t x[9] = {OP_BINFLOAT};
    for (int i = 0; i < 8; i++)
        x[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    cairn__buf_put(b, x, sizeof x);
}

/* BINUNICODE: u32 length, UTF-8. The caller checked len <= UINT32_MAX. */
static void pk_str(cairn__buf *b, const char *s, size_t len)
{
    uint8_t x[5] = {OP_BINUNICODE};
    cairn__put32(x + 1, (uint32_t)len);
    cairn__buf_put(b, x, sizeof x);
    cairn__buf_put(b, s, len);
}

static void pk_cstr(cairn__buf *b, const char *s)
{
    pk_str(b, s, strlen(s));
}

/* GLOBAL "module\nname\n": protocol 2 has no STACK_GLOBAL. */
static void pk_global(cairn__buf *b, const char *module, const char *name)
{
    pk_op(b, OP_GLOBAL);
    cairn__buf_put(b, module, strlen(module));
    pk_op(b, '\n');
    cairn__buf_put(b, name, strlen(name));
    pk_op(b, '\n');
}

/* A tuple of ints (a shape or a stride), with the short forms for up to 3. */
static void pk_int_tuple(cairn__buf *b, const uint64_t *v, uint32_t n)
{
    static const uint8_t short_form[4] = {OP_EMPTY_TUPLE, OP_TUPLE1, OP_TUPLE2, OP_TUPLE3};
    if (n > 3)
        pk_op(b, OP_MARK);
    for (uint32_t i = 0; i < n; i++)
        pk_int(b, (int64_t)v[i]); /* tw_add kept every size and stride <= INT64_MAX */
    pk_op(b, n > 3 ? OP_TUPLE : short_form[n]);
}

/* ------------------------------------------------------------ writer state */

typedef struct tw_tensor {
    char *name;
    size_t name_len;
    cairn_dtype dtype;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t count;   /* elements: the storage's numel */
    uint32_t storage; /* key of data/<key>; aliases share their target's */
    int referenced;   /* the metadata tree names it (set at finish) */
} tw_tensor;

typedef struct tw_writer {
    cairn__zip_writer zw;
    char *prefix; /* the archive's top folder */
    tw_tensor *tensors;
    size_t count, cap;
    uint32_t storages;
    cairn__nameset names;
    cairn_value *meta; /* NULL or an empty map: write the flat state dict */
} tw_writer;

static const char *tensor_name(const void *ctx, uint32_t index, size_t *len)
{
    const tw_writer *s = ctx;
    *len = s->tensors[index].name_len;
    return s->tensors[index].name;
}

static int64_t lookup(const tw_writer *s, const char *name, size_t len)
{
    return cairn__nameset_find(&s->names, name, len, tensor_name, s);
}

/* torch.save names the top folder after the file: its base name without
 * the last extension ("ck.pt" -> "ck"); "archive" for memory or when that
 * leaves nothing (".pt"). */
static char *archive_prefix(const cairn_writer *w)
{
    if (cairn__sink_is_memory(&w->sink))
        return strdup(TW_DEFAULT_PREFIX);
    const char *base = strrchr(w->path, '/');
    base = base ? base + 1 : w->path;
    const char *dot = strrchr(base, '.');
    size_t n = dot ? (size_t)(dot - base) : strlen(base);
    if (n == 0)
        return strdup(TW_DEFAULT_PREFIX);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, base, n);
        p[n] = '\0';
    }
    return p;
}

static cairn_status tw_begin(cairn_writer *w, cairn_error *err)
{
    tw_writer *s = calloc(1, sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    w->state = s;
    cairn__zipw_init(&s->zw, &w->sink);
    if (!(s->prefix = archive_prefix(w)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    return CAIRN_OK;
}

/* Appends a tensor record (name copied) and indexes it by name. */
static cairn_status push_tensor(cairn_writer *w, tw_writer *s, const tw_tensor *proto,
                                const char *name, cairn_error *err)
{
    size_t len = strlen(name);
    if (s->count >= TW_MAX_TENSORS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': a .pt written by cairn holds "
                           "at most %llu tensors", w->path, name,
                           (unsigned long long)TW_MAX_TENSORS);
    if (!CAIRN__GROW(s->tensors, s->cap, s->count, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the tensor table",
                           w->path);
    tw_tensor *t = &s->tensors[s->count];
    *t = *proto;
    if (!(t->name = strdup(name)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    t->name_len = len;
    s->count++;
    return cairn__nameset_insert(&s->names, (uint32_t)(s->count - 1), tensor_name, s, err);
}

/* One member <prefix>/<leaf> holding `len` bytes, its data aligned as
 * torch.save aligns every record. */
static cairn_status add_member(cairn_writer *w, tw_writer *s, const char *leaf, const void *data,
                               uint64_t len, cairn_error *err)
{
    size_t n = strlen(s->prefix) + 1 + strlen(leaf);
    char *name = malloc(n + 1);
    if (!name)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    snprintf(name, n + 1, "%s/%s", s->prefix, leaf);
    cairn__zip_piece piece = {data, len};
    uint64_t align = w->alignment < TW_ALIGN_CAP ? w->alignment : TW_ALIGN_CAP;
    cairn_status st = cairn__zipw_add(&s->zw, name, n, &piece, 1, 0, align, 0, err);
    free(name);
    return st;
}

static cairn_status tw_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    tw_writer *s = w->state;
    if (!storage_class(dtype))
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': PyTorch 1.13 has no "
                           "storage type for %s (torch.save supports F64 F32 F16 BF16 I8 U8 "
                           "I16 I32 I64 BOOL C64 C128)", w->path, name, cairn_dtype_name(dtype));
    tw_tensor t = {.dtype = dtype, .rank = rank, .count = 1, .storage = s->storages};
    uint64_t span = 1; /* the product of max(dim, 1): the largest stride torch computes */
    for (uint32_t d = 0; d < rank; d++) {
        t.dims[d] = dims[d];
        t.count *= dims[d]; /* writer.c checked the product */
        /* Beside a 0 dimension the others may be anything; torch sizes are int64. */
        if (cairn__mul_overflow(span, dims[d] ? dims[d] : 1, &span) || span > INT64_MAX)
            return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s': dimension %u (%llu) "
                               "makes a size or stride beyond PyTorch's int64", w->path, name, d,
                               (unsigned long long)dims[d]);
    }
    CAIRN_TRY(push_tensor(w, s, &t, name, err));
    char leaf[32];
    snprintf(leaf, sizeof leaf, "data/%u", (unsigned)t.storage);
    s->storages++;
    return add_member(w, s, leaf, data, t.count * cairn_dtype_size(dtype), err);
}

/* An alias is a second tensor over the same storage: torch.load gives both
 * names one storage (tied weights keep equal data_ptr()). */
static cairn_status tw_add_alias(cairn_writer *w, const char *name, const char *existing,
                                 cairn_error *err)
{
    tw_writer *s = w->state;
    int64_t i = lookup(s, existing, strlen(existing));
    if (i < 0)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: alias '%s': no tensor '%s' was added",
                           w->path, name, existing);
    tw_tensor t = s->tensors[i];
    t.name = NULL;
    return push_tensor(w, s, &t, name, err);
}

static cairn_status tw_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    tw_writer *s = w->state;
    cairn_value_free(s->meta);
    s->meta = tree;
    return CAIRN_OK;
}

/* ------------------------------------------------------------ data.pkl */

typedef struct emit {
    cairn_writer *w;
    tw_writer *s;
    cairn__buf *b;
    cairn_error *err;
} emit;

/* torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
 * OrderedDict()), with the storage as persistent id ('storage', class, key,
 * 'cpu', numel), exactly as torch.save writes a contiguous CPU tensor. */
static void emit_tensor(cairn__buf *b, const tw_tensor *t)
{
    char key[16];
    snprintf(key, sizeof key, "%u", (unsigned)t->storage);
    /* torch's contiguous strides treat a 0 dimension as 1. */
    uint64_t stride[CAIRN_MAX_RANK], step = 1;
    for (uint32_t d = t->rank; d-- > 0;) {
        stride[d] = step;
        step *= t->dims[d] ? t->dims[d] : 1;
    }
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    pk_op(b, OP_MARK);
    pk_op(b, OP_MARK);
    pk_cstr(b, "storage");
    pk_global(b, "torch", storage_class(t->dtype));
    pk_cstr(b, key);
    pk_cstr(b, "cpu");
    pk_int(b, (int64_t)t->count);
    pk_op(b, OP_TUPLE);
    pk_op(b, OP_BINPERSID);
    pk_int(b, 0);
    pk_int_tuple(b, t->dims, t->rank);
    pk_int_tuple(b, stride, t->rank);
    pk_op(b, OP_NEWFALSE);
    pk_global(b, "collections", "OrderedDict");
    pk_op(b, OP_EMPTY_TUPLE);
    pk_op(b, OP_REDUCE);
    pk_op(b, OP_TUPLE);
    pk_op(b, OP_REDUCE);
}

/* OrderedDict {name: tensor} of the tensors with referenced == want_ref
 * (every tensor when want_ref < 0), in the order they were added: what
 * module.state_dict() gives. */
static void emit_state_dict(cairn__buf *b, const tw_writer *s, int want_ref)
{
    pk_global(b, "collections", "OrderedDict");
    pk_op(b, OP_EMPTY_TUPLE);
    pk_op(b, OP_REDUCE);
    size_t in_batch = 0;
    for (size_t i = 0; i < s->count; i++) {
        const tw_tensor *t = &s->tensors[i];
        if (want_ref >= 0 && t->referenced != want_ref)
            continue;
        if (in_batch == 0)
            pk_op(b, OP_MARK);
        pk_str(b, t->name, t->name_len);
        emit_tensor(b, t);
        if (++in_batch == TW_BATCH) {
            pk_op(b, OP_SETITEMS);
            in_batch = 0;
        }
    }
    if (in_batch)
        pk_op(b, OP_SETITEMS);
}

/* Bytes as protocol 2 pickles them: _codecs.encode(<latin-1 text>, 'latin1'),
 * the latin-1 text written as UTF-8 (each byte >= 0x80 takes two). */
static cairn_status emit_bytes(emit *e, const uint8_t *p, size_t len)
{
    size_t wide = len;
    for (size_t i = 0; i < len; i++)
        wide += p[i] >= 0x80;
    if (wide > UINT32_MAX)
        return cairn__fail(e->err, CAIRN_E_LIMIT, "%s: metadata: bytes of %zu bytes exceed "
                           "pickle protocol 2's 4 GiB string", e->w->path, len);
    uint8_t x[5] = {OP_BINUNICODE};
    cairn__put32(x + 1, (uint32_t)wide);
    pk_global(e->b, "_codecs", "encode");
    cairn__buf_put(e->b, x, sizeof x);
    for (size_t i = 0; i < len; i++) {
        uint8_t u[2] = {(uint8_t)(0xC0 | (p[i] >> 6)), (uint8_t)(0x80 | (p[i] & 0x3F))};
        if (p[i] < 0x80)
            cairn__buf_put(e->b, p + i, 1);
        else
            cairn__buf_put(e->b, u, 2);
    }
    pk_cstr(e->b, "latin1");
    pk_op(e->b, OP_TUPLE2);
    pk_op(e->b, OP_REDUCE);
    return CAIRN_OK;
}

static cairn_status emit_text(emit *e, const char *s, size_t len, const char *what)
{
    if (len > UINT32_MAX)
        return cairn__fail(e->err, CAIRN_E_LIMIT, "%s: metadata: a %s of %zu bytes exceeds "
                           "pickle protocol 2's 4 GiB string", e->w->path, what, len);
    pk_str(e->b, s, len);
    return CAIRN_OK;
}

static cairn_status emit_value(emit *e, const cairn_value *v, int depth);

static cairn_status emit_ref(emit *e, const cairn_value *v)
{
    const void *name;
    size_t len;
    cairn_value_get_data(v, &name, &len);
    int64_t i = lookup(e->s, name, len);
    if (i < 0) {
        char shown[160];
        return cairn__fail(e->err, CAIRN_E_NOT_FOUND, "%s: metadata refers to tensor '%s', "
                           "which was not added", e->w->path,
                           cairn__printable(name, len, shown, sizeof shown));
    }
    emit_tensor(e->b, &e->s->tensors[i]);
    return CAIRN_OK;
}

/* A list: EMPTY_LIST, then its items in batches of MARK ... APPENDS. */
static cairn_status emit_list(emit *e, const cairn_value *v, int depth)
{
    size_t n = cairn_value_count(v);
    pk_op(e->b, OP_EMPTY_LIST);
    for (size_t i = 0; i < n; i++) {
        if (i % TW_BATCH == 0)
            pk_op(e->b, OP_MARK);
        cairn_value scratch; /* packed lists are read in place */
        CAIRN_TRY(emit_value(e, cairn__value_item(v, i, &scratch), depth + 1));
        if (i % TW_BATCH == TW_BATCH - 1 || i == n - 1)
            pk_op(e->b, OP_APPENDS);
    }
    return CAIRN_OK;
}

/* A map: a dict (insertion-ordered in Python 3.7+), in batches of MARK
 * key value ... SETITEMS. `extra` (the root's tensors the tree leaves out)
 * goes last under TW_TENSORS_KEY when it is set. */
static cairn_status emit_map(emit *e, const cairn_value *v, int depth, int extra)
{
    size_t n = cairn_value_count(v);
    pk_op(e->b, OP_EMPTY_DICT);
    for (size_t i = 0; i < n; i++) {
        const char *key = cairn_value_key_at(v, i);
        if (i % TW_BATCH == 0)
            pk_op(e->b, OP_MARK);
        CAIRN_TRY(emit_text(e, key, strlen(key), "key"));
        CAIRN_TRY(emit_value(e, cairn_value_at(v, i), depth + 1));
        if (i % TW_BATCH == TW_BATCH - 1 || i == n - 1)
            pk_op(e->b, OP_SETITEMS);
    }
    if (!extra)
        return CAIRN_OK;
    pk_op(e->b, OP_MARK);
    pk_cstr(e->b, TW_TENSORS_KEY);
    emit_state_dict(e->b, e->s, 0);
    pk_op(e->b, OP_SETITEMS);
    return CAIRN_OK;
}

static cairn_status emit_value(emit *e, const cairn_value *v, int depth)
{
    if (depth > CAIRN_META_MAX_DEPTH)
        return cairn__fail(e->err, CAIRN_E_LIMIT, "%s: metadata nests deeper than %d levels",
                           e->w->path, CAIRN_META_MAX_DEPTH);
    const void *data;
    size_t len;
    int b;
    int64_t i;
    double d;
    switch (cairn_value_get_type(v)) {
    case CAIRN_VALUE_NULL: pk_op(e->b, OP_NONE); return CAIRN_OK;
    case CAIRN_VALUE_BOOL:
        cairn_value_get_bool(v, &b);
        pk_op(e->b, b ? OP_NEWTRUE : OP_NEWFALSE);
        return CAIRN_OK;
    case CAIRN_VALUE_INT: cairn_value_get_int(v, &i); pk_int(e->b, i); return CAIRN_OK;
    case CAIRN_VALUE_FLOAT: cairn_value_get_float(v, &d); pk_float(e->b, d); return CAIRN_OK;
    case CAIRN_VALUE_STRING:
        cairn_value_get_data(v, &data, &len);
        return emit_text(e, data, len, "string");
    case CAIRN_VALUE_BYTES:
        cairn_value_get_data(v, &data, &len);
        return emit_bytes(e, data, len);
    case CAIRN_VALUE_LIST: return emit_list(e, v, depth);
    case CAIRN_VALUE_MAP: return emit_map(e, v, depth, 0);
    case CAIRN_VALUE_TENSOR: return emit_ref(e, v);
    }
    return cairn__fail(e->err, CAIRN_E_ARG, "%s: metadata: unknown value type", e->w->path);
}

/* Marks every tensor the tree refers to. Depth is checked by emit_value. */
static void mark_refs(tw_writer *s, const cairn_value *v, int depth)
{
    if (depth > CAIRN_META_MAX_DEPTH)
        return;
    if (cairn_value_get_type(v) == CAIRN_VALUE_TENSOR) {
        const void *name;
        size_t len;
        cairn_value_get_data(v, &name, &len);
        int64_t i = lookup(s, name, len);
        if (i >= 0)
            s->tensors[i].referenced = 1;
        return;
    }
    if (v->pack) /* numbers or strings only */
        return;
    for (size_t k = 0; k < cairn_value_count(v); k++)
        mark_refs(s, cairn_value_at(v, k), depth + 1);
}

/* The object: the flat state dict without a tree; else the tree with its
 * tensor references resolved, plus TW_TENSORS_KEY for tensors it leaves out. */
static cairn_status build_pickle(cairn_writer *w, tw_writer *s, cairn__buf *b, cairn_error *err)
{
    uint8_t proto[2] = {OP_PROTO, 2};
    cairn__buf_put(b, proto, sizeof proto);
    if (!s->meta || cairn_value_count(s->meta) == 0) {
        emit_state_dict(b, s, -1);
    } else {
        mark_refs(s, s->meta, 0);
        int left_out = 0;
        for (size_t i = 0; i < s->count; i++)
            left_out |= !s->tensors[i].referenced;
        if (left_out && cairn_value_get(s->meta, TW_TENSORS_KEY))
            return cairn__fail(err, CAIRN_E_EXISTS, "%s: metadata key '%s' is taken, but some "
                               "tensors are not referenced from the metadata and would go "
                               "there; reference every tensor from the tree or rename the key",
                               w->path, TW_TENSORS_KEY);
        emit e = {w, s, b, err};
        CAIRN_TRY(emit_map(&e, s->meta, 0, left_out));
    }
    pk_op(b, OP_STOP);
    if (b->oom)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for data.pkl", w->path);
    return CAIRN_OK;
}

static cairn_status tw_finish(cairn_writer *w, cairn_error *err)
{
    tw_writer *s = w->state;
    cairn__buf b = {0};
    cairn_status st = build_pickle(w, s, &b, err);
    if (st == CAIRN_OK)
        st = add_member(w, s, "data.pkl", b.p, b.len, err);
    free(b.p);
    /* cairn's bytes are little-endian whatever the host: say so, as torch
     * 2.1+ does, so big-endian hosts byte-swap on load. */
    if (st == CAIRN_OK)
        st = add_member(w, s, "byteorder", "little", 6, err);
    if (st == CAIRN_OK)
        st = add_member(w, s, "version", "3\n", 2, err);
    return st == CAIRN_OK ? cairn__zipw_finish(&s->zw, err) : st;
}

static void tw_destroy(cairn_writer *w)
{
    tw_writer *s = w->state;
    cairn__zipw_free(&s->zw);
    for (size_t i = 0; i < s->count; i++)
        free(s->tensors[i].name);
    free(s->tensors);
    cairn__nameset_free(&s->names);
    cairn_value_free(s->meta);
    free(s->prefix);
    free(s);
}

const cairn__writer_ops cairn__torch_writer = CAIRN__WRITER_OPS(
    tw, CAIRN_FORMAT_TORCH, .add_alias = tw_add_alias, .set_metadata = tw_set_metadata);
