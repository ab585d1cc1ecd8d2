/* pickle_call.c -- what the allowed globals of a PyTorch pickle mean: the
 * allow-list table, and cairn's own code for REDUCE (rebuilding tensors,
 * OrderedDicts, sets, devices, sizes, bytes), BUILD and persistent ids. */
#include "container/pickle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------- allow-list */

#define G(mod, name, kind, dtype) {mod, name, CAIRN__PG_##kind, dtype}
#define ST(name, dtype) G("torch", name, STORAGE_TYPE, dtype)
#define DT(name, dtype) G("torch", name, DTYPE, dtype)

static const cairn__pk_global torch_globals[] = {
    G("collections", "OrderedDict", ORDERED_DICT, 0),
    G("builtins", "set", SET, 0),
    G("__builtin__", "set", SET, 0), /* protocol 2 writes Python 2's module name */
    G("builtins", "frozenset", FROZENSET, 0),
    G("__builtin__", "frozenset", FROZENSET, 0),
    G("torch._utils", "_rebuild_tensor", REBUILD_V1, 0),
    G("torch._utils", "_rebuild_tensor_v2", REBUILD_V2, 0),
    G("torch._utils", "_rebuild_tensor_v3", REBUILD_V3, 0),
    G("torch._utils", "_rebuild_parameter", PARAMETER, 0),
    G("torch._utils", "_rebuild_parameter_with_state", PARAMETER_STATE, 0),
    G("torch", "device", DEVICE, 0),
    G("torch", "Size", SIZE, 0),
    G("_codecs", "encode", ENCODE, 0),
    G("builtins", "bytes", BYTES, 0), /* bytes(): protocol 2 writes b"" so */
    G("__builtin__", "bytes", BYTES, 0),
    ST("DoubleStorage", CAIRN_F64), ST("FloatStorage", CAIRN_F32), ST("HalfStorage", CAIRN_F16),
    ST("BFloat16Storage", CAIRN_BF16), ST("LongStorage", CAIRN_I64), ST("IntStorage", CAIRN_I32),
    ST("ShortStorage", CAIRN_I16), ST("CharStorage", CAIRN_I8), ST("ByteStorage", CAIRN_U8),
    ST("BoolStorage", CAIRN_BOOL), ST("ComplexFloatStorage", CAIRN_C64),
    ST("ComplexDoubleStorage", CAIRN_C128),
    ST("UntypedStorage", CAIRN_U8), /* numel counts bytes; _rebuild_tensor_v3 gives the dtype */
    ST("QInt8Storage", CAIRN_DTYPE_INVALID), ST("QUInt8Storage", CAIRN_DTYPE_INVALID),
    ST("QInt32Storage", CAIRN_DTYPE_INVALID), ST("QUInt4x2Storage", CAIRN_DTYPE_INVALID),
    ST("QUInt2x4Storage", CAIRN_DTYPE_INVALID),
    DT("float64", CAIRN_F64), DT("float32", CAIRN_F32), DT("float16", CAIRN_F16),
    DT("bfloat16", CAIRN_BF16), DT("int64", CAIRN_I64), DT("int32", CAIRN_I32),
    DT("int16", CAIRN_I16), DT("int8", CAIRN_I8), DT("uint8", CAIRN_U8), DT("bool", CAIRN_BOOL),
    DT("complex64", CAIRN_C64), DT("complex128", CAIRN_C128),
    DT("float8_e4m3fn", CAIRN_F8_E4M3), DT("float8_e5m2", CAIRN_F8_E5M2),
    DT("uint16", CAIRN_U16), DT("uint32", CAIRN_U32), DT("uint64", CAIRN_U64),
    DT("complex32", CAIRN_DTYPE_INVALID), DT("float8_e4m3fnuz", CAIRN_DTYPE_INVALID),
    DT("float8_e5m2fnuz", CAIRN_DTYPE_INVALID), DT("float8_e8m0fnu", CAIRN_DTYPE_INVALID),
    DT("qint8", CAIRN_DTYPE_INVALID), DT("quint8", CAIRN_DTYPE_INVALID),
    DT("qint32", CAIRN_DTYPE_INVALID), DT("quint4x2", CAIRN_DTYPE_INVALID),
};

static int same(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

const cairn__pk_global *cairn__pickle_torch_global(void *ctx, const char *module,
                                                   size_t module_len, const char *name,
                                                   size_t name_len)
{
    (void)ctx;
    /* Legacy files saved on a GPU name torch.cuda.FloatStorage & co. */
    int cuda = same(module, module_len, "torch.cuda");
    for (size_t i = 0; i < sizeof torch_globals / sizeof torch_globals[0]; i++) {
        const cairn__pk_global *g = &torch_globals[i];
        int mod_ok = same(module, module_len, g->module) ||
                     (cuda && g->kind == CAIRN__PG_STORAGE_TYPE);
        if (mod_ok && same(name, name_len, g->name))
            return g;
    }
    return NULL;
}

/* ------------------------------------------------------------ argument checks */

typedef struct call_ctx {
    cairn__pickle *vm;
    const char *what; /* "torch._utils._rebuild_tensor_v2" */
    size_t at;
    cairn_error *err;
    const uint32_t *args;
    uint32_t n;
} call_ctx;

static const cairn__pk_node *arg(const call_ctx *c, uint32_t i)
{
    return &c->vm->nodes[c->args[i]];
}

static cairn_status bad_arg(const call_ctx *c, uint32_t i, const char *want)
{
    return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: argument %u is %s, "
                          "not %s", c->what, (unsigned)i, cairn__pk_type_name(arg(c, i)->type),
                          want);
}

