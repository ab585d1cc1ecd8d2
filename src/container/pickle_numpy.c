/* pickle_numpy.c -- what a pickled numpy.dtype means, computed as NumPy
 * computes it (docs/FORMAT.md §18, "NumPy dtypes"). A dtype is pickled as
 * numpy.dtype(CODE, False, True) followed by BUILD with a state tuple
 * (version, byte order, subarray, names, fields, elsize, alignment, flags
 * [, metadata]). NumPy's __setstate__ takes the element size of the
 * flexible kinds (S, U, V) from the state, not from CODE's digits, and
 * whether the array holds Python objects from the state's flags: joblib
 * reads that many bytes per element, or a nested pickle for objects, so
 * anything cairn cannot size exactly as NumPy does is refused by name. */
#include "container/pickle.h"

#include <stdio.h>

/* Codes numpy.dtype.__reduce__ writes for the fixed-size kinds. */
static const struct {
    const char *code;
    uint64_t size;
    cairn_dtype dtype;
} fixed[] = {
    {"b1", 1, CAIRN_BOOL},          {"i1", 1, CAIRN_I8},   {"i2", 2, CAIRN_I16},
    {"i4", 4, CAIRN_I32},           {"i8", 8, CAIRN_I64},  {"u1", 1, CAIRN_U8},
    {"u2", 2, CAIRN_U16},           {"u4", 4, CAIRN_U32},  {"u8", 8, CAIRN_U64},
    {"f2", 2, CAIRN_F16},           {"f4", 4, CAIRN_F32},  {"f8", 8, CAIRN_F64},
    {"f16", 16, CAIRN_DTYPE_INVALID}, {"c8", 8, CAIRN_C64}, {"c16", 16, CAIRN_C128},
    {"c32", 32, CAIRN_DTYPE_INVALID}, {"M8", 8, CAIRN_DTYPE_INVALID},
    {"m8", 8, CAIRN_DTYPE_INVALID},
};

/* "U10" -> 10 in *n; "U" -> 0 with *n = 0 (an unsized flexible type). */
static int flexible_digits(const char *code, size_t len, uint64_t *n)
{
    *n = 0;
    if (len > 12)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (code[i] < '0' || code[i] > '9')
            return 0;
        *n = *n * 10 + (uint64_t)(code[i] - '0');
    }
    return 1;
}

const char *cairn__np_dtype_resolve(const cairn__np_dtype_args *a, cairn__np_dtype *out)
{
    memset(out, 0, sizeof *out);
    out->dtype = CAIRN_DTYPE_INVALID;
    if (a->code_len == 0 || a->code_len > 12)
        return "its code is not one numpy.dtype pickles";
    char kind = a->code[0];
    if (a->has_state) {
        if (!a->state_ok)
            return "its state is not the tuple NumPy pickles (version, byte order, subarray, "
                   "names, fields, element size, alignment, flags[, metadata])";
        if (a->endian != '<' && a->endian != '>' && a->endian != '|' && a->endian != '=')
            return "its byte order is not '<', '>', '|' or '='";
        if (a->flags & CAIRN__NP_ITEM_HASOBJECT)
            return "its flags say the elements are Python objects (joblib pickles such arrays "
                   "as objects, not bytes)";
        /* A record (fields, e.g. scikit-learn's tree nodes) is a V of the
         * state's element size, as NumPy's __setstate__ sets it: its bytes
         * stay in the tree. */
        if (a->structured && kind != 'V')
            return "it is a structured or subarray dtype that is not a void (V) type";
    }
    if (kind == 'O')
        return "an object array (its elements are Python objects, not bytes)";
    out->kind = kind;
    out->big_endian = a->has_state && a->endian == '>';
    if (kind == 'S' || kind == 'U' || kind == 'V') {
        uint64_t n;
        if (!flexible_digits(a->code, a->code_len, &n))
            return "its code is not one numpy.dtype pickles";
        /* NumPy's __setstate__ sets a flexible type's size from the state. */
        if (a->has_state && a->elsize < 0)
            return "its element size is negative";
        out->itemsize = a->has_state ? (uint64_t)a->elsize : kind == 'U' ? 4 * n : n;
        if (kind == 'U' && out->itemsize % 4)
            return "a unicode (U) element size that is not a multiple of 4 bytes";
        if (out->itemsize == 0)
            return "an element size of 0 (joblib itself cannot read such an array)";
        if (out->itemsize > CAIRN__PICKLE_MAX_BYTES)
            return "an element size above 64 MiB";
        return NULL;
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strlen(fixed[i].code) == a->code_len && !memcmp(fixed[i].code, a->code, a->code_len)) {
            out->itemsize = fixed[i].size;
            out->dtype = fixed[i].dtype;
            return NULL;
        }
    return "its code is not one numpy.dtype pickles";
}

