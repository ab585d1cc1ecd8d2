/* pickle_obj.c -- the restricted pickle machine's object graph: nodes,
 * containers and strings in flat arrays indexed by uint32. Each node counts
 * its holders (stack slots, memo entries, containers); one that loses the
 * last is freed at once and its slots are reused, so the arguments of a
 * call the machine has done do not stay until the end. The whole graph is
 * freed at once with the machine. */
#include "container/pickle.h"

#include <stdio.h>
#include <stdlib.h>

/* Makes room for one more element in an array of `size`-byte elements. */
static int grow(void **arr, uint32_t *cap, uint32_t count, size_t size)
{
    if (count < *cap)
        return 1;
    uint32_t want = *cap ? *cap * 2 : 64;
    if (want <= *cap || (size_t)want > SIZE_MAX / size)
        return 0;
    void *p = realloc(*arr, (size_t)want * size);
    if (!p)
        return 0;
    *arr = p;
    *cap = want;
    return 1;
}

const char *cairn__pk_type_name(uint8_t type)
{
    switch ((cairn__pk_type)type) {
    case CAIRN__PK_NONE: return "None";
    case CAIRN__PK_BOOL: return "a bool";
    case CAIRN__PK_INT: return "an int";
    case CAIRN__PK_FLOAT: return "a float";
    case CAIRN__PK_STR: return "a str";
    case CAIRN__PK_BYTES: return "bytes";
    case CAIRN__PK_TUPLE: return "a tuple";
    case CAIRN__PK_LIST: return "a list";
    case CAIRN__PK_DICT: return "a dict";
    case CAIRN__PK_SET: return "a set";
    case CAIRN__PK_FROZENSET: return "a frozenset";
    case CAIRN__PK_GLOBAL: return "a global";
    case CAIRN__PK_STORAGE: return "a storage";
    case CAIRN__PK_TENSOR: return "a tensor";
    case CAIRN__PK_ARRAY: return "a NumPy array";
    case CAIRN__PK_GHOST: return "an object no longer kept";
    }
    return "?";
}

static cairn_status oom(const cairn__pickle *vm, cairn_error *err, size_t at)
{
    return cairn__pk_fail(vm, err, at, CAIRN_E_NOMEM, "out of memory for the object graph");
}

cairn_status cairn__pk_new(cairn__pickle *vm, uint8_t type, size_t at, uint32_t *out,
                           cairn_error *err)
{
    if (vm->nodes_made >= CAIRN__PICKLE_MAX_NODES)
        return cairn__pk_fail(vm, err, at, CAIRN_E_LIMIT, "more than %u objects in one pickle",
                              (unsigned)CAIRN__PICKLE_MAX_NODES);
    uint32_t i = vm->free_node;
    if (i != UINT32_MAX) {
        vm->free_node = vm->nodes[i].u.ref;
    } else {
        if (!grow((void **)&vm->nodes, &vm->node_cap, vm->node_count, sizeof *vm->nodes))
            return oom(vm, err, at);
        i = vm->node_count++;
    }
    vm->nodes_made++;
    cairn__pk_node *n = &vm->nodes[i];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->at = (uint32_t)at; /* pickles are at most 64 MiB */
    *out = i;
    return CAIRN_OK;
}

cairn_status cairn__pk_new_seq(cairn__pickle *vm, uint8_t type, size_t at, uint32_t *out,
                               cairn_error *err)
{
    if (vm->free_seq == UINT32_MAX &&
        !grow((void **)&vm->seqs, &vm->seq_cap, vm->seq_count, sizeof *vm->seqs))
        return oom(vm, err, at);
    CAIRN_TRY(cairn__pk_new(vm, type, at, out, err));
    uint32_t i = vm->free_seq;
    if (i != UINT32_MAX)
        vm->free_seq = vm->seqs[i].count;
    else
        i = vm->seq_count++;
    memset(&vm->seqs[i], 0, sizeof vm->seqs[i]);
    vm->nodes[*out].u.ref = i;
    return CAIRN_OK;
}

