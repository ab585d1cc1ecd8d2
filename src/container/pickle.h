/*
 * pickle.h -- a restricted pickle machine (docs/FORMAT.md, "PyTorch .pt
 * (read)"): reads the pickle opcodes of protocols 2 to 5 that PyTorch files
 * use into a small tagged object graph, and nothing else. There is no Python here, so nothing
 * in a pickle can run: a GLOBAL only names an entry of the caller's allow-list
 * table (any other name stops the load, naming it), and REDUCE, BUILD and
 * BINPERSID do what cairn's own code says each allowed global means.
 *
 * Bounds, all checked before anything is allocated from a number in the
 * input: the pickle is at most CAIRN__PICKLE_MAX_BYTES; every length is
 * checked against the bytes that remain; memo indexes are below the pickle's
 * size (each memo put costs a byte); the value stack, the marks and the node
 * count have fixed caps. The machine never recurses on its input. Nodes
 * count their holders and are freed when the last goes; a look ahead
 * (pickle_scan.c) tells which memo entries are ever read back, so the
 * arguments of a call that is done (a tensor's rebuild, a persistent id) do
 * not live on in the memo: a pickle of N tensors keeps N results, not N
 * argument trees. The graph
 * it builds may share nodes and even hold cycles (SETITEM of a memoized dict
 * into itself); cairn__pickle_flatten is the one walker, and it bounds its
 * depth, detects cycles and caps how far sharing may expand.
 *
 * Errors read "WHERE: offset N: what" (WHERE names the file and member),
 * naming the opcode or the global.
 */
#ifndef CAIRN_PICKLE_H
#define CAIRN_PICKLE_H

#include "common/internal.h"

#define CAIRN__PICKLE_MAX_BYTES (UINT64_C(64) << 20) /* one pickle */
#define CAIRN__PICKLE_MAX_NODES (UINT32_C(1) << 22)   /* objects made by one pickle */
#define CAIRN__PICKLE_MAX_STACK (UINT32_C(1) << 20)   /* values on the stack at once */
#define CAIRN__PICKLE_MAX_MARKS 1000                  /* open MARKs (nesting of the text) */
#define CAIRN__PICKLE_MAX_GLOBAL 1024                 /* bytes of a global's module or name */
#define CAIRN__PICKLE_MAX_TENSORS (UINT32_C(1) << 20) /* tensors rebuilt by one pickle */
/* Memo references make some opcodes cheap to repeat (BINGET a long str, then
 * REDUCE a copy of it), so what the machine makes is also bounded by the
 * pickle's size: container items and bytes the machine copies at most 2 x
 * its length + 64 KiB. (The walker's own budget is
 * CAIRN__PICKLE_TREE_BUDGET, below.) */
#define CAIRN__PICKLE_BUDGET(len, k, extra) ((uint64_t)(k) * (len) + (extra))

typedef enum cairn__pk_type {
    CAIRN__PK_NONE = 0,
    CAIRN__PK_BOOL,
    CAIRN__PK_INT,       /* int64: longer integers are refused */
    CAIRN__PK_FLOAT,
    CAIRN__PK_STR,       /* bytes as pickled (UTF-8 is checked where it matters) */
    CAIRN__PK_BYTES,
    CAIRN__PK_TUPLE,
    CAIRN__PK_LIST,
    CAIRN__PK_DICT,      /* pairs in insertion order; duplicates resolved by the walker */
    CAIRN__PK_SET,
    CAIRN__PK_FROZENSET,
    CAIRN__PK_GLOBAL,    /* an allowed global, as a value (a dtype, a storage type) */
    CAIRN__PK_STORAGE,   /* what a persistent id resolved to */
    CAIRN__PK_TENSOR,
    CAIRN__PK_ARRAY,     /* compact mode: an inert NumPy array kept as a record (u.ref into
                            cairn__pickle.arrays; pickle_compact.c) */
    CAIRN__PK_GHOST      /* compact mode: an object only one memo entry still held, emptied;
                            reaching it again ends the run (the host runs the pickle again
                            without compacting) */
} cairn__pk_type;