/* Item i of a tuple node as an int, or 0 (*ok cleared) when it is not one. */
static int64_t tuple_int(const cairn__pickle *vm, const cairn__pk_seq *q, uint32_t i, int *ok)
{
    if (i >= q->count || vm->nodes[q->items[i]].type != CAIRN__PK_INT) {
        *ok = 0;
        return 0;
    }
    return vm->nodes[q->items[i]].u.i;
}

/* numpy.dtype('U10', False, True) + BUILD (3, '<', None, None, None, 40, 4, 8). */
const char *cairn__np_dtype_of(const cairn__pickle *vm, uint32_t dt, cairn__np_dtype *out,
                               char *shown, size_t shown_size)
{
    snprintf(shown, shown_size, "?");
    cairn__np_dtype_args a;
    memset(&a, 0, sizeof a);
    if (dt == UINT32_MAX || !cairn__pk_machine_made(vm, dt)) /* a plain dict is no dtype */
        return "it is not a numpy.dtype";
    uint32_t args = cairn__pk_dict_get(vm, dt, "args"), state = cairn__pk_dict_get(vm, dt, "state");
    if (!cairn__pk_is_str(vm, cairn__pk_dict_get(vm, dt, "$class"), "numpy.dtype") || args == UINT32_MAX ||
        vm->nodes[args].type != CAIRN__PK_TUPLE)
        return "it is not a numpy.dtype";
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, args);
    if (q->count == 0 || vm->nodes[q->items[0]].type != CAIRN__PK_STR)
        return "it is not a numpy.dtype";
    const cairn__pk_blob *code = cairn__pk_blob_of(vm, q->items[0]);
    a.code = (const char *)code->p;
    a.code_len = code->len;
    cairn__printable(a.code, a.code_len, shown, shown_size);
    a.has_state = state != UINT32_MAX;
    if (a.has_state && vm->nodes[state].type == CAIRN__PK_TUPLE) {
        const cairn__pk_seq *t = cairn__pk_seq_of(vm, state);
        int ok = t->count >= 7 && t->count <= 9;
        (void)tuple_int(vm, t, 0, &ok);
        const cairn__pk_blob *e = ok && vm->nodes[t->items[1]].type == CAIRN__PK_STR
                                      ? cairn__pk_blob_of(vm, t->items[1]) : NULL;
        ok = ok && e && e->len == 1;
        a.endian = ok ? (char)e->p[0] : 0;
        for (uint32_t i = 2; ok && i <= 4; i++)
            a.structured |= vm->nodes[t->items[i]].type != CAIRN__PK_NONE;
        a.elsize = tuple_int(vm, t, 5, &ok);
        (void)tuple_int(vm, t, 6, &ok);
        a.flags = t->count > 7 ? tuple_int(vm, t, 7, &ok) : 0;
        a.state_ok = ok;
    }
    return cairn__np_dtype_resolve(&a, out);
}


/* ------------------------------------------------------------- arrays */