/* Charges `n` items or bytes against the budget of what one pickle may make. */
static cairn_status charge(cairn__pickle *vm, uint64_t n, size_t at, cairn_error *err)
{
    uint64_t limit = CAIRN__PICKLE_BUDGET(vm->len, 2, 65536);
    if (n > limit || vm->made > limit - n)
        return cairn__pk_fail(vm, err, at, CAIRN_E_LIMIT, "the pickle's objects hold more than "
                              "%llu items and copied bytes (twice its size)",
                              (unsigned long long)limit);
    vm->made += n;
    return CAIRN_OK;
}

cairn_status cairn__pk_new_blob(cairn__pickle *vm, uint8_t type, const uint8_t *p, size_t len,
                                int owned, size_t at, uint32_t *out, cairn_error *err)
{
    cairn_status st = owned ? charge(vm, len, at, err) : CAIRN_OK;
    if (st == CAIRN_OK && len > UINT32_MAX) /* pickles are at most 64 MiB: never */
        st = cairn__pk_fail(vm, err, at, CAIRN_E_LIMIT, "a string of more than 4 GiB");
    if (st == CAIRN_OK && vm->free_blob == UINT32_MAX &&
        !grow((void **)&vm->blobs, &vm->blob_cap, vm->blob_count, sizeof *vm->blobs))
        st = oom(vm, err, at);
    if (st == CAIRN_OK)
        st = cairn__pk_new(vm, type, at, out, err);
    if (st != CAIRN_OK) {
        if (owned)
            free((void *)p);
        return st;
    }
    uint32_t i = vm->free_blob;
    if (i != UINT32_MAX)
        vm->free_blob = (uint32_t)vm->blobs[i].len;
    else
        i = vm->blob_count++;
    cairn__pk_blob *b = &vm->blobs[i];
    b->p = p;
    b->len = (uint32_t)len;
    b->owned = owned != 0;
    b->bytes = type == CAIRN__PK_BYTES;
    vm->nodes[*out].u.ref = i;
    return CAIRN_OK;
}

/* A slot of `n` (2 to CAIRN__PK_POOL_SMALL) items from the pool, or NULL.
 * Two at least: a freed slot holds the pointer to the next of its size. */
static uint32_t *pool_cut(cairn__pickle *vm, uint32_t n)
{
    uint32_t *p = vm->pool_free[n];
    if (p) { /* the slot holds the next free one's address */
        uint32_t *next;
        memcpy(&next, p, sizeof next);
        vm->pool_free[n] = next;
        return p;
    }
    if (!vm->pool_count || vm->pool_used > CAIRN__PK_POOL_CHUNK - n) {
        if (!grow((void **)&vm->pool, &vm->pool_cap, vm->pool_count, sizeof *vm->pool))
            return NULL;
        uint32_t *chunk = malloc(CAIRN__PK_POOL_CHUNK * sizeof *chunk);
        if (!chunk)
            return NULL;
        vm->pool[vm->pool_count++] = chunk;
        vm->pool_used = 0;
    }
    p = vm->pool[vm->pool_count - 1] + vm->pool_used;
    vm->pool_used += n;
    return p;
}

static void pool_give_back(cairn__pickle *vm, uint32_t *p, uint32_t n)
{
    uint32_t *next = vm->pool_free[n];
    memcpy(p, &next, sizeof next); /* two items at least: room for a pointer */
    vm->pool_free[n] = p;
}

/* Callers bound n by bytes of input consumed, so the total of all items
 * stays below the pickle's length. */
cairn_status cairn__pk_extend(cairn__pickle *vm, uint32_t node, const uint32_t *items, uint32_t n,
                              cairn_error *err)
{
    cairn__pk_seq *s = &vm->seqs[vm->nodes[node].u.ref];
    CAIRN_TRY(charge(vm, n, vm->nodes[node].at, err));
    if (n > UINT32_MAX - s->count)
        return cairn__pk_fail(vm, err, vm->nodes[node].at, CAIRN_E_LIMIT,
                              "container of more than 2^32 items");
    uint32_t want = s->count + n;
    if (want > s->cap && s->cap == 0 && want <= CAIRN__PK_POOL_SMALL) {
        uint32_t cut = want < 2 ? 2 : want;
        if (!(s->items = pool_cut(vm, cut)))
            return oom(vm, err, vm->nodes[node].at);
        s->cap = cut;
        s->pooled = 1;
    } else if (want > s->cap) {
        uint32_t cap = s->cap ? s->cap : 4;
        while (cap < want)
            cap = cap > UINT32_MAX / 2 ? want : cap * 2;
        uint32_t *p = s->pooled ? malloc((size_t)cap * sizeof *p)
                                : realloc(s->items, (size_t)cap * sizeof *p);
        if (!p)
            return oom(vm, err, vm->nodes[node].at);
        if (s->pooled) {
            memcpy(p, s->items, (size_t)s->count * sizeof *p);
            pool_give_back(vm, s->items, s->cap);
        }
        s->items = p;
        s->cap = cap;
        s->pooled = 0;
    }
    if (n)
        memcpy(s->items + s->count, items, (size_t)n * sizeof *items);
    s->count = want;
    for (uint32_t i = 0; i < n; i++)
        cairn__pk_hold(vm, items[i]);
    return CAIRN_OK;
}

