/* pickle.c -- the restricted pickle machine's interpreter loop: decodes each
 * opcode of the supported set with bounds checks and refuses every other
 * opcode by name (pickle.h states the rules). */
#include "container/pickle.h"

#include <stdlib.h>

/* The pickle opcodes (Python's Lib/pickle.py), for decoding and for naming
 * refused ones. */
enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2',
    OP_FLOAT = 'F', OP_INT = 'I', OP_BININT = 'J', OP_BININT1 = 'K', OP_LONG = 'L',
    OP_BININT2 = 'M', OP_NONE = 'N', OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R',
    OP_STRING = 'S', OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_UNICODE = 'V',
    OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c', OP_DICT = 'd',
    OP_EMPTY_DICT = '}', OP_APPENDS = 'e', OP_GET = 'g', OP_BINGET = 'h', OP_INST = 'i',
    OP_LONG_BINGET = 'j', OP_LIST = 'l', OP_EMPTY_LIST = ']', OP_OBJ = 'o', OP_PUT = 'p',
    OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't',
    OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84,
    OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a, OP_LONG4 = 0x8b, OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91, OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94, OP_FRAME = 0x95, OP_BYTEARRAY8 = 0x96, OP_NEXT_BUFFER = 0x97,
    OP_READONLY_BUFFER = 0x98
};

#define HIGHEST_PROTOCOL 5

static const char *op_name(uint8_t op)
{
    switch (op) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_POP: return "POP";
    case OP_POP_MARK: return "POP_MARK";
    case OP_DUP: return "DUP";
    case OP_FLOAT: return "FLOAT";
    case OP_INT: return "INT";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_LONG: return "LONG";
    case OP_BININT2: return "BININT2";
    case OP_NONE: return "NONE";
    case OP_PERSID: return "PERSID";
    case OP_BINPERSID: return "BINPERSID";
    case OP_REDUCE: return "REDUCE";
    case OP_STRING: return "STRING";
    case OP_BINSTRING: return "BINSTRING";
    case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
    case OP_UNICODE: return "UNICODE";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_BUILD: return "BUILD";
    case OP_GLOBAL: return "GLOBAL";
    case OP_DICT: return "DICT";
    case OP_EMPTY_DICT: return "EMPTY_DICT";
    case OP_APPENDS: return "APPENDS";
    case OP_GET: return "GET";
    case OP_BINGET: return "BINGET";
    case OP_INST: return "INST";
    case OP_LONG_BINGET: return "LONG_BINGET";
    case OP_LIST: return "LIST";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_OBJ: return "OBJ";
    case OP_PUT: return "PUT";
    case OP_BINPUT: return "BINPUT";
    case OP_LONG_BINPUT: return "LONG_BINPUT";
    case OP_SETITEM: return "SETITEM";
    case OP_TUPLE: return "TUPLE";
    case OP_EMPTY_TUPLE: return "EMPTY_TUPLE";
    case OP_SETITEMS: return "SETITEMS";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_PROTO: return "PROTO";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_EXT1: return "EXT1";
    case OP_EXT2: return "EXT2";
    case OP_EXT4: return "EXT4";
    case OP_TUPLE1: return "TUPLE1";
    case OP_TUPLE2: return "TUPLE2";
    case OP_TUPLE3: return "TUPLE3";
    case OP_NEWTRUE: return "NEWTRUE";
    case OP_NEWFALSE: return "NEWFALSE";
    case OP_LONG1: return "LONG1";
    case OP_LONG4: return "LONG4";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_BINUNICODE8: return "BINUNICODE8";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_EMPTY_SET: return "EMPTY_SET";
    case OP_ADDITEMS: return "ADDITEMS";
    case OP_FROZENSET: return "FROZENSET";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_FRAME: return "FRAME";
    case OP_BYTEARRAY8: return "BYTEARRAY8";
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
    case OP_READONLY_BUFFER: return "READONLY_BUFFER";
    }
    return NULL;
}

/* The state of one opcode being executed. */
typedef struct op_ctx {
    cairn__pickle *vm;
    uint8_t op;
    size_t at; /* offset of the opcode byte */
    cairn_error *err;
} op_ctx;