/* What an allowed global means; the machine gives each its behaviour. */
typedef enum cairn__pk_kind {
    CAIRN__PG_ORDERED_DICT = 1, /* collections.OrderedDict() */
    CAIRN__PG_SET,              /* builtins.set(iterable) */
    CAIRN__PG_FROZENSET,        /* builtins.frozenset(iterable) */
    CAIRN__PG_REBUILD_V1,       /* torch._utils._rebuild_tensor(storage, offset, size, stride) */
    CAIRN__PG_REBUILD_V2,       /* ..._v2(storage, offset, size, stride, grad, hooks[, meta]) */
    CAIRN__PG_REBUILD_V3,       /* ..._v3(storage, offset, size, stride, grad, hooks, dtype,
                                   [meta]) */
    CAIRN__PG_PARAMETER,        /* _rebuild_parameter(tensor, grad, hooks) */
    CAIRN__PG_PARAMETER_STATE,  /* _rebuild_parameter_with_state(tensor, grad, hooks, state) */
    CAIRN__PG_DEVICE,           /* torch.device(type[, index]) -> "type:index" */
    CAIRN__PG_SIZE,             /* torch.Size(tuple) -> tuple */
    CAIRN__PG_ENCODE,           /* _codecs.encode(str, "latin1") -> bytes (protocol 2 bytes) */
    CAIRN__PG_BYTES,            /* builtins.bytes() -> b"" (protocol 2's empty bytes) */
    CAIRN__PG_STORAGE_TYPE,     /* torch.FloatStorage ... (dtype), torch.UntypedStorage (U8) */
    CAIRN__PG_DTYPE             /* torch.float32 ... (dtype INVALID: one cairn has not) */
} cairn__pk_kind;

typedef struct cairn__pk_global {
    const char *module, *name;
    cairn__pk_kind kind;
    cairn_dtype dtype;
} cairn__pk_global;

/* Node flags. */
#define CAIRN__PKF_ORDERED 0x1u /* a dict made by OrderedDict() (BUILD may set its attributes) */
#define CAIRN__PKF_ONPATH 0x2u  /* the walker is inside this container (cycle check) */
#define CAIRN__PKF_CLASS 0x4u   /* inert mode: a STR naming a global nothing resolves */
#define CAIRN__PKF_INERT 0x8u   /* inert mode: a DICT standing for a made object */
#define CAIRN__PKF_MEMO 0x10u   /* one memo entry holds it (pickle.c) */
#define CAIRN__PKF_MEMOS 0x20u  /* more than one did at some time: never a ghost */

typedef struct cairn__pk_node {
    uint8_t type;  /* cairn__pk_type */
    uint8_t flags;
    uint16_t refs; /* holders: stack slots, memo entries, containers; CAIRN__PK_PINNED
                      (reached by counting up) is never counted down, so never freed */
    uint32_t at;   /* offset of the opcode that made it, for messages */
    union {
        int b;
        int64_t i;
        double d;
        uint32_t ref; /* STR, BYTES: blob; TUPLE..FROZENSET: seq; STORAGE; TENSOR */
        const cairn__pk_global *g;
    } u;
} cairn__pk_node;

typedef struct cairn__pk_seq {
    uint32_t *items; /* node indexes; a DICT holds key, value, key, value, ... */
    uint32_t count;
    uint32_t cap : 31;   /* items are bounded by CAIRN__PICKLE_BUDGET(len, 2, ...) < 2^31 */
    uint32_t pooled : 1; /* items are in the machine's pool (a small container's first
                            items), not their own allocation */
} cairn__pk_seq;

/* A container's first items, when few (a tuple of a tensor's rebuild call,
 * its shape, a persistent id), are cut from chunks of this many items
 * instead of an allocation each: a malloc of 4 to 20 bytes costs 32 to 48. */
#define CAIRN__PK_POOL_CHUNK 16384
#define CAIRN__PK_POOL_SMALL 16

typedef struct cairn__pk_blob { /* 16 bytes: a file may hold one per tensor */
    const uint8_t *p; /* into the pickle, or owned (made by _codecs.encode / torch.device) */
    uint32_t len;     /* at most the pickle's size, or the budget's 2 x that + 64 KiB */
    uint8_t owned;
    uint8_t bytes;    /* a BYTES node's (in inert mode, array elements: kept by detach) */
} cairn__pk_blob;