void cairn__pk_hold(cairn__pickle *vm, uint32_t node)
{
    if (vm->nodes[node].refs != CAIRN__PK_PINNED)
        vm->nodes[node].refs++;
}

/* The items container or ARRAY node i holds wait in vm->work to be
 * dropped (room made by work_room); its string, items or record go to the
 * free lists. */
static void release_content(cairn__pickle *vm, uint32_t i)
{
    cairn__pk_node *n = &vm->nodes[i];
    if (n->type == CAIRN__PK_STR || n->type == CAIRN__PK_BYTES) {
        cairn__pk_blob *b = &vm->blobs[n->u.ref];
        if (b->owned)
            free((void *)b->p);
        b->p = NULL;
        b->owned = 0;
        b->len = vm->free_blob;
        vm->free_blob = n->u.ref;
    } else if (n->type >= CAIRN__PK_TUPLE && n->type <= CAIRN__PK_FROZENSET) {
        cairn__pk_seq *q = &vm->seqs[n->u.ref];
        for (uint32_t k = 0; k < q->count; k++)
            vm->work[vm->work_count++] = q->items[k];
        if (q->pooled)
            pool_give_back(vm, q->items, q->cap);
        else
            free(q->items);
        memset(q, 0, sizeof *q);
        q->count = vm->free_seq;
        vm->free_seq = n->u.ref;
    } else if (n->type == CAIRN__PK_ARRAY) {
        cairn__pk_array_rec *r = &vm->arrays[n->u.ref];
        vm->work[vm->work_count++] = r->dtype;
        if (r->bytes != UINT32_MAX)
            vm->work[vm->work_count++] = r->bytes;
        if (r->rank) { /* its dims slot serves the next array of that rank */
            vm->dims[r->dims] = vm->free_dims[r->rank];
            vm->free_dims[r->rank] = r->dims;
        }
        r->dtype = vm->free_array;
        vm->free_array = n->u.ref;
    }
}

/* Frees node i (no holder is left): its slot goes to the free list. */
static void free_node(cairn__pickle *vm, uint32_t i)
{
    release_content(vm, i);
    cairn__pk_node *n = &vm->nodes[i];
    n->type = CAIRN__PK_NONE;
    n->u.ref = vm->free_node;
    vm->free_node = i;
}

/* Room in vm->work for the items of container `node` on top of what waits. */
static int work_room(cairn__pickle *vm, uint32_t node)
{
    const cairn__pk_node *n = &vm->nodes[node];
    uint64_t need = vm->work_count;
    if (n->type >= CAIRN__PK_TUPLE && n->type <= CAIRN__PK_FROZENSET)
        need += vm->seqs[n->u.ref].count;
    else if (n->type == CAIRN__PK_ARRAY)
        need += 2;
    if (need <= vm->work_cap)
        return 1;
    uint64_t cap = vm->work_cap ? vm->work_cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX)
        return 0;
    uint32_t *w = realloc(vm->work, (size_t)cap * sizeof *w);
    if (!w)
        return 0;
    vm->work = w;
    vm->work_cap = (uint32_t)cap;
    return 1;
}

/* A node that lost a holder: freed when none is left; with `weak`, a
 * container is emptied to a GHOST when its one memo entry is all that is
 * left. (Strings and numbers are not: a pickler memoizes a str it will
 * read back for every dict that has it as a key, and they are small.) 0
 * when it stays as it is. */
