/* pickle_compact.c -- compact mode of the restricted pickle machine
 * (pickle.h, host->compact): a reader that only lists arrays need not keep
 * each NumPy array's object graph until the walk. Protocol 2 to 4 pickle an
 * array as _reconstruct(ndarray, (0,), b'b') plus a BUILD state (1, shape,
 * dtype, fortran, bytes): about ten objects, ~400 bytes in the machine.
 * Once an array is made, and what it is read from can no longer change,
 * its dict becomes one ARRAY node (a 24-byte record) and the rest goes.
 *
 * The walk must then name exactly what it would have named from the dict.
 * So a node is made compact only when cairn__np_array_of accepts it now and
 * nothing it was read from can change later: the container its parts are in
 * (args or state) is a tuple, or a list or dict that only this array holds
 * (and perhaps one memo entry: see ghosts below); the shape (a tuple of
 * ints) is copied; the dtype is kept and read again at the end (a later
 * BUILD may still set its state). The dict itself can no longer change: any
 * opcode that would add to it or build it again fails on an ARRAY node.
 * Wherever the walk would have looked inside the dict instead of listing it
 * (its path is not a tensor name), it fails too. Every such failure makes
 * the host run the pickle again without compact mode (pickle_read.c): a run
 * in compact mode either succeeds with what a plain run gives, or fails and
 * is not believed.
 *
 * Ghosts: without the look ahead (joblib pickles, pickle_scan.c) every memo
 * entry holds its object, and joblib memoizes each array's state dict and
 * shape: they would stay. What only one memo entry still holds after an
 * array is made compact is emptied to a GHOST (the entry keeps a 16-byte
 * node); a GET of it fails, and the pickle is run again as above. */
#include "container/pickle.h"

#include <stdlib.h>

/* The container a compact array's parts come from cannot change after
 * this: a tuple (immutable), or a list or dict only the array holds, or
 * the array and one memo entry that (no look ahead) will be emptied. */
static int settled(const cairn__pickle *vm, uint32_t carrier)
{
    const cairn__pk_node *n = &vm->nodes[carrier];
    if (n->type == CAIRN__PK_TUPLE)
        return 1;
    if (n->refs == 1)
        return 1;
    return !vm->scan.on && n->refs == 2 &&
           (n->flags & (CAIRN__PKF_MEMO | CAIRN__PKF_MEMOS)) == CAIRN__PKF_MEMO;
}

static cairn_status oom(const cairn__pickle *vm, size_t at, cairn_error *err)
{
    return cairn__pk_fail(vm, err, at, CAIRN_E_NOMEM, "out of memory for the object graph");
}

/* A record slot for a new ARRAY node: a freed one, or a new one. */
static cairn_status new_record(cairn__pickle *vm, size_t at, uint32_t *out, cairn_error *err)
{
    if (vm->free_array != UINT32_MAX) {
        *out = vm->free_array;
        vm->free_array = vm->arrays[*out].dtype;
        return CAIRN_OK;
    }
    if (vm->array_count == vm->array_cap) {
        uint32_t cap = vm->array_cap ? vm->array_cap * 2 : 64;
        cairn__pk_array_rec *a = cap > vm->array_cap
                                     ? realloc(vm->arrays, (size_t)cap * sizeof *a) : NULL;
        if (!a)
            return oom(vm, at, err);
        vm->arrays = a;
        vm->array_cap = cap;
    }
    *out = vm->array_count++;
    return CAIRN_OK;
}

/* A tuple shape's dims, copied to vm->dims: into the slot a freed array of
 * the same rank had, so that arrays made and freed over and over do not
 * grow it; 1 when there is room. */
static int copy_dims(cairn__pickle *vm, uint32_t shape, cairn__pk_array_rec *r)
{
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, shape);
    uint32_t rank = q->count; /* at most CAIRN_MAX_RANK: cairn__np_array_of said so */
    r->rank = (uint8_t)rank;
    if (rank == 0)
        return 1;
    if (vm->free_dims[rank] != UINT32_MAX) {
        r->dims = vm->free_dims[rank];
        vm->free_dims[rank] = (uint32_t)vm->dims[r->dims];
    } else {
        if (!cairn__pk_dims_room(vm, rank))
            return 0;
        r->dims = vm->dims_count;
        vm->dims_count += rank;
    }
    for (uint32_t i = 0; i < rank; i++)
        vm->dims[r->dims + i] = (uint64_t)vm->nodes[q->items[i]].u.i;
    return 1;
}

cairn_status cairn__pk_compact(cairn__pickle *vm, uint32_t node, size_t at, cairn_error *err)
{
    cairn__pk_node *n = &vm->nodes[node];
    if (!vm->host->compact || n->type != CAIRN__PK_DICT || !(n->flags & CAIRN__PKF_INERT))
        return CAIRN_OK;
    uint32_t carrier, shape, dt, bytes;
    int fortran;
    cairn__np_array a;
    char why[160];
    if (!cairn__np_array_parts(vm, node, &carrier, &shape, &dt, &bytes, &fortran) ||
        cairn__np_array_of(vm, node, &a, why, sizeof why) != 1 || !settled(vm, carrier))
        return CAIRN_OK; /* the walk reads it from the dict, as in a plain run */
    uint32_t index = 0;
    CAIRN_TRY(new_record(vm, at, &index, err));
    cairn__pk_array_rec *r = &vm->arrays[index];
    memset(r, 0, sizeof *r);
    r->dtype = dt;
    /* Elements in the pickle's bytes are kept as where they are (the node
     * may go); a string the graph made is kept by its node. */
    const cairn__pk_blob *b = cairn__pk_blob_of(vm, bytes);
    int in_pickle = !b->owned && b->p && (uintptr_t)b->p >= (uintptr_t)vm->pickle &&
                    (uintptr_t)b->p - (uintptr_t)vm->pickle <= vm->len;
    r->bytes = in_pickle ? UINT32_MAX : bytes;
    r->at = in_pickle ? (uint32_t)(b->p - vm->pickle) : 0; /* a pickle is at most 64 MiB */
    r->len = b->len;
    r->fortran = (uint8_t)(fortran != 0);
    r->scalar = shape == UINT32_MAX;
    if (!r->scalar && !copy_dims(vm, shape, r)) { /* a tuple: cairn__np_array_parts */
        r->dtype = vm->free_array;
        vm->free_array = index;
        return oom(vm, at, err);
    }
    cairn__pk_hold(vm, dt);
    if (r->bytes != UINT32_MAX)
        cairn__pk_hold(vm, bytes);
    /* The dict's items lose their holder; the node stays where it is held
     * (the stack, perhaps the memo and containers), as the ARRAY. */
    if (!cairn__pk_retype(vm, node, CAIRN__PK_ARRAY, index, !vm->scan.on)) {
        cairn__pk_drop(vm, dt); /* the dict still holds them: nothing is freed */
        if (r->bytes != UINT32_MAX)
            cairn__pk_drop(vm, bytes);
        r->dtype = vm->free_array;
        vm->free_array = index;
        return oom(vm, at, err);
    }
    return CAIRN_OK;
}