typedef struct cairn__pk_storage {
    uint32_t index;     /* the host's */
    cairn_dtype dtype;  /* the element type its storage class says (U8 when untyped) */
    uint64_t nbytes;    /* numel x element size, as the persistent id declares */
    uint32_t key;       /* its key as messages print it: into cairn__pickle.keys */
} cairn__pk_storage;

#define CAIRN__PK_KEY_SHOWN 64 /* bytes of a storage key as messages print it, with its NUL */

typedef struct cairn__pk_tensor {
    uint32_t storage;   /* into cairn__pickle.storages; after cairn__pickle_detach, the
                           host's index of it */
    cairn_dtype dtype;
    uint32_t rank;
    int requires_grad;
    uint64_t offset;    /* in elements */
    uint64_t sizes[CAIRN_MAX_RANK];
    uint64_t strides[CAIRN_MAX_RANK]; /* in elements, never negative */
} cairn__pk_tensor;

/* How the machine keeps a tensor: its sizes and strides in `dims`
 * (cairn__pk_tensor_get makes the full view). */
typedef struct cairn__pk_tensor_rec {
    uint64_t offset;
    uint32_t storage;
    uint32_t dims;      /* into cairn__pickle.dims: rank sizes, then rank strides */
    uint8_t dtype, rank, requires_grad;
} cairn__pk_tensor_rec;

/* A compact NumPy array (host->compact): what cairn__np_array_of reads of
 * it, kept so that the walk reads it the same way at the end. */
typedef struct cairn__pk_array_rec { /* 24 bytes: a file may hold one per array */
    uint32_t dtype;  /* the numpy.dtype node, held (resolved when walked: a later BUILD may
                        still set its state, and NumPy's array holds that same object) */
    uint32_t bytes;  /* the BYTES node of the elements when the graph made them (held), else
                        UINT32_MAX: they are the pickle's bytes [at, at + len) */
    uint32_t at, len;
    uint32_t dims;   /* `rank` dims at cairn__pickle.dims + dims (its shape tuple's) */
    uint8_t rank;
    uint8_t fortran; /* the order the array says, before its rank is known */
    uint8_t scalar;  /* a numpy scalar: no shape */
} cairn__pk_array_rec;

#define CAIRN__PK_PINNED UINT16_MAX
#define CAIRN__PK_INERT_KEYS 4 /* "$class", "args", "state", "data" (pickle_call.c) */
/* Entries of a joblib NumpyArrayWrapper's state dict (joblib writes 6): a
 * state is looked up several times per array, so its size is bounded. */
#define CAIRN__PK_WRAPPER_STATE_MAX 16

/* A bit set that grows as bits are set. */
typedef struct cairn__pk_bits {
    uint64_t *w;
    size_t words;
} cairn__pk_bits;

/* What cairn__pickle_scan found before a run: the memo entries a GET reads
 * back (`gotten`), and for each the slot it takes in the machine's memo
 * (its rank among them: rank[word] + the bits below it in the word). */
typedef struct cairn__pk_scan {
    int on;             /* 0: not scanned (a joblib pickle): every memo entry is kept */
    cairn__pk_bits gotten;
    uint32_t *rank;     /* per word of gotten: the set bits before it */
    uint32_t count;     /* memo entries read back */
} cairn__pk_scan;