static cairn_status want_type(const call_ctx *c, uint32_t i, uint8_t type)
{
    return arg(c, i)->type == type ? CAIRN_OK : bad_arg(c, i, cairn__pk_type_name(type));
}

static cairn_status want_count(const call_ctx *c, uint32_t lo, uint32_t hi)
{
    if (c->n >= lo && c->n <= hi)
        return CAIRN_OK;
    char takes[32];
    if (hi > lo)
        snprintf(takes, sizeof takes, "%u or %u", (unsigned)lo, (unsigned)hi);
    else
        snprintf(takes, sizeof takes, "%u", (unsigned)lo);
    return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s with %u arguments "
                          "(it takes %s)", c->what, (unsigned)c->n, takes);
}

static cairn_status want_uint(const call_ctx *c, uint32_t node, const char *field, uint64_t *out)
{
    const cairn__pk_node *v = &c->vm->nodes[node];
    if (v->type != CAIRN__PK_INT || v->u.i < 0)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: %s is %s%s, not "
                              "an int >= 0", c->what, field, cairn__pk_type_name(v->type),
                              v->type == CAIRN__PK_INT ? " below 0" : "");
    *out = (uint64_t)v->u.i;
    return CAIRN_OK;
}

static int is_seq(uint8_t type)
{
    return type == CAIRN__PK_TUPLE || type == CAIRN__PK_LIST || type == CAIRN__PK_SET ||
           type == CAIRN__PK_FROZENSET;
}

/* A tuple (or list) of ints >= 0 of at most CAIRN_MAX_RANK entries. */
static cairn_status want_dims(const call_ctx *c, uint32_t i, const char *field, uint64_t *dims,
                              uint32_t *rank)
{
    const cairn__pk_node *v = arg(c, i);
    if (v->type != CAIRN__PK_TUPLE && v->type != CAIRN__PK_LIST)
        return bad_arg(c, i, "a tuple");
    const cairn__pk_seq *s = cairn__pk_seq_of(c->vm, c->args[i]);
    if (s->count > CAIRN_MAX_RANK)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_LIMIT, "REDUCE %s: %s has %u "
                              "dimensions; cairn tensors have at most %d", c->what, field,
                              (unsigned)s->count, CAIRN_MAX_RANK);
    for (uint32_t d = 0; d < s->count; d++)
        CAIRN_TRY(want_uint(c, s->items[d], field, &dims[d]));
    *rank = s->count;
    return CAIRN_OK;
}

/* hooks: an empty OrderedDict (torch refuses to save anything else), or None. */
static cairn_status want_no_hooks(const call_ctx *c, uint32_t i)
{
    const cairn__pk_node *v = arg(c, i);
    if (v->type == CAIRN__PK_NONE)
        return CAIRN_OK;
    if (v->type != CAIRN__PK_DICT)
        return bad_arg(c, i, "a dict of backward hooks");
    if (cairn__pk_seq_of(c->vm, c->args[i])->count)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "REDUCE %s: the tensor "
                              "has backward hooks, which are code", c->what);
    return CAIRN_OK;
}

static cairn_status want_flag(const call_ctx *c, uint32_t i, int *out)
{
    const cairn__pk_node *v = arg(c, i);
    if (v->type == CAIRN__PK_BOOL) {
        *out = v->u.b;
        return CAIRN_OK;
    }
    if (v->type == CAIRN__PK_INT) {
        *out = v->u.i != 0;
        return CAIRN_OK;
    }
    return bad_arg(c, i, "a bool");
}

/* The tensor metadata dict of _rebuild_tensor_v2/v3 holds flags such as
 * conj and neg; set ones change what the elements mean, so they are refused. */
static cairn_status want_plain_metadata(const call_ctx *c, uint32_t i)
{
    const cairn__pk_node *v = arg(c, i);
    if (v->type == CAIRN__PK_NONE)
        return CAIRN_OK;
    if (v->type != CAIRN__PK_DICT)
        return bad_arg(c, i, "a dict of tensor metadata");
    const cairn__pk_seq *s = cairn__pk_seq_of(c->vm, c->args[i]);
    for (uint32_t k = 0; k + 1 < s->count; k += 2) {
        const cairn__pk_node *val = &c->vm->nodes[s->items[k + 1]];
        if (val->type == CAIRN__PK_BOOL && !val->u.b)
            continue;
        const cairn__pk_node *key = &c->vm->nodes[s->items[k]];
        char shown[64] = "?";
        if (key->type == CAIRN__PK_STR) {
            const cairn__pk_blob *b = cairn__pk_blob_of(c->vm, s->items[k]);
            cairn__printable((const char *)b->p, b->len, shown, sizeof shown);
        }
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "REDUCE %s: tensor "
                              "metadata '%s' is set (conjugate or negative views are not "
                              "supported)", c->what, shown);
    }
    return CAIRN_OK;
}