static int release(cairn__pickle *vm, uint32_t i, int weak)
{
    cairn__pk_node *n = &vm->nodes[i];
    int ghost = weak && n->refs == 1 && (n->flags & (CAIRN__PKF_MEMO | CAIRN__PKF_MEMOS)) ==
                                           CAIRN__PKF_MEMO &&
                n->type >= CAIRN__PK_TUPLE && n->type <= CAIRN__PK_FROZENSET;
    if (n->refs && !ghost)
        return 0;
    if (!work_room(vm, i)) /* out of memory for the list: the node stays whole */
        return 0;
    if (n->refs == 0) {
        free_node(vm, i);
    } else {
        release_content(vm, i);
        n->type = CAIRN__PK_GHOST;
        n->u.ref = 0;
    }
    return 1;
}

/* Drops the holders waiting in vm->work above `base`. */
static void drain(cairn__pickle *vm, uint32_t base, int weak)
{
    while (vm->work_count > base) {
        uint32_t next = vm->work[--vm->work_count];
        cairn__pk_node *n = &vm->nodes[next];
        if (n->refs == CAIRN__PK_PINNED)
            continue;
        n->refs--;
        release(vm, next, weak);
    }
}

static void drop(cairn__pickle *vm, uint32_t node, int weak)
{
    if (vm->nodes[node].refs == CAIRN__PK_PINNED)
        return;
    vm->nodes[node].refs--;
    uint32_t base = vm->work_count; /* drops nest: a caller may be freeing too */
    if (release(vm, node, weak))
        drain(vm, base, weak);
}

int cairn__pk_retype(cairn__pickle *vm, uint32_t node, uint8_t type, uint32_t ref, int weak)
{
    uint32_t base = vm->work_count;
    if (!work_room(vm, node))
        return 0;
    release_content(vm, node);
    /* Its new self before what it held goes: a drop may reach it again. */
    vm->nodes[node].type = type;
    vm->nodes[node].u.ref = ref;
    drain(vm, base, weak);
    return 1;
}

void cairn__pk_drop(cairn__pickle *vm, uint32_t node)
{
    drop(vm, node, 0);
}

void cairn__pk_drop_weak(cairn__pickle *vm, uint32_t node)
{
    drop(vm, node, 1);
}

void cairn__pickle_init(cairn__pickle *vm, const cairn__pickle_host *host, const char *where,
                        uint64_t base)
{
    memset(vm, 0, sizeof *vm);
    vm->free_node = vm->free_seq = vm->free_blob = vm->free_array = UINT32_MAX;
    for (int r = 0; r <= CAIRN_MAX_RANK; r++)
        vm->free_dims[r] = UINT32_MAX;
    vm->host = host;
    vm->where = where;
    vm->base = base;
}

/* Blob i points into the pickle and goes into the next piece of the
 * arena: a string, or in inert mode not bytes (an array's elements stay
 * where they are, in the pickle the caller keeps). Freed blobs have no
 * bytes; owned ones and those of earlier pieces stay where they are. */
static int borrowed(const cairn__pickle *vm, uint32_t i)
{
    const cairn__pk_blob *b = &vm->blobs[i];
    return b->p && !b->owned && (!vm->host->inert || !b->bytes) && vm->p &&
           (uintptr_t)b->p >= (uintptr_t)vm->p && (uintptr_t)b->p - (uintptr_t)vm->p <= vm->len;
}

/* Copies the strings that point into the pickle out of it, into one new
 * piece: each string is copied once, however often this runs (a copy of
 * everything kept so far each time would hold two copies at the end). The
 * strings of blobs freed later stay in their piece until the graph goes. */
cairn_status cairn__pk_keep_strings(cairn__pickle *vm, cairn_error *err)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < vm->blob_count; i++)
        if (borrowed(vm, i))
            total += vm->blobs[i].len; /* below the pickle's size: each is a range of it */
    if (total == 0)
        return CAIRN_OK;
    if (!grow((void **)&vm->arenas, &vm->arena_cap, vm->arena_count, sizeof *vm->arenas))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the pickle's strings",
                           vm->where);
    uint8_t *arena = malloc((size_t)total);
    if (!arena)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the pickle's strings",
                           vm->where);
    vm->arenas[vm->arena_count++] = arena;
    size_t at = 0;
    for (uint32_t i = 0; i < vm->blob_count; i++) {
        cairn__pk_blob *b = &vm->blobs[i];
        if (!borrowed(vm, i))
            continue;
        memcpy(arena + at, b->p, b->len);
        b->p = arena + at;
        at += b->len;
    }
    return CAIRN_OK;
}