/* What the machine asks of its host. */
typedef struct cairn__pickle_host {
    void *ctx;
    /* GLOBAL / STACK_GLOBAL: the allowed global of that name, or NULL to
     * refuse it. Names are as pickled (not NUL-terminated). In inert mode
     * (`inert` below) a refused name becomes data instead. */
    const cairn__pk_global *(*resolve)(void *ctx, const char *module, size_t module_len,
                                       const char *name, size_t name_len);
    /* BINPERSID ('storage', type, key, location, numel[, None]): the host finds
     * storage `key`, checks that it holds `nbytes` bytes (numel x the type's
     * element size, overflow-checked by the machine) and gives its index.
     * `at` is the opcode's offset. NULL: persistent ids are refused. */
    cairn_status (*storage)(void *ctx, const char *key, size_t key_len, cairn_dtype dtype,
                            uint64_t numel, uint64_t nbytes, uint64_t at, uint32_t *index,
                            cairn_error *err);
    /* Inert data mode (CAIRN_OPEN_INERT): a global `resolve` refuses becomes
     * a STR "module.name" flagged CAIRN__PKF_CLASS, and REDUCE / NEWOBJ /
     * BUILD on it make plain dict nodes {"$class", "args", "state"} --
     * nothing is ever called, the graph only records what the pickle said. */
    int inert;
    /* Optional: the run is past pickle byte `pos` (called every
     * `consumed_step` bytes, 0: CAIRN__PICKLE_CONSUMED_STEP) and no object
     * points before it any more -- strings were copied out, only inert
     * array elements stay -- so the host may drop the pages behind it
     * (cairn__source_forget). */
    void (*consumed)(void *ctx, size_t pos);
    size_t consumed_step;
    /* Inert mode, names only (a reader's open; pickle_compact.c): a NumPy
     * array whose parts can no longer change becomes an ARRAY record as soon
     * as it is made, and what only it held is freed -- or, with no look
     * ahead (joblib), emptied to a GHOST when only the memo still holds it.
     * A run that fails this way may fail where a plain run would not
     * (reaching a ghost, building on a compact array): the host then runs
     * the pickle again without it. A run that succeeds names the same
     * arrays, with the same checks, as a plain run would. */
    int compact;
} cairn__pickle_host;

#define CAIRN__PICKLE_CONSUMED_STEP ((size_t)2 << 20)

typedef struct cairn__pickle {
    const cairn__pickle_host *host;
    const char *where; /* "PATH: member 'NAME'", for messages */
    uint64_t base;     /* file offset of pickle byte 0 (0 inside a member) */
    const uint8_t *p;
    size_t len, pos;
    const uint8_t *pickle; /* p, kept after cairn__pickle_detach: compact arrays' bytes */
    cairn__pk_node *nodes;
    uint32_t node_count, node_cap;
    cairn__pk_seq *seqs;
    uint32_t seq_count, seq_cap;
    uint32_t **pool;    /* chunks of CAIRN__PK_POOL_CHUNK items; the last one is being cut */
    uint32_t pool_count, pool_cap, pool_used;
    cairn__pk_blob *blobs;
    uint32_t blob_count, blob_cap;
    cairn__pk_storage *storages;
    uint32_t storage_count, storage_cap;
    char *keys;         /* the storages' keys, printable, each NUL-terminated */
    size_t keys_len, keys_cap;
    cairn__pk_tensor_rec *tensors;
    uint32_t tensor_count, tensor_cap;
    cairn__pk_array_rec *arrays; /* compact mode's ARRAY nodes */
    uint32_t array_count, array_cap, free_array;
    uint32_t free_dims[CAIRN_MAX_RANK + 1]; /* by rank: dims slots freed ARRAY records had
                                               (chained through their first dim) */
    uint64_t *dims;     /* the tensors' sizes and strides, compact arrays' shapes */
    uint32_t dims_count, dims_cap;
    uint32_t *stack;
    uint32_t stack_count, stack_cap;
    uint32_t marks[CAIRN__PICKLE_MAX_MARKS]; /* stack heights at each MARK */
    uint32_t mark_count;
    uint32_t *memo;     /* node + 1, 0 = empty; by index, or by scan slot when scan.on */
    uint32_t memo_cap, memo_used;
    cairn__pk_scan scan;
    cairn__pk_bits memo_set; /* scan.on: the memo indexes put so far (MEMOIZE counts them) */
    /* Freed slots, reused before the arrays grow (a node no stack slot,
     * memo entry or container holds is freed: pickle_obj.c). Chains run through u.ref, count,
     * len, and the first pointer's bytes of a pooled slot; UINT32_MAX and
     * NULL end them. */
    uint32_t free_node, free_seq, free_blob;
    uint32_t *pool_free[CAIRN__PK_POOL_SMALL + 1]; /* by slot size */
    uint32_t *work;     /* nodes waiting to be freed */
    uint32_t work_count, work_cap;
    uint64_t nodes_made; /* every node made, reused slots too (CAIRN__PICKLE_MAX_NODES) */
    uint8_t **arenas;   /* the strings, once copied out: a piece per cairn__pk_keep_strings */
    uint32_t arena_count, arena_cap;
    size_t told;        /* the last pos host->consumed heard */
    uint32_t inert_key[CAIRN__PK_INERT_KEYS]; /* node + 1 of each key inert nodes hold */
    uint64_t made;      /* container items and copied bytes so far (the budget above) */
    uint32_t root;      /* the result, after a successful run */
} cairn__pickle;