/* -------------------------------------------------------------- tensors */

static void dims_text(const uint64_t *d, uint32_t rank, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "(");
    for (uint32_t i = 0; i < rank && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%" PRIu64, i ? ", " : "", d[i]);
    if (o < size)
        snprintf(buf + o, size - o, "%s)", rank == 1 ? "," : "");
}

/* Every element the tensor can touch lies inside its storage:
 * (offset + sum((size_i - 1) * stride_i) + 1) x element size <= storage bytes,
 * all overflow-checked; an empty tensor only needs its offset inside. */
static cairn_status check_bounds(const call_ctx *c, const cairn__pk_tensor *t,
                                 const cairn__pk_storage *s)
{
    uint64_t esize = cairn_dtype_size(t->dtype), count = 1, last = t->offset, need;
    int overflow = 0;
    for (uint32_t d = 0; d < t->rank; d++)
        overflow |= cairn__mul_overflow(count, t->sizes[d], &count);
    for (uint32_t d = 0; d < t->rank && count > 0; d++) {
        uint64_t span;
        overflow |= cairn__mul_overflow(t->sizes[d] - 1, t->strides[d], &span);
        overflow |= cairn__add_overflow(last, span, &last);
    }
    if (count > 0)
        overflow |= cairn__add_overflow(last, 1, &last);
    overflow |= cairn__mul_overflow(last, esize, &need);
    /* An expanded view (stride 0) touches few bytes but has count x esize
     * of them once read: that product must fit too. */
    uint64_t bytes;
    overflow |= cairn__mul_overflow(count, esize, &bytes);
    if (!overflow && need <= s->nbytes)
        return CAIRN_OK;
    char sizes[200], strides[200];
    dims_text(t->sizes, t->rank, sizes, sizeof sizes);
    dims_text(t->strides, t->rank, strides, sizeof strides);
    const char *key = c->vm->keys + s->key;
    if (overflow)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: size %s stride "
                              "%s at storage offset %" PRIu64 " overflows 64 bits (elements, "
                              "bytes or the span they reach)", c->what,
                              sizes, strides, t->offset);
    return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: size %s stride %s at "
                          "storage offset %" PRIu64 " reaches byte %" PRIu64 " of storage '%s', "
                          "which holds %" PRIu64 " bytes", c->what, sizes, strides, t->offset,
                          need, key, s->nbytes);
}

static cairn_status rebuild_tensor(const call_ctx *c, cairn__pk_kind kind, uint32_t *out)
{
    cairn__pk_tensor t;
    memset(&t, 0, sizeof t);
    uint32_t max = kind == CAIRN__PG_REBUILD_V1 ? 4 : kind == CAIRN__PG_REBUILD_V2 ? 7 : 8;
    uint32_t min = kind == CAIRN__PG_REBUILD_V1 ? 4 : max - 1;
    CAIRN_TRY(want_count(c, min, max));
    CAIRN_TRY(want_type(c, 0, CAIRN__PK_STORAGE));
    const cairn__pk_storage *s = &c->vm->storages[arg(c, 0)->u.ref];
    t.storage = arg(c, 0)->u.ref;
    t.dtype = s->dtype;
    CAIRN_TRY(want_uint(c, c->args[1], "the storage offset", &t.offset));
    uint32_t stride_rank = 0;
    CAIRN_TRY(want_dims(c, 2, "the size", t.sizes, &t.rank));
    CAIRN_TRY(want_dims(c, 3, "the stride", t.strides, &stride_rank));
    if (stride_rank != t.rank)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: a size of %u "
                              "dimensions with a stride of %u", c->what, (unsigned)t.rank,
                              (unsigned)stride_rank);
    if (kind != CAIRN__PG_REBUILD_V1) {
        CAIRN_TRY(want_flag(c, 4, &t.requires_grad));
        CAIRN_TRY(want_no_hooks(c, 5));
    }
    uint32_t meta = kind == CAIRN__PG_REBUILD_V2 ? 6 : 7;
    if (kind == CAIRN__PG_REBUILD_V3) {
        const cairn__pk_node *d = arg(c, 6);
        if (d->type != CAIRN__PK_GLOBAL || d->u.g->kind != CAIRN__PG_DTYPE)
            return bad_arg(c, 6, "a torch dtype");
        t.dtype = d->u.g->dtype;
        if (!t.dtype)
            return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "REDUCE %s: tensors "
                                  "of dtype torch.%s are not supported", c->what, d->u.g->name);
    }
    if (kind != CAIRN__PG_REBUILD_V1 && c->n > meta)
        CAIRN_TRY(want_plain_metadata(c, meta));
    CAIRN_TRY(check_bounds(c, &t, s));
    return cairn__pk_add_tensor(c->vm, &t, c->at, out, c->err);
}

/* _rebuild_parameter(tensor, requires_grad, hooks[, state]): the tensor
 * itself (a Parameter's Python attributes in `state` are not kept). */