/* ----------------------------------------------------------- argument bytes */

/* The next n argument bytes, or an error when the pickle ends first. */
static cairn_status take(op_ctx *c, uint64_t n, const uint8_t **out)
{
    *out = NULL; /* set on every path: callers' compilers cannot tell a failure is nonzero */
    cairn__pickle *vm = c->vm;
    if (n > vm->len - vm->pos)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "%s needs %llu argument bytes, "
                              "%zu remain in the pickle", op_name(c->op),
                              (unsigned long long)n, vm->len - vm->pos);
    *out = vm->p + vm->pos;
    vm->pos += (size_t)n;
    return CAIRN_OK;
}

static cairn_status take_uint(op_ctx *c, unsigned width, uint64_t *out)
{
    const uint8_t *b;
    CAIRN_TRY(take(c, width, &b));
    *out = width == 1 ? b[0] : width == 2 ? cairn__le16(b) : width == 4 ? cairn__le32(b)
                                                                       : cairn__le64(b);
    return CAIRN_OK;
}

/* ------------------------------------------------------------------ stack */

/* Values above the innermost MARK; the ones below belong to an outer level. */
static uint32_t floor_of(const cairn__pickle *vm)
{
    return vm->mark_count ? vm->marks[vm->mark_count - 1] : 0;
}

static cairn_status stack_push(op_ctx *c, uint32_t node)
{
    cairn__pickle *vm = c->vm;
    if (vm->stack_count >= CAIRN__PICKLE_MAX_STACK)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_LIMIT, "%s: more than %u values on the "
                              "pickle stack", op_name(c->op), (unsigned)CAIRN__PICKLE_MAX_STACK);
    if (vm->stack_count == vm->stack_cap) {
        uint32_t cap = vm->stack_cap ? vm->stack_cap * 2 : 256;
        uint32_t *s = realloc(vm->stack, (size_t)cap * sizeof *s);
        if (!s)
            return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory for the stack");
        vm->stack = s;
        vm->stack_cap = cap;
    }
    vm->stack[vm->stack_count++] = node;
    cairn__pk_hold(vm, node);
    return CAIRN_OK;
}

static cairn_status underflow(op_ctx *c)
{
    return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "%s: the pickle stack is empty "
                          "(above the innermost MARK)", op_name(c->op));
}

static cairn_status pop(op_ctx *c, uint32_t *node)
{
    cairn__pickle *vm = c->vm;
    *node = 0;
    if (vm->stack_count <= floor_of(vm))
        return underflow(c);
    *node = vm->stack[--vm->stack_count];
    return CAIRN_OK;
}

static cairn_status top(op_ctx *c, uint32_t *node)
{
    cairn__pickle *vm = c->vm;
    *node = 0;
    if (vm->stack_count <= floor_of(vm))
        return underflow(c);
    *node = vm->stack[vm->stack_count - 1];
    return CAIRN_OK;
}

/* Closes the innermost MARK: the values above it are stack[*start..+*n),
 * still in place until the caller drops them (cut). */
static cairn_status pop_mark(op_ctx *c, uint32_t *start, uint32_t *n)
{
    cairn__pickle *vm = c->vm;
    *start = *n = 0;
    if (!vm->mark_count)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "%s without a MARK",
                              op_name(c->op));
    *start = vm->marks[--vm->mark_count];
    *n = vm->stack_count - *start;
    return CAIRN_OK;
}

/* Takes the stack down to `start`: its slots no longer hold their values. */
static void cut(cairn__pickle *vm, uint32_t start)
{
    while (vm->stack_count > start)
        cairn__pk_drop(vm, vm->stack[--vm->stack_count]);
}

/* ------------------------------------------------------------- memo */

/* The memo slot of `index` (after the scan, only entries some GET reads
 * take one), or -1: the entry is counted (MEMOIZE) but holds nothing. */
static int64_t memo_slot(const cairn__pickle *vm, uint64_t index)
{
    return vm->scan.on ? cairn__pk_scan_slot(&vm->scan, index) : (int64_t)index;
}