/* The allow-list of PyTorch files (docs/FORMAT.md "PyTorch .pt (read)"). */
const cairn__pk_global *cairn__pickle_torch_global(void *ctx, const char *module,
                                                   size_t module_len, const char *name,
                                                   size_t name_len);

void cairn__pickle_init(cairn__pickle *vm, const cairn__pickle_host *host, const char *where,
                        uint64_t base);
/* Runs one pickle from p[0] to its STOP; *used (may be NULL) gets the bytes
 * it took. The result is vm->root. p must outlive the machine (strings point
 * into it). One run per machine. */
cairn_status cairn__pickle_run(cairn__pickle *vm, const uint8_t *p, size_t len, size_t *used,
                               cairn_error *err);
void cairn__pickle_free(cairn__pickle *vm);
/* After a successful run: copies the strings the graph still holds out of
 * the pickle (into one block), so the caller may free the pickle's bytes
 * before it walks the graph; the storage records go too (each tensor
 * keeps its storage's host index). In inert mode bytes stay where they are (an
 * array's elements): the pickle must stay, but its pages need not be
 * resident while the graph is walked. */
cairn_status cairn__pickle_detach(cairn__pickle *vm, cairn_error *err);
/* Copies the strings the graph holds (not inert array elements) into a new
 * block, so that nothing points into the pickle, or into the last block. */
cairn_status cairn__pk_keep_strings(cairn__pickle *vm, cairn_error *err);
/* After the walk: frees the graph, keeping only the tensor and storage
 * records (cairn__pk_tensor_get; vm->storages unless detached) until
 * cairn__pickle_free. */
void cairn__pickle_shed(cairn__pickle *vm);

/* ---------------------------------------------------- the graph (pickle_obj.c) */

/* A new node of `type` made by the opcode at `at`; its index in *out. */
cairn_status cairn__pk_new(cairn__pickle *vm, uint8_t type, size_t at, uint32_t *out,
                           cairn_error *err);
/* A new empty container (TUPLE, LIST, DICT, SET, FROZENSET). */
cairn_status cairn__pk_new_seq(cairn__pickle *vm, uint8_t type, size_t at, uint32_t *out,
                               cairn_error *err);
/* A new STR or BYTES node over p[0..len): borrowed, or taken over (`owned`). */
cairn_status cairn__pk_new_blob(cairn__pickle *vm, uint8_t type, const uint8_t *p, size_t len,
                                int owned, size_t at, uint32_t *out, cairn_error *err);
/* Appends items[0..n) to container `node`, which then holds each. */
cairn_status cairn__pk_extend(cairn__pickle *vm, uint32_t node, const uint32_t *items,
                              uint32_t n, cairn_error *err);
/* One more holder of `node` / one holder fewer: when the last goes, the
 * node is freed, and what it holds loses a holder in turn (no recursion).
 * Records a node stands for (storages, tensors) stay. */
void cairn__pk_hold(cairn__pickle *vm, uint32_t node);
void cairn__pk_drop(cairn__pickle *vm, uint32_t node);

/* Drops one holder as cairn__pk_drop does, but a node left with only its
 * one memo entry (CAIRN__PKF_MEMO) is emptied to a GHOST instead of kept,
 * and what it held loses a holder the same way (compact mode without a
 * look ahead: pickle_compact.c). */
void cairn__pk_drop_weak(cairn__pickle *vm, uint32_t node);

/* Container `node` becomes a node of `type` with u.ref `ref` (an ARRAY):
 * its items are freed and what they held loses a holder (weakly, as
 * cairn__pk_drop_weak, with `weak`). 0 (nothing done) when out of memory. */
int cairn__pk_retype(cairn__pickle *vm, uint32_t node, uint8_t type, uint32_t ref, int weak);

/* Compact mode: makes inert node `node` an ARRAY when it is a NumPy array
 * whose parts can no longer change (pickle_compact.c); else leaves it. */
cairn_status cairn__pk_compact(cairn__pickle *vm, uint32_t node, size_t at, cairn_error *err);

/* The look ahead of pickle_scan.c: the memo entries p[0..len) reads back. */
/* 1 when the look ahead may run on p[0..len): always, but in inert mode not
 * when the pickle may hold a joblib array (bytes outside any opcode). */