/* cls reads "numpy.MODULE_TAIL.NAME" or (NumPy 2) "numpy._MODULE_TAIL.NAME". */
static int class_named(const cairn__pickle *vm, uint32_t cls, const char *module_tail,
                       const char *name)
{
    if (cls == UINT32_MAX || vm->nodes[cls].type != CAIRN__PK_STR)
        return 0;
    const cairn__pk_blob *b = cairn__pk_blob_of(vm, cls);
    const char *p = (const char *)b->p, *end = p + b->len;
    size_t tail = strlen(module_tail), nl = strlen(name);
    if (b->len < 6 || memcmp(p, "numpy.", 6) != 0)
        return 0;
    p += 6;
    if (p < end && *p == '_')
        p++;
    return (size_t)(end - p) == tail + 1 + nl && memcmp(p, module_tail, tail) == 0 &&
           p[tail] == '.' && memcmp(p + tail + 1, name, nl) == 0;
}

static int is_seq(const cairn__pickle *vm, uint32_t node)
{
    return node != UINT32_MAX &&
           (vm->nodes[node].type == CAIRN__PK_TUPLE || vm->nodes[node].type == CAIRN__PK_LIST);
}

/* A shape is a tuple: NumPy's ndarray.__setstate__ refuses anything else,
 * and a list (which a later APPEND could change) is not what NumPy read at
 * the call. */
static int is_tuple(const cairn__pickle *vm, uint32_t node)
{
    return node != UINT32_MAX && vm->nodes[node].type == CAIRN__PK_TUPLE;
}

static uint32_t item(const cairn__pickle *vm, uint32_t seq, uint32_t i)
{
    if (!is_seq(vm, seq) || i >= cairn__pk_seq_of(vm, seq)->count)
        return UINT32_MAX;
    return cairn__pk_seq_of(vm, seq)->items[i];
}

static uint32_t seq_count(const cairn__pickle *vm, uint32_t seq)
{
    return is_seq(vm, seq) ? cairn__pk_seq_of(vm, seq)->count : 0;
}

/* Where one of the four kinds of array node keeps its parts (docs/FORMAT.md
 * "Pickle and joblib as inert data"). */
int cairn__np_array_parts(const cairn__pickle *vm, uint32_t node, uint32_t *carrier,
                          uint32_t *shape, uint32_t *dtype, uint32_t *bytes, int *fortran)
{
    *carrier = *shape = *dtype = *bytes = UINT32_MAX;
    *fortran = 0;
    /* An item set on an ndarray either fails in NumPy (a str key) or
     * changes its elements (an int key): such a node is not read as the
     * array it was made as. */
    if (!cairn__pk_machine_made(vm, node))
        return 0;
    uint32_t cls = cairn__pk_dict_get(vm, node, "$class");
    uint32_t args = cairn__pk_dict_get(vm, node, "args");
    uint32_t st = cairn__pk_dict_get(vm, node, "state");
    *fortran = 0;
    *carrier = args;
    if (class_named(vm, cls, "core.multiarray", "scalar") && seq_count(vm, args) == 2) {
        *shape = UINT32_MAX;
        *dtype = item(vm, args, 0);
        *bytes = item(vm, args, 1);
        return 1;
    }
    if (class_named(vm, cls, "core.numeric", "_frombuffer") && seq_count(vm, args) == 4) {
        *bytes = item(vm, args, 0); /* protocol 5: (buffer, dtype, shape, order) */
        *dtype = item(vm, args, 1);
        *shape = item(vm, args, 2);
        *fortran = cairn__pk_is_str(vm, item(vm, args, 3), "F");
        return is_tuple(vm, *shape);
    }
    if (st == UINT32_MAX)
        return 0;
    *carrier = st;
    if (cairn__pk_is_str(vm, cls, "joblib.numpy_pickle.NumpyArrayWrapper")) {
        *shape = cairn__pk_dict_get(vm, st, "shape");
        *dtype = cairn__pk_dict_get(vm, st, "dtype");
        *bytes = cairn__pk_dict_get(vm, node, "data");
        *fortran = cairn__pk_is_str(vm, cairn__pk_dict_get(vm, st, "order"), "F");
        return is_tuple(vm, *shape) && *dtype != UINT32_MAX;
    }
    if (class_named(vm, cls, "core.multiarray", "_reconstruct") && seq_count(vm, st) == 5) {
        *shape = item(vm, st, 1);
        *dtype = item(vm, st, 2);
        *bytes = item(vm, st, 4);
        uint32_t f = item(vm, st, 3);
        *fortran = vm->nodes[f].type == CAIRN__PK_BOOL && vm->nodes[f].u.b;
        return is_tuple(vm, *shape);
    }
    return 0;
}