static cairn_status rebuild_parameter(const call_ctx *c, cairn__pk_kind kind, uint32_t *out)
{
    uint32_t n = kind == CAIRN__PG_PARAMETER ? 3 : 4;
    int grad = 0;
    CAIRN_TRY(want_count(c, n, n));
    CAIRN_TRY(want_type(c, 0, CAIRN__PK_TENSOR));
    CAIRN_TRY(want_flag(c, 1, &grad));
    CAIRN_TRY(want_no_hooks(c, 2));
    c->vm->tensors[arg(c, 0)->u.ref].requires_grad = grad;
    *out = c->args[0];
    return CAIRN_OK;
}

/* ------------------------------------------------------- plain values */

static cairn_status new_seq_from(const call_ctx *c, uint8_t type, const uint32_t *items,
                                 uint32_t n, uint32_t *out)
{
    CAIRN_TRY(cairn__pk_new_seq(c->vm, type, c->at, out, c->err));
    return cairn__pk_extend(c->vm, *out, items, n, c->err);
}

/* set(iterable) / frozenset(iterable) / OrderedDict(). */
static cairn_status make_container(const call_ctx *c, cairn__pk_kind kind, uint32_t *out)
{
    if (kind == CAIRN__PG_ORDERED_DICT) {
        CAIRN_TRY(want_count(c, 0, 0));
        CAIRN_TRY(cairn__pk_new_seq(c->vm, CAIRN__PK_DICT, c->at, out, c->err));
        c->vm->nodes[*out].flags |= CAIRN__PKF_ORDERED;
        return CAIRN_OK;
    }
    uint8_t type = kind == CAIRN__PG_SET ? CAIRN__PK_SET : CAIRN__PK_FROZENSET;
    CAIRN_TRY(want_count(c, 0, 1));
    if (c->n == 0)
        return new_seq_from(c, type, NULL, 0, out);
    if (!is_seq(arg(c, 0)->type))
        return bad_arg(c, 0, "a list or tuple");
    /* Copied, so a later APPEND to the list does not change the set. */
    const cairn__pk_seq *s = cairn__pk_seq_of(c->vm, c->args[0]);
    uint32_t n = s->count;
    uint32_t *items = malloc(n ? (size_t)n * sizeof *items : 1);
    if (!items)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory");
    if (n)
        memcpy(items, s->items, (size_t)n * sizeof *items);
    cairn_status st = new_seq_from(c, type, items, n, out);
    free(items);
    return st;
}

static cairn_status new_owned_blob(const call_ctx *c, uint8_t type, char *p, size_t len,
                                   uint32_t *out)
{
    return cairn__pk_new_blob(c->vm, type, (const uint8_t *)p, len, 1, c->at, out, c->err);
}

/* torch.device(type[, index]) -> the string torch prints: "cuda:0". */
static cairn_status make_device(const call_ctx *c, uint32_t *out)
{
    CAIRN_TRY(want_count(c, 1, 2));
    CAIRN_TRY(want_type(c, 0, CAIRN__PK_STR));
    const cairn__pk_blob *type = cairn__pk_blob_of(c->vm, c->args[0]);
    int64_t index = -1;
    if (c->n == 2 && arg(c, 1)->type != CAIRN__PK_NONE) {
        CAIRN_TRY(want_type(c, 1, CAIRN__PK_INT));
        index = arg(c, 1)->u.i;
    }
    if (type->len > 64)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: a device type "
                              "of %zu bytes", c->what, (size_t)type->len);
    char *text = malloc(96);
    if (!text)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory");
    int n = index >= 0 ? snprintf(text, 96, "%.*s:%" PRId64, (int)type->len, type->p, index)
                       : snprintf(text, 96, "%.*s", (int)type->len, type->p);
    return new_owned_blob(c, CAIRN__PK_STR, text, (size_t)n, out);
}

/* torch.Size((2, 3)) -> the tuple (2, 3). */
static cairn_status make_size(const call_ctx *c, uint32_t *out)
{
    uint64_t dims[CAIRN_MAX_RANK];
    uint32_t rank;
    CAIRN_TRY(want_count(c, 1, 1));
    CAIRN_TRY(want_dims(c, 0, "the size", dims, &rank));
    const cairn__pk_seq *s = cairn__pk_seq_of(c->vm, c->args[0]);
    uint32_t items[CAIRN_MAX_RANK];
    if (rank) /* an empty tuple has no item array */
        memcpy(items, s->items, (size_t)rank * sizeof *items);
    return new_seq_from(c, CAIRN__PK_TUPLE, items, rank, out);
}

/* _codecs.encode(text, "latin1"): how protocol 2 pickles bytes. Every code
 * point of the text is one byte, so each must be below 256. */