int cairn__pickle_scannable(const cairn__pickle_host *host, const uint8_t *p, size_t len);
cairn_status cairn__pickle_scan(cairn__pk_scan *s, const uint8_t *p, size_t len,
                                cairn_error *err);
/* The memo slot of index `index`, or -1 when no GET reads it. */
int64_t cairn__pk_scan_slot(const cairn__pk_scan *s, uint64_t index);
void cairn__pk_scan_free(cairn__pk_scan *s);
int cairn__pk_bits_set(cairn__pk_bits *b, uint64_t index);
int cairn__pk_bits_get(const cairn__pk_bits *b, uint64_t index);
void cairn__pk_bits_free(cairn__pk_bits *b);
/* A new STORAGE / TENSOR node holding a copy of *s / *t (a storage's key
 * kept as messages print it). */
cairn_status cairn__pk_add_storage(cairn__pickle *vm, const cairn__pk_storage *s,
                                   const char *key, size_t key_len, size_t at, uint32_t *out,
                                   cairn_error *err);
cairn_status cairn__pk_add_tensor(cairn__pickle *vm, const cairn__pk_tensor *t, size_t at,
                                  uint32_t *out, cairn_error *err);
/* Room in vm->dims for `n` more dims (tensors' sizes and strides,
 * compact arrays' shapes); 0 when out of memory. */
int cairn__pk_dims_room(cairn__pickle *vm, uint32_t n);
/* Tensor `index` (a TENSOR node's u.ref) as cairn__pk_add_tensor got it. */
void cairn__pk_tensor_get(const cairn__pickle *vm, uint32_t index, cairn__pk_tensor *out);

static inline cairn__pk_node *cairn__pk_at(const cairn__pickle *vm, uint32_t node)
{
    return &vm->nodes[node];
}
static inline const cairn__pk_seq *cairn__pk_seq_of(const cairn__pickle *vm, uint32_t node)
{
    return &vm->seqs[vm->nodes[node].u.ref];
}
static inline const cairn__pk_blob *cairn__pk_blob_of(const cairn__pickle *vm, uint32_t node)
{
    return &vm->blobs[vm->nodes[node].u.ref];
}
/* The value of str key `key` in dict `dict` (of its last pair with that
 * key, as a Python dict keeps the last SETITEM), or UINT32_MAX (not a
 * dict, or no such key). */
uint32_t cairn__pk_dict_get(const cairn__pickle *vm, uint32_t dict, const char *key);
/* 1 when `node` is an inert object (CAIRN__PKF_INERT) whose keys are all
 * ones the machine put there ("$class", "args", "state", "data":
 * pickle_call.c), none set by a SETITEM. At most 4 pairs are looked at. */
int cairn__pk_machine_made(const cairn__pickle *vm, uint32_t node);
/* 1 when `node` is a STR reading `lit` (node may be UINT32_MAX). */
int cairn__pk_is_str(const cairn__pickle *vm, uint32_t node, const char *lit);
/* "a tuple", "an int", ... for messages. */
const char *cairn__pk_type_name(uint8_t type);

/* cairn__pk_fail(vm, err, at, status, fmt, ...): fails with
 * "WHERE: offset N: ..." (N = vm->base + at). */
#define cairn__pk_fail(vm, err, at, st, ...) \
    cairn__fail_at((err), (st), (vm)->where, NULL, (vm)->base + (at), NULL, __VA_ARGS__)

/* -------------------------------- what allowed globals do (pickle_call.c) */

/* REDUCE: `callable(*args)` for an allowed callable; the result in *out. */
cairn_status cairn__pk_reduce(cairn__pickle *vm, uint32_t callable, uint32_t args, size_t at,
                              uint32_t *out, cairn_error *err);
/* BUILD: sets `state` on `target` (docs/FORMAT.md, "PyTorch .pt (read)", says
 * what is allowed). *result is what takes target's place on the stack:
 * target, or (a joblib NumpyArrayWrapper, inert mode) the new array node,
 * holding nothing yet. */
cairn_status cairn__pk_build(cairn__pickle *vm, uint32_t target, uint32_t state, size_t at,
                             uint32_t *result, cairn_error *err);