static cairn_status memo_put(op_ctx *c, uint64_t index, uint32_t node)
{
    cairn__pickle *vm = c->vm;
    /* Picklers number memo entries 0, 1, 2, ..., one per put, and each put
     * costs at least a byte: an index past the pickle's size is hostile. */
    if (index >= vm->len)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_LIMIT, "%s: memo index %llu is beyond "
                              "the pickle's %zu bytes", op_name(c->op),
                              (unsigned long long)index, vm->len);
    if (vm->scan.on && !cairn__pk_bits_get(&vm->memo_set, index)) {
        if (!cairn__pk_bits_set(&vm->memo_set, index))
            return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory for the memo");
        vm->memo_used++;
    }
    int64_t slot = memo_slot(vm, index);
    if (slot < 0)
        return CAIRN_OK;
    uint64_t want = vm->scan.on ? vm->scan.count : vm->len;
    if ((uint64_t)slot >= vm->memo_cap) {
        uint64_t cap = vm->memo_cap ? vm->memo_cap : 256;
        while (cap <= (uint64_t)slot)
            cap *= 2;
        if (cap > want)
            cap = want;
        uint32_t *m = realloc(vm->memo, (size_t)cap * sizeof *m);
        if (!m)
            return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory for the memo");
        memset(m + vm->memo_cap, 0, (size_t)(cap - vm->memo_cap) * sizeof *m);
        vm->memo = m;
        vm->memo_cap = (uint32_t)cap;
    }
    uint32_t old = vm->memo[slot];
    if (!old && !vm->scan.on)
        vm->memo_used++;
    vm->memo[slot] = node + 1;
    cairn__pk_hold(vm, node);
    /* Whether exactly one memo entry holds a node (compact mode may empty
     * a node only that entry holds): once two did, never again. */
    cairn__pk_node *n = &vm->nodes[node];
    n->flags |= (n->flags & CAIRN__PKF_MEMO) ? CAIRN__PKF_MEMOS : CAIRN__PKF_MEMO;
    if (old) {
        vm->nodes[old - 1].flags &= (uint8_t)~CAIRN__PKF_MEMO;
        cairn__pk_drop(vm, old - 1);
    }
    return CAIRN_OK;
}

static cairn_status memo_get(op_ctx *c, uint64_t index)
{
    cairn__pickle *vm = c->vm;
    int64_t slot = memo_slot(vm, index);
    if (slot < 0 || (uint64_t)slot >= vm->memo_cap || !vm->memo[slot])
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "%s: memo index %llu was never "
                              "set", op_name(c->op), (unsigned long long)index);
    if (vm->nodes[vm->memo[slot] - 1].type == CAIRN__PK_GHOST) /* see pickle.h, compact */
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "%s: memo index %llu "
                              "holds an object compact mode no longer kept", op_name(c->op),
                              (unsigned long long)index);
    return stack_push(c, vm->memo[slot] - 1);
}

static cairn_status op_put(op_ctx *c, unsigned width)
{
    uint64_t index;
    uint32_t node;
    if (width)
        CAIRN_TRY(take_uint(c, width, &index));
    else
        index = c->vm->memo_used; /* MEMOIZE: the next index, as Python counts it */
    CAIRN_TRY(top(c, &node));
    return memo_put(c, index, node);
}

static cairn_status op_get(op_ctx *c, unsigned width)
{
    uint64_t index;
    CAIRN_TRY(take_uint(c, width, &index));
    return memo_get(c, index);
}

/* ---------------------------------------------------------------- scalars */

static cairn_status push_int(op_ctx *c, int64_t v)
{
    uint32_t node;
    CAIRN_TRY(cairn__pk_new(c->vm, CAIRN__PK_INT, c->at, &node, c->err));
    c->vm->nodes[node].u.i = v;
    return stack_push(c, node);
}

static cairn_status op_binint(op_ctx *c, unsigned width)
{
    uint64_t v;
    CAIRN_TRY(take_uint(c, width, &v));
    return push_int(c, width == 4 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v);
}