static cairn_status make_bytes(const call_ctx *c, uint32_t *out)
{
    CAIRN_TRY(want_count(c, 2, 2));
    CAIRN_TRY(want_type(c, 0, CAIRN__PK_STR));
    CAIRN_TRY(want_type(c, 1, CAIRN__PK_STR));
    const cairn__pk_blob *text = cairn__pk_blob_of(c->vm, c->args[0]);
    const cairn__pk_blob *enc = cairn__pk_blob_of(c->vm, c->args[1]);
    if (!same((const char *)enc->p, enc->len, "latin1") &&
        !same((const char *)enc->p, enc->len, "latin-1"))
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "REDUCE %s: only the "
                              "latin1 encoding is supported", c->what);
    if (!cairn__utf8_valid((const char *)text->p, text->len))
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: the text is not "
                              "valid UTF-8", c->what);
    char *bytes = malloc(text->len ? text->len : 1);
    if (!bytes)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < text->len; i++) {
        uint8_t b = text->p[i];
        if (b < 0x80) {
            bytes[n++] = (char)b;
        } else if ((b == 0xC2 || b == 0xC3) && i + 1 < text->len) {
            bytes[n++] = (char)(((b & 0x1F) << 6) | (text->p[++i] & 0x3F));
        } else {
            free(bytes);
            return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "REDUCE %s: a code "
                                  "point above U+00FF cannot be a latin1 byte", c->what);
        }
    }
    return new_owned_blob(c, CAIRN__PK_BYTES, bytes, n, out);
}

/* bytes() with no argument: protocol 2's empty bytes (an empty array's data). */
static cairn_status make_empty_bytes(const call_ctx *c, uint32_t *out)
{
    CAIRN_TRY(want_count(c, 0, 0));
    char *bytes = malloc(1);
    if (!bytes)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory");
    return new_owned_blob(c, CAIRN__PK_BYTES, bytes, 0, out);
}

/* ------------------------------------------------------------------ REDUCE */

/* ------------------------------------------------------------ inert mode */

static int is_class(const cairn__pickle *vm, uint32_t node)
{
    return vm->nodes[node].type == CAIRN__PK_STR && (vm->nodes[node].flags & CAIRN__PKF_CLASS);
}

/* The keys inert nodes are made of: one STR node each per machine, shared
 * by every node that holds it (pinned: never freed before the machine). */
static const char *const inert_keys[CAIRN__PK_INERT_KEYS] = {"$class", "args", "state", "data"};

/* Sets key `lit` (one of inert_keys) of the inert node `obj` to `value`:
 * a key it has already (a second BUILD: Python's __setstate__ again, whose
 * last state is what NumPy keeps) takes the new value in place; else the
 * pair is appended. */
static cairn_status inert_put(cairn__pickle *vm, uint32_t obj, const char *lit, uint32_t value,
                              size_t at, cairn_error *err)
{
    uint32_t k = 0;
    while (k + 1 < CAIRN__PK_INERT_KEYS && strcmp(inert_keys[k], lit) != 0)
        k++;
    /* Only the first pairs: an object whose machine keys are not all among
     * them has keys a SETITEM set before them, is no array
     * (cairn__pk_machine_made), and its tree shows the last value of a key
     * either way. A long object built again and again costs no scan. */
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, obj);
    uint32_t scan = q->count < 2 * CAIRN__PK_INERT_KEYS ? q->count : 2 * CAIRN__PK_INERT_KEYS;
    for (uint32_t i = 0; vm->inert_key[k] && i + 1 < scan; i += 2)
        if (q->items[i] == vm->inert_key[k] - 1) { /* the machine's key, not a SETITEM's */
            uint32_t old = q->items[i + 1];
            cairn__pk_hold(vm, value);
            vm->seqs[vm->nodes[obj].u.ref].items[i + 1] = value;
            cairn__pk_drop(vm, old);
            return CAIRN_OK;
        }
    uint32_t pair[2];
    if (!vm->inert_key[k]) {
        CAIRN_TRY(cairn__pk_new_blob(vm, CAIRN__PK_STR, (const uint8_t *)inert_keys[k],
                                     strlen(inert_keys[k]), 0, at, &pair[0], err));
        vm->nodes[pair[0]].refs = CAIRN__PK_PINNED;
        vm->inert_key[k] = pair[0] + 1;
    }
    pair[0] = vm->inert_key[k] - 1;
    pair[1] = value;
    return cairn__pk_extend(vm, obj, pair, 2, err);
}

/* `cls(*args)` as data: a dict {"$class": "module.name", "args": args}. */
static cairn_status inert_object(cairn__pickle *vm, uint32_t cls, uint32_t args, size_t at,
                                 uint32_t *out, cairn_error *err)
{
    CAIRN_TRY(cairn__pk_new_seq(vm, CAIRN__PK_DICT, at, out, err));
    vm->nodes[*out].flags |= CAIRN__PKF_INERT;
    CAIRN_TRY(inert_put(vm, *out, "$class", cls, at, err));
    return inert_put(vm, *out, "args", args, at, err);
}

cairn_status cairn__pk_newobj(cairn__pickle *vm, uint32_t cls, uint32_t args, size_t at,
                              uint32_t *out, cairn_error *err)
{
    if (!is_class(vm, cls))
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "NEWOBJ on %s: only a class "
                              "named by a global may be instantiated (as data)",
                              cairn__pk_type_name(vm->nodes[cls].type));
    return inert_object(vm, cls, args, at, out, err);
}