cairn_status cairn__pickle_detach(cairn__pickle *vm, cairn_error *err)
{
    CAIRN_TRY(cairn__pk_keep_strings(vm, err));
    /* The storage records served the run's checks: a tensor now names its
     * storage by the host's index. */
    for (uint32_t i = 0; i < vm->tensor_count; i++)
        vm->tensors[i].storage = vm->storages[vm->tensors[i].storage].index;
    free(vm->storages);
    free(vm->keys);
    vm->storages = NULL;
    vm->keys = NULL;
    vm->storage_count = vm->storage_cap = 0;
    vm->keys_len = vm->keys_cap = 0;
    vm->p = NULL;
    vm->len = vm->pos = 0;
    return CAIRN_OK;
}

/* Everything but the records the tensors and storages keep. */
static void free_graph(cairn__pickle *vm)
{
    for (uint32_t i = 0; i < vm->seq_count; i++)
        if (!vm->seqs[i].pooled)
            free(vm->seqs[i].items);
    for (uint32_t i = 0; i < vm->pool_count; i++)
        free(vm->pool[i]);
    free(vm->pool);
    for (uint32_t i = 0; i < vm->blob_count; i++)
        if (vm->blobs[i].owned)
            free((void *)vm->blobs[i].p);
    for (uint32_t i = 0; i < vm->arena_count; i++)
        free(vm->arenas[i]);
    free(vm->arenas);
    free(vm->nodes);
    free(vm->seqs);
    free(vm->blobs);
    free(vm->arrays);
    free(vm->stack);
    free(vm->memo);
    free(vm->work);
    cairn__pk_scan_free(&vm->scan);
    cairn__pk_bits_free(&vm->memo_set);
}

void cairn__pickle_shed(cairn__pickle *vm)
{
    free_graph(vm);
    cairn__pickle keep = *vm;
    cairn__pickle_init(vm, keep.host, keep.where, keep.base);
    vm->storages = keep.storages;
    vm->storage_count = keep.storage_count;
    vm->storage_cap = keep.storage_cap;
    vm->keys = keep.keys;
    vm->keys_len = keep.keys_len;
    vm->keys_cap = keep.keys_cap;
    vm->tensors = keep.tensors;
    vm->tensor_count = keep.tensor_count;
    vm->tensor_cap = keep.tensor_cap;
    vm->dims = keep.dims;
    vm->dims_count = keep.dims_count;
    vm->dims_cap = keep.dims_cap;
}

void cairn__pickle_free(cairn__pickle *vm)
{
    if (!vm)
        return;
    free_graph(vm);
    free(vm->storages);
    free(vm->keys);
    free(vm->tensors);
    free(vm->dims);
    memset(vm, 0, sizeof *vm);
}

cairn_status cairn__pk_add_storage(cairn__pickle *vm, const cairn__pk_storage *s,
                                   const char *key, size_t key_len, size_t at, uint32_t *out,
                                   cairn_error *err)
{
    char shown[CAIRN__PK_KEY_SHOWN];
    size_t n = strlen(cairn__printable(key, key_len, shown, sizeof shown)) + 1;
    if (!grow((void **)&vm->storages, &vm->storage_cap, vm->storage_count, sizeof *vm->storages))
        return oom(vm, err, at);
    if (vm->keys_cap - vm->keys_len < n) {
        size_t cap = vm->keys_cap ? vm->keys_cap * 2 : 1024;
        char *k = realloc(vm->keys, cap); /* keys_len < 64 x storages < 2^32 */
        if (!k)
            return oom(vm, err, at);
        vm->keys = k;
        vm->keys_cap = cap;
    }
    CAIRN_TRY(cairn__pk_new(vm, CAIRN__PK_STORAGE, at, out, err));
    memcpy(vm->keys + vm->keys_len, shown, n);
    vm->storages[vm->storage_count] = *s;
    vm->storages[vm->storage_count].key = (uint32_t)vm->keys_len;
    vm->keys_len += n;
    vm->nodes[*out].u.ref = vm->storage_count++;
    return CAIRN_OK;
}