/* LONG1 / LONG4: little-endian two's complement of n bytes; at most 8. */
static cairn_status op_long(op_ctx *c, unsigned width)
{
    uint64_t n;
    const uint8_t *b;
    CAIRN_TRY(take_uint(c, width, &n));
    if (width == 4 && n > INT32_MAX)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "LONG4 with a negative "
                              "length");
    if (n > 8)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_LIMIT, "%s: an integer of %llu bytes "
                              "does not fit in 64 bits", op_name(c->op), (unsigned long long)n);
    CAIRN_TRY(take(c, n, &b));
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; i++)
        v |= (uint64_t)b[i] << (8 * i);
    if (n > 0 && n < 8 && (b[n - 1] & 0x80))
        v |= ~UINT64_C(0) << (8 * n); /* sign-extend */
    return push_int(c, (int64_t)v);
}

static cairn_status op_binfloat(op_ctx *c)
{
    const uint8_t *b;
    CAIRN_TRY(take(c, 8, &b));
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) /* big-endian, unlike everything else */
        bits = bits << 8 | b[i];
    uint32_t node;
    CAIRN_TRY(cairn__pk_new(c->vm, CAIRN__PK_FLOAT, c->at, &node, c->err));
    memcpy(&c->vm->nodes[node].u.d, &bits, sizeof bits);
    return stack_push(c, node);
}

static cairn_status push_simple(op_ctx *c, uint8_t type, int b)
{
    uint32_t node;
    CAIRN_TRY(cairn__pk_new(c->vm, type, c->at, &node, c->err));
    c->vm->nodes[node].u.b = b;
    return stack_push(c, node);
}

/* A length-prefixed string or bytes: `width` bytes of length, then the data. */
static cairn_status op_blob(op_ctx *c, unsigned width, uint8_t type, int signed_len)
{
    uint64_t n;
    const uint8_t *b;
    CAIRN_TRY(take_uint(c, width, &n));
    if (signed_len && n > INT32_MAX)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "%s with a negative length",
                              op_name(c->op));
    CAIRN_TRY(take(c, n, &b));
    uint32_t node;
    CAIRN_TRY(cairn__pk_new_blob(c->vm, type, b, (size_t)n, 0, c->at, &node, c->err));
    return stack_push(c, node);
}

/* ------------------------------------------------------------- containers */

static cairn_status op_empty(op_ctx *c, uint8_t type)
{
    uint32_t node;
    CAIRN_TRY(cairn__pk_new_seq(c->vm, type, c->at, &node, c->err));
    return stack_push(c, node);
}

/* TUPLE, FROZENSET: a new container of the values above the MARK. */
static cairn_status op_collect(op_ctx *c, uint8_t type)
{
    uint32_t start, n, node;
    CAIRN_TRY(pop_mark(c, &start, &n));
    CAIRN_TRY(cairn__pk_new_seq(c->vm, type, c->at, &node, c->err));
    if (n) /* the stack may not be allocated yet */
        CAIRN_TRY(cairn__pk_extend(c->vm, node, c->vm->stack + start, n, c->err));
    cut(c->vm, start);
    return stack_push(c, node);
}

static cairn_status op_tuple_n(op_ctx *c, uint32_t n)
{
    cairn__pickle *vm = c->vm;
    uint32_t node;
    if (vm->stack_count - floor_of(vm) < n)
        return underflow(c);
    CAIRN_TRY(cairn__pk_new_seq(vm, CAIRN__PK_TUPLE, c->at, &node, c->err));
    CAIRN_TRY(cairn__pk_extend(vm, node, vm->stack + vm->stack_count - n, n, c->err));
    cut(vm, vm->stack_count - n);
    return stack_push(c, node);
}

static cairn_status wrong_target(op_ctx *c, uint32_t target, const char *want)
{
    return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "%s on %s (made at offset %llu); "
                          "only %s may take it", op_name(c->op),
                          cairn__pk_type_name(c->vm->nodes[target].type),
                          (unsigned long long)(c->vm->base + c->vm->nodes[target].at), want);
}

/* APPEND(S), SETITEM(S), ADDITEMS: adds `n` values from the stack at
 * `start` to the container below them, which must be of type `want`. */