cairn_status cairn__pk_reduce(cairn__pickle *vm, uint32_t callable, uint32_t args, size_t at,
                              uint32_t *out, cairn_error *err)
{
    if (is_class(vm, callable))
        return inert_object(vm, callable, args, at, out, err);
    const cairn__pk_node *f = &vm->nodes[callable];
    if (f->type != CAIRN__PK_GLOBAL)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "REDUCE on %s: only allowed "
                              "globals may be called", cairn__pk_type_name(f->type));
    char what[160];
    snprintf(what, sizeof what, "%s.%s", f->u.g->module, f->u.g->name);
    if (vm->nodes[args].type != CAIRN__PK_TUPLE)
        return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "REDUCE %s: the arguments are %s, "
                              "not a tuple", what, cairn__pk_type_name(vm->nodes[args].type));
    const cairn__pk_seq *a = cairn__pk_seq_of(vm, args);
    call_ctx c = {vm, what, at, err, a->items, a->count};
    cairn__pk_kind kind = f->u.g->kind;
    switch (kind) {
    case CAIRN__PG_ORDERED_DICT:
    case CAIRN__PG_SET:
    case CAIRN__PG_FROZENSET: return make_container(&c, kind, out);
    case CAIRN__PG_REBUILD_V1:
    case CAIRN__PG_REBUILD_V2:
    case CAIRN__PG_REBUILD_V3: return rebuild_tensor(&c, kind, out);
    case CAIRN__PG_PARAMETER:
    case CAIRN__PG_PARAMETER_STATE: return rebuild_parameter(&c, kind, out);
    case CAIRN__PG_DEVICE: return make_device(&c, out);
    case CAIRN__PG_SIZE: return make_size(&c, out);
    case CAIRN__PG_ENCODE: return make_bytes(&c, out);
    case CAIRN__PG_BYTES: return make_empty_bytes(&c, out);
    case CAIRN__PG_STORAGE_TYPE:
    case CAIRN__PG_DTYPE: break;
    }
    return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "REDUCE on %s: it is a type, not a "
                          "callable cairn rebuilds", what);
}

/* ------------------------------------------------------------------- BUILD */

/* joblib's NumpyArrayWrapper: the array's bytes follow its BUILD in the
 * stream (one byte of padding length, that many padding bytes, then the
 * elements), outside any opcode; the wrapper's state says how many. */
static cairn_status joblib_elements(cairn__pickle *vm, uint32_t state, size_t at,
                                    uint64_t *nbytes, cairn_error *err);

static int class_is(const cairn__pickle *vm, uint32_t obj, const char *name)
{
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, obj);
    const cairn__pk_blob *b = cairn__pk_blob_of(vm, q->items[1]);
    return b->len == strlen(name) && memcmp(b->p, name, b->len) == 0;
}

/* Two dict keys Python holds as one: the same object, equal str or equal int. */
static int same_key(const cairn__pickle *vm, uint32_t a, uint32_t b)
{
    const cairn__pk_node *x = &vm->nodes[a], *y = &vm->nodes[b];
    if (a == b)
        return 1;
    if (x->type != y->type)
        return 0;
    if (x->type == CAIRN__PK_INT)
        return x->u.i == y->u.i;
    if (x->type != CAIRN__PK_STR)
        return 0;
    const cairn__pk_blob *p = cairn__pk_blob_of(vm, a), *q = cairn__pk_blob_of(vm, b);
    return p->len == q->len && memcmp(p->p, q->p, p->len) == 0;
}

/* A joblib array reads its wrapper's state as the wrapper had it at its
 * BUILD (joblib's __setstate__ is __dict__.update: one entry per key, the
 * last value), whatever is set in that dict later: *out is a new dict of
 * those entries. The state has at most CAIRN__PK_WRAPPER_STATE_MAX entries. */
static cairn_status state_as_built(cairn__pickle *vm, uint32_t state, size_t at, uint32_t *out,
                                   cairn_error *err)
{
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, state);
    uint32_t items[2 * CAIRN__PK_WRAPPER_STATE_MAX], n = 0;
    for (uint32_t i = 0; i + 1 < q->count; i += 2) {
        uint32_t k = 0;
        while (k < n && !same_key(vm, items[k], q->items[i]))
            k += 2;
        if (k == n) {
            items[n++] = q->items[i];
            n++;
        }
        items[k + 1] = q->items[i + 1];
    }
    CAIRN_TRY(cairn__pk_new_seq(vm, CAIRN__PK_DICT, at, out, err));
    cairn_status st = cairn__pk_extend(vm, *out, items, n, err);
    if (st != CAIRN_OK) {
        cairn__pk_hold(vm, *out);
        cairn__pk_drop(vm, *out);
    }
    return st;
}

/* BUILD on an inert node. joblib's unpickler reads the array bytes that
 * follow a NumpyArrayWrapper's BUILD and puts the array on the stack in
 * the wrapper's place; the memo keeps the wrapper (a later GET of it gives
 * the wrapper object, not the array). So here: *result is a new node
 * {"$class", "args", "state", "data"} for the array, and the wrapper
 * itself only gets its state. */