int cairn__pk_dims_room(cairn__pickle *vm, uint32_t n)
{
    while (vm->dims_cap - vm->dims_count < n)
        if (!grow((void **)&vm->dims, &vm->dims_cap, vm->dims_cap, sizeof *vm->dims))
            return 0;
    return 1;
}

cairn_status cairn__pk_add_tensor(cairn__pickle *vm, const cairn__pk_tensor *t, size_t at,
                                  uint32_t *out, cairn_error *err)
{
    if (vm->tensor_count >= CAIRN__PICKLE_MAX_TENSORS)
        return cairn__pk_fail(vm, err, at, CAIRN_E_LIMIT, "more than %u tensors in one pickle",
                              (unsigned)CAIRN__PICKLE_MAX_TENSORS);
    if (!grow((void **)&vm->tensors, &vm->tensor_cap, vm->tensor_count, sizeof *vm->tensors))
        return oom(vm, err, at);
    /* at most 2 x CAIRN_MAX_RANK per tensor: below 2^25 for 2^20 tensors */
    if (!cairn__pk_dims_room(vm, 2 * t->rank))
        return oom(vm, err, at);
    CAIRN_TRY(cairn__pk_new(vm, CAIRN__PK_TENSOR, at, out, err));
    cairn__pk_tensor_rec *r = &vm->tensors[vm->tensor_count];
    r->offset = t->offset;
    r->storage = t->storage;
    r->dims = vm->dims_count;
    r->dtype = (uint8_t)t->dtype;
    r->rank = (uint8_t)t->rank;
    r->requires_grad = (uint8_t)(t->requires_grad != 0);
    if (t->rank) { /* a scalar has none (and dims may still be NULL) */
        memcpy(vm->dims + vm->dims_count, t->sizes, t->rank * sizeof *vm->dims);
        memcpy(vm->dims + vm->dims_count + t->rank, t->strides, t->rank * sizeof *vm->dims);
        vm->dims_count += 2 * t->rank;
    }
    vm->nodes[*out].u.ref = vm->tensor_count++;
    return CAIRN_OK;
}

void cairn__pk_tensor_get(const cairn__pickle *vm, uint32_t index, cairn__pk_tensor *out)
{
    const cairn__pk_tensor_rec *r = &vm->tensors[index];
    memset(out, 0, sizeof *out);
    out->storage = r->storage;
    out->dtype = (cairn_dtype)r->dtype;
    out->rank = r->rank;
    out->requires_grad = r->requires_grad;
    out->offset = r->offset;
    if (r->rank) {
        memcpy(out->sizes, vm->dims + r->dims, r->rank * sizeof *out->sizes);
        memcpy(out->strides, vm->dims + r->dims + r->rank, r->rank * sizeof *out->strides);
    }
}

uint32_t cairn__pk_dict_get(const cairn__pickle *vm, uint32_t dict, const char *key)
{
    if (dict == UINT32_MAX || vm->nodes[dict].type != CAIRN__PK_DICT)
        return UINT32_MAX;
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, dict);
    for (uint32_t i = q->count & ~1u; i >= 2; i -= 2)
        if (cairn__pk_is_str(vm, q->items[i - 2], key))
            return q->items[i - 1];
    return UINT32_MAX;
}

int cairn__pk_machine_made(const cairn__pickle *vm, uint32_t node)
{
    const cairn__pk_node *n = &vm->nodes[node];
    if (n->type != CAIRN__PK_DICT || !(n->flags & CAIRN__PKF_INERT))
        return 0;
    const cairn__pk_seq *q = cairn__pk_seq_of(vm, node);
    if (q->count > 2 * CAIRN__PK_INERT_KEYS) /* each machine key is there once at most */
        return 0;
    for (uint32_t i = 0; i < q->count; i += 2) {
        int known = 0;
        for (int k = 0; k < CAIRN__PK_INERT_KEYS; k++)
            known |= vm->inert_key[k] && q->items[i] == vm->inert_key[k] - 1;
        if (!known)
            return 0;
    }
    return 1;
}

int cairn__pk_is_str(const cairn__pickle *vm, uint32_t node, const char *lit)
{
    if (node == UINT32_MAX || vm->nodes[node].type != CAIRN__PK_STR)
        return 0;
    const cairn__pk_blob *b = cairn__pk_blob_of(vm, node);
    return b->len == strlen(lit) && memcmp(b->p, lit, b->len) == 0;
}