static cairn_status add_items(op_ctx *c, uint32_t start, uint32_t n, uint8_t want,
                              const char *want_name)
{
    cairn__pickle *vm = c->vm;
    uint32_t target, end = vm->stack_count;
    vm->stack_count = start; /* the values stay in place (and held) until cut */
    CAIRN_TRY(top(c, &target));
    if (vm->nodes[target].type != want)
        return wrong_target(c, target, want_name);
    if (want == CAIRN__PK_DICT && n % 2)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "SETITEMS with an odd number "
                              "(%u) of keys and values", (unsigned)n);
    CAIRN_TRY(cairn__pk_extend(vm, target, vm->stack + start, n, c->err));
    vm->stack_count = end;
    cut(vm, start);
    return CAIRN_OK;
}

static cairn_status op_append_one(op_ctx *c, uint32_t width, uint8_t want, const char *name)
{
    cairn__pickle *vm = c->vm;
    if (vm->stack_count - floor_of(vm) < width + 1)
        return underflow(c);
    return add_items(c, vm->stack_count - width, width, want, name);
}

static cairn_status op_append_many(op_ctx *c, uint8_t want, const char *name)
{
    uint32_t start, n;
    CAIRN_TRY(pop_mark(c, &start, &n));
    return add_items(c, start, n, want, name);
}

/* ----------------------------------------------------------------- globals */

/* GLOBAL's argument: "module\nname\n". */
static cairn_status take_line(op_ctx *c, const char **s, size_t *len)
{
    cairn__pickle *vm = c->vm;
    *s = NULL;
    *len = 0;
    size_t left = vm->len - vm->pos;
    size_t limit = left < CAIRN__PICKLE_MAX_GLOBAL + 1 ? left : CAIRN__PICKLE_MAX_GLOBAL + 1;
    const uint8_t *p = vm->p + vm->pos;
    const uint8_t *nl = memchr(p, '\n', limit);
    if (!nl)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "GLOBAL: no newline within %zu "
                              "bytes (module and name are at most %d bytes each)", limit,
                              CAIRN__PICKLE_MAX_GLOBAL);
    *s = (const char *)p;
    *len = (size_t)(nl - p);
    vm->pos += *len + 1;
    return CAIRN_OK;
}

/* Inert mode: the global's name as data, "module.name" (see pickle.h). */
static cairn_status push_class(op_ctx *c, const char *mod, size_t mod_len, const char *name,
                               size_t name_len)
{
    cairn__pickle *vm = c->vm;
    if (mod_len > CAIRN__PICKLE_MAX_GLOBAL || name_len > CAIRN__PICKLE_MAX_GLOBAL)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_LIMIT, "%s: a global's module or name "
                              "is longer than %d bytes", op_name(c->op), CAIRN__PICKLE_MAX_GLOBAL);
    char *text = malloc(mod_len + name_len + 2);
    if (!text)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_NOMEM, "out of memory");
    memcpy(text, mod, mod_len);
    text[mod_len] = '.';
    memcpy(text + mod_len + 1, name, name_len);
    uint32_t node;
    CAIRN_TRY(cairn__pk_new_blob(vm, CAIRN__PK_STR, (const uint8_t *)text, mod_len + name_len + 1,
                                 1, c->at, &node, c->err));
    vm->nodes[node].flags |= CAIRN__PKF_CLASS;
    return stack_push(c, node);
}

static cairn_status push_global(op_ctx *c, const char *mod, size_t mod_len, const char *name,
                                size_t name_len)
{
    cairn__pickle *vm = c->vm;
    const cairn__pk_global *g = NULL;
    if (mod_len <= CAIRN__PICKLE_MAX_GLOBAL && name_len <= CAIRN__PICKLE_MAX_GLOBAL)
        g = vm->host->resolve(vm->host->ctx, mod, mod_len, name, name_len);
    if (!g && vm->host->inert)
        return push_class(c, mod, mod_len, name, name_len);
    if (!g) {
        char m[80], n[80];
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "%s: global %s.%s is not "
                              "allowed (cairn rebuilds only tensors, storages and plain "
                              "containers; nothing in a pickle is ever run)", op_name(c->op),
                              cairn__printable(mod, mod_len, m, sizeof m),
                              cairn__printable(name, name_len, n, sizeof n));
    }
    uint32_t node;
    CAIRN_TRY(cairn__pk_new(vm, CAIRN__PK_GLOBAL, c->at, &node, c->err));
    vm->nodes[node].u.g = g;
    return stack_push(c, node);
}