static cairn_status inert_build(cairn__pickle *vm, uint32_t obj, uint32_t state, size_t at,
                                uint32_t *result, cairn_error *err)
{
    *result = obj;
    CAIRN_TRY(inert_put(vm, obj, "state", state, at, err));
    if (!class_is(vm, obj, "joblib.numpy_pickle.NumpyArrayWrapper"))
        return CAIRN_OK;
    if (vm->nodes[state].type == CAIRN__PK_DICT &&
        cairn__pk_seq_of(vm, state)->count > 2 * CAIRN__PK_WRAPPER_STATE_MAX)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BUILD of joblib.numpy_pickle."
                              "NumpyArrayWrapper: its state has %u entries (joblib writes 6; "
                              "at most %d)", (unsigned)(cairn__pk_seq_of(vm, state)->count / 2),
                              CAIRN__PK_WRAPPER_STATE_MAX);
    uint64_t nbytes = 0;
    CAIRN_TRY(joblib_elements(vm, state, at, &nbytes, err));
    /* joblib writes (and reads) the padding byte only when the wrapper has
     * a numpy_array_alignment_bytes that is not None (joblib >= 0.12). */
    uint32_t align = cairn__pk_dict_get(vm, state, "numpy_array_alignment_bytes");
    int padded = align != UINT32_MAX && vm->nodes[align].type != CAIRN__PK_NONE;
    if (padded && vm->pos >= vm->len)
        return cairn__pk_fail(vm, err, vm->pos, CAIRN_E_CORRUPT, "NumpyArrayWrapper: the file "
                              "ends before the array's padding byte");
    size_t head = padded ? 1 + (size_t)vm->p[vm->pos] : 0;
    if (head > vm->len - vm->pos || nbytes > vm->len - vm->pos - head)
        return cairn__pk_fail(vm, err, vm->pos, CAIRN_E_CORRUPT, "NumpyArrayWrapper: %llu bytes "
                              "of array (after %zu of padding) run past the end of the pickle",
                              (unsigned long long)nbytes, head ? head - 1 : 0);
    size_t from = vm->pos + head;
    uint32_t data;
    CAIRN_TRY(cairn__pk_new_blob(vm, CAIRN__PK_BYTES, vm->p + from, (size_t)nbytes, 0, from, &data,
                                 err));
    vm->pos = from + (size_t)nbytes;
    uint32_t array, built;
    cairn_status st = state_as_built(vm, state, at, &built, err);
    if (st == CAIRN_OK) {
        st = cairn__pk_new_seq(vm, CAIRN__PK_DICT, at, &array, err);
        if (st != CAIRN_OK) {
            cairn__pk_hold(vm, built);
            cairn__pk_drop(vm, built);
        }
    }
    if (st != CAIRN_OK) {
        cairn__pk_hold(vm, data); /* held by nothing yet: freed */
        cairn__pk_drop(vm, data);
        return st;
    }
    vm->nodes[array].flags |= CAIRN__PKF_INERT;
    uint32_t args = cairn__pk_dict_get(vm, obj, "args");
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, obj);
    uint32_t pairs[8] = {vm->inert_key[0] - 1, q->items[1]}, n = 2; /* "$class": the class */
    if (args != UINT32_MAX) {
        pairs[n++] = vm->inert_key[1] - 1;
        pairs[n++] = args;
    }
    pairs[n++] = vm->inert_key[2] - 1;
    pairs[n++] = built;
    st = cairn__pk_extend(vm, array, pairs, n, err);
    if (st == CAIRN_OK)
        st = inert_put(vm, array, "data", data, at, err);
    if (st != CAIRN_OK) {
        cairn__pk_hold(vm, array);
        cairn__pk_drop(vm, array); /* frees it and what only it held */
        return st;
    }
    *result = array;
    return CAIRN_OK;
}

/* BUILD sets Python attributes. Allowed: an OrderedDict's (a state_dict's
 * _metadata) and a tensor's, from a dict (or None); both are dropped, as
 * they say nothing about the data. Anything else would need a class. */
cairn_status cairn__pk_build(cairn__pickle *vm, uint32_t target, uint32_t state, size_t at,
                             uint32_t *result, cairn_error *err)
{
    const cairn__pk_node *t = &vm->nodes[target], *s = &vm->nodes[state];
    *result = target;
    if (t->type == CAIRN__PK_DICT && (t->flags & CAIRN__PKF_INERT))
        return inert_build(vm, target, state, at, result, err);
    int ordered = t->type == CAIRN__PK_DICT && (t->flags & CAIRN__PKF_ORDERED);
    if (!ordered && t->type != CAIRN__PK_TENSOR)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BUILD on %s is not allowed "
                              "(only an OrderedDict's or a tensor's attributes may be set)",
                              t->type == CAIRN__PK_DICT ? "a plain dict"
                                                        : cairn__pk_type_name(t->type));
    if (s->type != CAIRN__PK_DICT && s->type != CAIRN__PK_NONE)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BUILD with %s as the state "
                              "(only a dict of attributes is allowed)",
                              cairn__pk_type_name(s->type));
    return CAIRN_OK;
}

/* ------------------------------------------------------------- BINPERSID */

static cairn_status pid_field(cairn__pickle *vm, const cairn__pk_seq *p, uint32_t i, uint8_t type,
                              const char *field, size_t at, cairn_error *err)
{
    uint8_t got = vm->nodes[p->items[i]].type;
    if (got == type)
        return CAIRN_OK;
    return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BINPERSID: the storage id's %s is %s, "
                          "not %s", field, cairn__pk_type_name(got), cairn__pk_type_name(type));
}