/* An array of `rank` dims (from `shape`, or `dims` when shape is
 * UINT32_MAX and the array is not a scalar), numpy.dtype node `dt`, its
 * elements data[0..len) (their BYTES node `owner`, or UINT32_MAX): as
 * cairn__np_array_of says. */
static int array_from(const cairn__pickle *vm, uint32_t shape, const uint64_t *dims,
                      uint32_t rank, uint32_t dt, const uint8_t *data, size_t len,
                      uint32_t owner, int fortran, cairn__np_array *out, char *why,
                      size_t why_size)
{
    memset(out, 0, sizeof *out);
    cairn__np_dtype np;
    char shown[64];
    if (shape != UINT32_MAX)
        rank = seq_count(vm, shape);
    if (cairn__np_dtype_of(vm, dt, &np, shown, sizeof shown) || !np.dtype ||
        rank > CAIRN_MAX_RANK)
        return 0; /* an array cairn has no dtype for stays bytes in the tree */
    uint64_t count = 1;
    for (uint32_t i = 0; i < rank; i++) {
        if (shape != UINT32_MAX) {
            const cairn__pk_node *d = &vm->nodes[item(vm, shape, i)];
            if (d->type != CAIRN__PK_INT || d->u.i < 0)
                return 0;
            out->dims[i] = (uint64_t)d->u.i;
        } else {
            out->dims[i] = dims[i];
        }
        if (cairn__mul_overflow(count, out->dims[i], &count)) {
            snprintf(why, why_size, "a NumPy array whose shape overflows");
            return -1;
        }
    }
    uint64_t need;
    if (cairn__mul_overflow(count, cairn_dtype_size(np.dtype), &need) || need != len) {
        snprintf(why, why_size, "a NumPy array whose shape and dtype say %llu elements, but "
                 "it holds %zu bytes", (unsigned long long)count, len);
        return -1;
    }
    out->dtype = np.dtype;
    out->big_endian = (uint8_t)np.big_endian;
    out->fortran = (uint8_t)(fortran && rank > 1);
    out->rank = rank;
    out->data = data;
    out->nbytes = len;
    out->owner = owner;
    return 1;
}

int cairn__np_array_of(const cairn__pickle *vm, uint32_t node, cairn__np_array *out,
                       char *why, size_t why_size)
{
    uint32_t carrier, shape, dt, bytes;
    int fortran;
    memset(out, 0, sizeof *out);
    if (vm->nodes[node].type != CAIRN__PK_DICT || !(vm->nodes[node].flags & CAIRN__PKF_INERT) ||
        !cairn__np_array_parts(vm, node, &carrier, &shape, &dt, &bytes, &fortran) ||
        bytes == UINT32_MAX || vm->nodes[bytes].type != CAIRN__PK_BYTES || dt == UINT32_MAX)
        return 0;
    const cairn__pk_blob *b = cairn__pk_blob_of(vm, bytes);
    return array_from(vm, shape, NULL, 0, dt, b->p, b->len, b->owned ? bytes : UINT32_MAX,
                      fortran, out, why, why_size);
}

int cairn__np_compact_of(const cairn__pickle *vm, uint32_t node, cairn__np_array *out,
                         char *why, size_t why_size)
{
    const cairn__pk_array_rec *r = &vm->arrays[vm->nodes[node].u.ref];
    const cairn__pk_blob *b = r->bytes != UINT32_MAX ? cairn__pk_blob_of(vm, r->bytes) : NULL;
    return array_from(vm, UINT32_MAX, r->rank ? vm->dims + r->dims : NULL, r->rank, r->dtype,
                      b ? b->p : vm->pickle + r->at, b ? b->len : r->len, r->bytes, r->fortran,
                      out, why, why_size);
}