static cairn_status op_global(op_ctx *c)
{
    const char *mod, *name;
    size_t mod_len, name_len;
    CAIRN_TRY(take_line(c, &mod, &mod_len));
    CAIRN_TRY(take_line(c, &name, &name_len));
    return push_global(c, mod, mod_len, name, name_len);
}

static cairn_status op_stack_global(op_ctx *c)
{
    cairn__pickle *vm = c->vm;
    uint32_t mod, name;
    CAIRN_TRY(pop(c, &name));
    CAIRN_TRY(pop(c, &mod));
    if (vm->nodes[mod].type != CAIRN__PK_STR || vm->nodes[name].type != CAIRN__PK_STR)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "STACK_GLOBAL wants a module "
                              "and a name as str, got %s and %s",
                              cairn__pk_type_name(vm->nodes[mod].type),
                              cairn__pk_type_name(vm->nodes[name].type));
    const cairn__pk_blob *m = cairn__pk_blob_of(vm, mod), *n = cairn__pk_blob_of(vm, name);
    CAIRN_TRY(push_global(c, (const char *)m->p, m->len, (const char *)n->p, n->len));
    cairn__pk_drop(vm, name);
    cairn__pk_drop(vm, mod);
    return CAIRN_OK;
}

/* ------------------------------------------------ REDUCE, BUILD, BINPERSID */

/* Pushes what a call made, then lets go of what it was made from (popped
 * off the stack: `b` may be UINT32_MAX). The result may be one of them, or
 * inside them: it is held by the stack first. */
static cairn_status push_result(op_ctx *c, uint32_t out, uint32_t a, uint32_t b)
{
    CAIRN_TRY(stack_push(c, out));
    cairn__pk_drop(c->vm, a);
    if (b != UINT32_MAX)
        cairn__pk_drop(c->vm, b);
    return CAIRN_OK;
}

static cairn_status op_reduce(op_ctx *c)
{
    uint32_t args, callable, out;
    CAIRN_TRY(pop(c, &args));
    CAIRN_TRY(pop(c, &callable));
    CAIRN_TRY(cairn__pk_reduce(c->vm, callable, args, c->at, &out, c->err));
    CAIRN_TRY(push_result(c, out, args, callable));
    return cairn__pk_compact(c->vm, out, c->at, c->err);
}

static cairn_status refuse(op_ctx *c);

static cairn_status op_newobj(op_ctx *c)
{
    if (!c->vm->host->inert)
        return refuse(c);
    uint32_t args, cls, out;
    CAIRN_TRY(pop(c, &args));
    CAIRN_TRY(pop(c, &cls));
    CAIRN_TRY(cairn__pk_newobj(c->vm, cls, args, c->at, &out, c->err));
    CAIRN_TRY(push_result(c, out, args, cls));
    return cairn__pk_compact(c->vm, out, c->at, c->err);
}

static cairn_status op_build(op_ctx *c)
{
    uint32_t state, target;
    CAIRN_TRY(pop(c, &state));
    CAIRN_TRY(top(c, &target));
    uint32_t result;
    CAIRN_TRY(cairn__pk_build(c->vm, target, state, c->at, &result, c->err));
    cairn__pk_drop(c->vm, state);
    if (result != target) { /* joblib: the array takes the wrapper's place */
        cairn__pickle *vm = c->vm;
        vm->stack[vm->stack_count - 1] = result;
        cairn__pk_hold(vm, result);
        if (vm->host->compact && !vm->scan.on)
            cairn__pk_drop_weak(vm, target); /* the memo's wrapper: never read back */
        else
            cairn__pk_drop(vm, target);
    }
    return cairn__pk_compact(c->vm, result, c->at, c->err);
}