/* ('storage', storage type, key, location, numel) in zip files, plus a
 * view_metadata (None) in legacy ones. */
cairn_status cairn__pk_persistent(cairn__pickle *vm, uint32_t pid, size_t at, uint32_t *out,
                                  cairn_error *err)
{
    if (!vm->host->storage)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BINPERSID: this pickle may not "
                              "refer to storages");
    if (vm->nodes[pid].type != CAIRN__PK_TUPLE)
        return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BINPERSID: the id is %s, not a "
                              "tuple", cairn__pk_type_name(vm->nodes[pid].type));
    const cairn__pk_seq *p = cairn__pk_seq_of(vm, pid);
    if (p->count == 0 || vm->nodes[p->items[0]].type != CAIRN__PK_STR)
        return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BINPERSID: the id does not start "
                              "with a str");
    const cairn__pk_blob *tag = cairn__pk_blob_of(vm, p->items[0]);
    if (same((const char *)tag->p, tag->len, "module"))
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BINPERSID: a pickled module "
                              "class with its source code ('module' id) is not supported");
    if (!same((const char *)tag->p, tag->len, "storage"))
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BINPERSID: only 'storage' ids "
                              "are supported");
    if (p->count != 5 && p->count != 6)
        return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BINPERSID: a storage id of %u "
                              "fields (it has 5, or 6 in legacy files)", (unsigned)p->count);
    const cairn__pk_node *type = &vm->nodes[p->items[1]];
    if (type->type != CAIRN__PK_GLOBAL || type->u.g->kind != CAIRN__PG_STORAGE_TYPE)
        return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BINPERSID: the storage type is %s, "
                              "not a torch storage class", cairn__pk_type_name(type->type));
    if (!type->u.g->dtype)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BINPERSID: storage type "
                              "torch.%s (quantized) is not supported", type->u.g->name);
    CAIRN_TRY(pid_field(vm, p, 2, CAIRN__PK_STR, "key", at, err));
    CAIRN_TRY(pid_field(vm, p, 3, CAIRN__PK_STR, "location", at, err));
    CAIRN_TRY(pid_field(vm, p, 4, CAIRN__PK_INT, "element count", at, err));
    if (p->count == 6 && vm->nodes[p->items[5]].type != CAIRN__PK_NONE)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BINPERSID: storage views "
                              "(view_metadata) are not supported");
    int64_t numel = vm->nodes[p->items[4]].u.i;
    uint64_t nbytes;
    if (numel < 0 ||
        cairn__mul_overflow((uint64_t)numel, cairn_dtype_size(type->u.g->dtype), &nbytes))
        return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BINPERSID: storage element count "
                              "%" PRId64 " is negative or overflows", numel);
    const cairn__pk_blob *key = cairn__pk_blob_of(vm, p->items[2]);
    cairn__pk_storage s = {0, type->u.g->dtype, nbytes, 0};
    CAIRN_TRY(vm->host->storage(vm->host->ctx, (const char *)key->p, key->len, s.dtype,
                                (uint64_t)numel, nbytes, vm->base + at, &s.index, err));
    return cairn__pk_add_storage(vm, &s, (const char *)key->p, key->len, at, out, err);
}

/* ------------------------------------------------ joblib's array wrapper */

static cairn_status joblib_elements(cairn__pickle *vm, uint32_t state, size_t at,
                                    uint64_t *nbytes, cairn_error *err)
{
    uint32_t shape = cairn__pk_dict_get(vm, state, "shape"), dt = cairn__pk_dict_get(vm, state, "dtype");
    cairn__np_dtype np;
    if (shape == UINT32_MAX || vm->nodes[shape].type != CAIRN__PK_TUPLE || dt == UINT32_MAX)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BUILD of joblib.numpy_pickle."
                              "NumpyArrayWrapper: its state has no shape tuple or no dtype");
    char shown[64];
    const char *why = cairn__np_dtype_of(vm, dt, &np, shown, sizeof shown);
    if (why)
        return cairn__pk_fail(vm, err, at, CAIRN_E_UNSUPPORTED, "BUILD of joblib.numpy_pickle."
                              "NumpyArrayWrapper: an array of numpy dtype '%s' cairn cannot "
                              "read: %s", shown, why);
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, shape);
    uint64_t n = np.itemsize;
    for (uint32_t i = 0; i < q->count; i++) {
        const cairn__pk_node *d = &vm->nodes[q->items[i]];
        if (d->type != CAIRN__PK_INT || d->u.i < 0 ||
            (d->u.i > 0 && n > CAIRN__PICKLE_MAX_BYTES / (uint64_t)d->u.i))
            return cairn__pk_fail(vm, err, at, CAIRN_E_CORRUPT, "BUILD of joblib.numpy_pickle."
                                  "NumpyArrayWrapper: dimension %u of its shape is not a size "
                                  "below 64 MiB of bytes", (unsigned)i);
        n *= (uint64_t)d->u.i;
    }
    *nbytes = n;
    return CAIRN_OK;
}