/* Inert mode: NEWOBJ `cls(*args)` recorded as a node (refused otherwise). */
cairn_status cairn__pk_newobj(cairn__pickle *vm, uint32_t cls, uint32_t args, size_t at,
                              uint32_t *out, cairn_error *err);
/* BINPERSID: resolves a persistent id through the host. */
cairn_status cairn__pk_persistent(cairn__pickle *vm, uint32_t pid, size_t at, uint32_t *out,
                                  cairn_error *err);

/* ------------------------------------------- NumPy dtypes (pickle_numpy.c) */

#define CAIRN__NP_ITEM_HASOBJECT 0x01 /* NumPy's NPY_ITEM_REFCOUNT in a dtype's flags */

/* What a pickled numpy.dtype(CODE, False, True) [+ BUILD state] says, as
 * its caller found it in the graph or the tree. */
typedef struct cairn__np_dtype_args {
    const char *code;   /* CODE, e.g. "f8", "U10", "S5", "b1" */
    size_t code_len;
    int has_state;      /* a BUILD state was set */
    int state_ok;       /* ... and it is a tuple of 7 to 9 fields: int version, str byte
                           order, ..., int elsize, int alignment[, int flags[, metadata]] */
    char endian;        /* state[1]: '<', '>', '|', '=' (anything else is refused) */
    int structured;     /* state[2], [3] or [4] (subarray, names, fields) is not None */
    int64_t elsize;     /* state[5] */
    int64_t flags;      /* state[7], 0 when absent */
} cairn__np_dtype_args;

typedef struct cairn__np_dtype {
    char kind;          /* the code's letter: b i u f c M m S U V */
    uint64_t itemsize;  /* bytes per element, exactly as NumPy computes it */
    int big_endian;     /* byte order '>' */
    cairn_dtype dtype;  /* cairn's, or CAIRN_DTYPE_INVALID (strings, datetimes, f16...) */
} cairn__np_dtype;

/* NULL with *out filled, or why NumPy's reading of the dtype is one cairn
 * refuses (object arrays, structured dtypes, sizes NumPy leaves odd). */
const char *cairn__np_dtype_resolve(const cairn__np_dtype_args *a, cairn__np_dtype *out);

/* The same for an inert numpy.dtype node of the graph: `shown` gets its
 * CODE, printable, for messages. */
const char *cairn__np_dtype_of(const cairn__pickle *vm, uint32_t dt, cairn__np_dtype *out,
                               char *shown, size_t shown_size);

/* A NumPy array the inert graph holds (docs/FORMAT.md, "Pickle and joblib
 * as inert data"): a joblib NumpyArrayWrapper, a _reconstruct + BUILD, a
 * protocol 5 _frombuffer or a numpy scalar, of a dtype cairn has. */
typedef struct cairn__np_array {
    cairn_dtype dtype;
    uint8_t big_endian, fortran;
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    const uint8_t *data; /* its elements: count x dtype size of them */
    uint64_t nbytes;
    uint32_t owner;     /* the BYTES node whose blob owns `data` (made by the graph, e.g.
                           protocol 2's _codecs.encode), or UINT32_MAX: data is the pickle's */
} cairn__np_array;

/* Where inert node `node` keeps an array's parts: `carrier` is the
 * container they are read from (its args or its state); *shape is
 * UINT32_MAX for a scalar. 0 when it is none of the four kinds. */
int cairn__np_array_parts(const cairn__pickle *vm, uint32_t node, uint32_t *carrier,
                          uint32_t *shape, uint32_t *dtype, uint32_t *bytes, int *fortran);

/* 1 with *out filled when inert node `node` is such an array; 0 when it is
 * not one, or one cairn has no dtype or rank for (it stays a value of the
 * tree); -1 when its shape and its bytes disagree (`why` says how). */
int cairn__np_array_of(const cairn__pickle *vm, uint32_t node, cairn__np_array *out,
                       char *why, size_t why_size);
/* The same for an ARRAY node (compact mode), read now as the dict it was
 * made from would be. */
int cairn__np_compact_of(const cairn__pickle *vm, uint32_t node, cairn__np_array *out,
                         char *why, size_t why_size);

/* ---------------------------------------------- the walker (pickle_flat.c) */