static cairn_status op_persid(op_ctx *c)
{
    uint32_t pid, out;
    CAIRN_TRY(pop(c, &pid));
    CAIRN_TRY(cairn__pk_persistent(c->vm, pid, c->at, &out, c->err));
    return push_result(c, out, pid, UINT32_MAX);
}

/* ------------------------------------------------------------ framing */

static cairn_status op_proto(op_ctx *c)
{
    uint64_t v;
    CAIRN_TRY(take_uint(c, 1, &v));
    if (v > HIGHEST_PROTOCOL)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "PROTO: pickle protocol "
                              "%u (cairn reads 2 to %d)", (unsigned)v, HIGHEST_PROTOCOL);
    return CAIRN_OK;
}

/* FRAME only announces how many bytes follow; reading is contiguous anyway. */
static cairn_status op_frame(op_ctx *c)
{
    uint64_t n;
    CAIRN_TRY(take_uint(c, 8, &n));
    if (n > c->vm->len - c->vm->pos)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "FRAME of %llu bytes runs "
                              "past the end of the pickle (%zu bytes remain)",
                              (unsigned long long)n, c->vm->len - c->vm->pos);
    return CAIRN_OK;
}

static cairn_status op_mark(op_ctx *c)
{
    cairn__pickle *vm = c->vm;
    if (vm->mark_count >= CAIRN__PICKLE_MAX_MARKS)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_LIMIT, "MARK: more than %d open marks "
                              "(nesting too deep)", CAIRN__PICKLE_MAX_MARKS);
    vm->marks[vm->mark_count++] = vm->stack_count;
    return CAIRN_OK;
}

static cairn_status refuse(op_ctx *c)
{
    const char *name = op_name(c->op);
    if (!name)
        return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_CORRUPT, "unknown opcode 0x%02x",
                              c->op);
    return cairn__pk_fail(c->vm, c->err, c->at, CAIRN_E_UNSUPPORTED, "opcode %s (0x%02x) is not "
                          "allowed: cairn reads only the opcodes of plain data and tensors",
                          name, c->op);
}

/* One opcode. */
static cairn_status step(op_ctx *c)
{
    switch (c->op) {
    case OP_PROTO: return op_proto(c);
    case OP_FRAME: return op_frame(c);
    case OP_MARK: return op_mark(c);
    case OP_EMPTY_DICT: return op_empty(c, CAIRN__PK_DICT);
    case OP_EMPTY_LIST: return op_empty(c, CAIRN__PK_LIST);
    case OP_EMPTY_TUPLE: return op_empty(c, CAIRN__PK_TUPLE);
    case OP_EMPTY_SET: return op_empty(c, CAIRN__PK_SET);
    case OP_TUPLE: return op_collect(c, CAIRN__PK_TUPLE);
    case OP_FROZENSET: return op_collect(c, CAIRN__PK_FROZENSET);
    case OP_TUPLE1: return op_tuple_n(c, 1);
    case OP_TUPLE2: return op_tuple_n(c, 2);
    case OP_TUPLE3: return op_tuple_n(c, 3);
    case OP_APPEND: return op_append_one(c, 1, CAIRN__PK_LIST, "a list");
    case OP_APPENDS: return op_append_many(c, CAIRN__PK_LIST, "a list");
    case OP_SETITEM: return op_append_one(c, 2, CAIRN__PK_DICT, "a dict");
    case OP_SETITEMS: return op_append_many(c, CAIRN__PK_DICT, "a dict");
    case OP_ADDITEMS: return op_append_many(c, CAIRN__PK_SET, "a set");
    case OP_BINPUT: return op_put(c, 1);
    case OP_LONG_BINPUT: return op_put(c, 4);
    case OP_MEMOIZE: return op_put(c, 0);
    case OP_BINGET: return op_get(c, 1);
    case OP_LONG_BINGET: return op_get(c, 4);
    case OP_BININT: return op_binint(c, 4);
    case OP_BININT1: return op_binint(c, 1);
    case OP_BININT2: return op_binint(c, 2);
    case OP_LONG1: return op_long(c, 1);
    case OP_LONG4: return op_long(c, 4);
    case OP_BINFLOAT: return op_binfloat(c);
    case OP_SHORT_BINUNICODE: return op_blob(c, 1, CAIRN__PK_STR, 0);
    case OP_BINUNICODE: return op_blob(c, 4, CAIRN__PK_STR, 0);
    case OP_BINUNICODE8: return op_blob(c, 8, CAIRN__PK_STR, 0);
    case OP_SHORT_BINSTRING: return op_blob(c, 1, CAIRN__PK_STR, 0);
    case OP_BINSTRING: return op_blob(c, 4, CAIRN__PK_STR, 1);
    case OP_SHORT_BINBYTES: return op_blob(c, 1, CAIRN__PK_BYTES, 0);
    case OP_BINBYTES: return op_blob(c, 4, CAIRN__PK_BYTES, 0);
    case OP_BINBYTES8: return op_blob(c, 8, CAIRN__PK_BYTES, 0);
    case OP_NONE: return push_simple(c, CAIRN__PK_NONE, 0);
    case OP_NEWTRUE: return push_simple(c, CAIRN__PK_BOOL, 1);
    case OP_NEWFALSE: return push_simple(c, CAIRN__PK_BOOL, 0);
    case OP_GLOBAL: return op_global(c);
    case OP_STACK_GLOBAL: return op_stack_global(c);
    case OP_REDUCE: return op_reduce(c);
    case OP_BUILD: return op_build(c);
    case OP_NEWOBJ: return op_newobj(c);
    case OP_BYTEARRAY8: /* protocol 5 NumPy arrays: plain bytes, read only as inert data */
        return c->vm->host->inert ? op_blob(c, 8, CAIRN__PK_BYTES, 0) : refuse(c);
    case OP_BINPERSID: return op_persid(c);
    default: return refuse(c);
    }
}

static cairn_status stop(op_ctx *c)
{
    cairn__pickle *vm = c->vm;
    if (vm->mark_count || vm->stack_count != 1)
        return cairn__pk_fail(vm, c->err, c->at, CAIRN_E_CORRUPT, "STOP with %u values on the "
                              "stack and %u open marks (a pickle ends with exactly one value)",
                              (unsigned)vm->stack_count, (unsigned)vm->mark_count);
    vm->root = vm->stack[0];
    return CAIRN_OK;
}

cairn_status cairn__pickle_run(cairn__pickle *vm, const uint8_t *p, size_t len, size_t *used,
                               cairn_error *err)
{
    if (used)
        *used = 0;
    if (len > CAIRN__PICKLE_MAX_BYTES)
        len = CAIRN__PICKLE_MAX_BYTES; /* a longer pickle fails for want of STOP */
    vm->p = vm->pickle = p;
    vm->len = len;
    vm->pos = 0;
    if (cairn__pickle_scannable(vm->host, p, len)) { /* see pickle_scan.c */
        CAIRN_TRY(cairn__pickle_scan(&vm->scan, p, len, err));
        /* No object points into the pickle yet: the pages the scan read
         * may go, and come back a step at a time as the run reads them. */
        if (vm->host->consumed)
            vm->host->consumed(vm->host->ctx, len);
    }
    op_ctx c = {vm, 0, 0, err};
    size_t every = vm->host->consumed_step ? vm->host->consumed_step
                                           : CAIRN__PICKLE_CONSUMED_STEP;
    while (vm->pos < vm->len) {
        if (vm->host->consumed && vm->pos - vm->told >= every) {
            CAIRN_TRY(cairn__pk_keep_strings(vm, err));
            vm->host->consumed(vm->host->ctx, vm->pos);
            vm->told = vm->pos;
        }
        c.at = vm->pos;
        c.op = vm->p[vm->pos++];
        if (c.op == OP_STOP) {
            CAIRN_TRY(stop(&c));
            if (used)
                *used = vm->pos;
            return CAIRN_OK;
        }
        CAIRN_TRY(step(&c));
    }
    return cairn__pk_fail(vm, err, vm->len, len == CAIRN__PICKLE_MAX_BYTES ? CAIRN_E_LIMIT
                                                                          : CAIRN_E_CORRUPT,
                          "the pickle ends without STOP%s",
                          len == CAIRN__PICKLE_MAX_BYTES ? " within its 64 MiB limit" : "");
}