typedef struct cairn__pk_named {
    char *name;      /* NUL-terminated, a valid tensor name */
    size_t len;
    uint32_t tensor; /* into cairn__pickle.tensors */
    uint32_t at;     /* offset of the opcode that made it, for messages */
} cairn__pk_named;

/* An inert NumPy array the walk named (its bytes, moved out of the graph). */
typedef struct cairn__pk_array { /* 48 bytes: a file may hold one per array */
    char *name;              /* NUL-terminated, a valid tensor name */
    const uint8_t *bytes;    /* into the pickle, or `owned` */
    uint8_t *owned;          /* taken from the graph (protocol 2's _codecs.encode) */
    uint64_t nbytes;
    uint32_t len;            /* of the name */
    uint32_t dims;           /* into cairn__pk_flat.dims: rank of them */
    uint8_t dtype;           /* a cairn_dtype */
    uint8_t rank, big_endian, fortran;
} cairn__pk_array;

typedef struct cairn__pk_flat {
    cairn__pk_named *tensors; /* in the order the walk met them */
    size_t count, cap;
    cairn__pk_array *arrays;  /* inert mode: NumPy arrays, in the order the walk met them;
                                 the tree holds a tensor reference for each */
    size_t array_count, array_cap;
    uint64_t *dims;           /* the arrays' dims */
    size_t dims_count, dims_cap;
    size_t *by_name;          /* indexes into tensors, sorted by name (bytes, shorter first) */
    cairn_value *tree;        /* a map, with tensor references */
    uint64_t refs_left;       /* cairn__pickle_flatten_names: top-level entries left out */
} cairn__pk_flat;

/* What the tree made from one pickle may take (bytes of nodes, packed
 * items, names, keys and strings, every shared reference charged in full):
 * 16 x the bytes the file holds for that pickle (as stored: a deflated
 * member's or a compressed joblib file's compressed size) + 16 MiB. */
#define CAIRN__PICKLE_TREE_BUDGET(stored) (16 * (uint64_t)(stored) + (UINT64_C(16) << 20))

/* Names every tensor by its path (dict keys and sequence indexes joined with
 * '.'; a tensor at the top is "tensor") and turns the object into the
 * metadata tree (a top-level dict is the root map; anything else sits under
 * the key "object"). Refuses what cannot be named or is out of bounds:
 * keys other than str and int, empty keys, two keys of one name, duplicate
 * tensor names, invalid UTF-8, reference cycles, depth beyond
 * CAIRN_META_MAX_DEPTH and sharing that expands past
 * CAIRN__PICKLE_TREE_BUDGET(stored). In inert mode a NumPy array
 * (cairn__np_array_of) becomes an entry of `arrays` and a tensor reference
 * in the tree: its dtype and shape are not copied into the tree (a dtype
 * shared by every array of a dict costs nothing per array); one named "array"
 * at the top sits under "object". An array whose path cannot be a tensor
 * name stays a value of the tree. */
cairn_status cairn__pickle_flatten(cairn__pickle *vm, uint64_t stored, cairn__pk_flat *out,
                                   cairn_error *err);
/* The same walk, with the same checks and charges, but a dict entry that
 * is a tensor reference is left out of the tree: a reader that lists
 * tensors does not keep a second copy of every name; it walks again with
 * cairn__pickle_flatten when asked for the metadata. The graph is freed
 * (cairn__pickle_shed) once the walk is over: only the tensor and storage
 * records stay. */
/* `sink` (may be NULL): in inert mode each NumPy array the walk names goes
 * to it at once instead of into out->arrays (`name` is valid during the
 * call only; a sink that returns CAIRN_OK takes `owned`, if any): a
 * reader's table holds them, not a second list. */
typedef cairn_status (*cairn__pk_array_sink)(void *ctx, const cairn__pk_array *a,
                                             const uint64_t *dims, cairn_error *err);
cairn_status cairn__pickle_flatten_names(cairn__pickle *vm, uint64_t stored,
                                         cairn__pk_array_sink sink, void *sink_ctx,
                                         cairn__pk_flat *out, cairn_error *err);
/* 1 when the full walk's tree is not empty (what file_info's has_metadata says). */
int cairn__pk_flat_has_tree(const cairn__pk_flat *flat);
void cairn__pk_flat_free(cairn__pk_flat *flat);

#endif /* CAIRN_PICKLE_H */
