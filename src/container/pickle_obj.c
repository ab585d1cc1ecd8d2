/* pickle_obj.c -- the restricted pickle machine's object graph: nodes,
 * containers and strings in flat arrays indexed by uint32, so the whole
 * graph is freed at once and no node owns another. */
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
    if (vm->node_count >= CAIRN__PICKLE_MAX_NODES)
        return cairn__pk_fail(vm, err, at, CAIRN_E_LIMIT, "more than %u objects in one pickle",
                              (unsigned)CAIRN__PICKLE_MAX_NODES);
    if (!grow((void **)&vm->nodes, &vm->node_cap, vm->node_count, sizeof *vm->nodes))
        return oom(vm, err, at);
    cairn__pk_node *n = &vm->nodes[vm->node_count];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->at = (uint32_t)at; /* pickles are at most 64 MiB */
    *out = vm->node_count++;
    return CAIRN_OK;
}

cairn_status cairn__pk_new_seq(cairn__pickle *vm, uint8_t type, size_t at, uint32_t *out,
                               cairn_error *err)
{
    if (!grow((void **)&vm->seqs, &vm->seq_cap, vm->seq_count, sizeof *vm->seqs))
        return oom(vm, err, at);
    CAIRN_TRY(cairn__pk_new(vm, type, at, out, err));
    cairn__pk_seq *s = &vm->seqs[vm->seq_count];
    memset(s, 0, sizeof *s);
    vm->nodes[*out].u.ref = vm->seq_count++;
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
    if (st == CAIRN_OK && !grow((void **)&vm->blobs, &vm->blob_cap, vm->blob_count, sizeof *vm->blobs))
        st = oom(vm, err, at);
    if (st == CAIRN_OK)
        st = cairn__pk_new(vm, type, at, out, err);
    if (st != CAIRN_OK) {
        if (owned)
            free((void *)p);
        return st;
    }
    cairn__pk_blob *b = &vm->blobs[vm->blob_count];
    b->p = p;
    b->len = len;
    b->owned = owned;
    vm->nodes[*out].u.ref = vm->blob_count++;
    return CAIRN_OK;
}

/* `n` (at most CAIRN__PK_POOL_SMALL) items from the pool, or NULL. */
static uint32_t *pool_cut(cairn__pickle *vm, uint32_t n)
{
    if (!vm->pool_count || vm->pool_used > CAIRN__PK_POOL_CHUNK - n) {
        if (!grow((void **)&vm->pool, &vm->pool_cap, vm->pool_count, sizeof *vm->pool))
            return NULL;
        uint32_t *chunk = malloc(CAIRN__PK_POOL_CHUNK * sizeof *chunk);
        if (!chunk)
            return NULL;
        vm->pool[vm->pool_count++] = chunk;
        vm->pool_used = 0;
    }
    uint32_t *p = vm->pool[vm->pool_count - 1] + vm->pool_used;
    vm->pool_used += n;
    return p;
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
        if (!(s->items = pool_cut(vm, want)))
            return oom(vm, err, vm->nodes[node].at);
        s->cap = want;
        s->pooled = 1;
    } else if (want > s->cap) {
        uint32_t cap = s->cap ? s->cap : 4;
        while (cap < want)
            cap = cap > UINT32_MAX / 2 ? want : cap * 2;
        uint32_t *p = s->pooled ? malloc((size_t)cap * sizeof *p)
                                : realloc(s->items, (size_t)cap * sizeof *p);
        if (!p)
            return oom(vm, err, vm->nodes[node].at);
        if (s->pooled && s->count) /* the pooled slot stays, unused, until the pool goes */
            memcpy(p, s->items, (size_t)s->count * sizeof *p);
        s->items = p;
        s->cap = cap;
        s->pooled = 0;
    }
    if (n)
        memcpy(s->items + s->count, items, (size_t)n * sizeof *items);
    s->count = want;
    return CAIRN_OK;
}

void cairn__pickle_init(cairn__pickle *vm, const cairn__pickle_host *host, const char *where,
                        uint64_t base)
{
    memset(vm, 0, sizeof *vm);
    vm->host = host;
    vm->where = where;
    vm->base = base;
}

void cairn__pickle_free(cairn__pickle *vm)
{
    if (!vm)
        return;
    for (uint32_t i = 0; i < vm->seq_count; i++)
        if (!vm->seqs[i].pooled)
            free(vm->seqs[i].items);
    for (uint32_t i = 0; i < vm->pool_count; i++)
        free(vm->pool[i]);
    free(vm->pool);
    for (uint32_t i = 0; i < vm->blob_count; i++)
        if (vm->blobs[i].owned)
            free((void *)vm->blobs[i].p);
    free(vm->nodes);
    free(vm->seqs);
    free(vm->blobs);
    free(vm->storages);
    free(vm->tensors);
    free(vm->dims);
    free(vm->stack);
    free(vm->memo);
    memset(vm, 0, sizeof *vm);
}

cairn_status cairn__pk_add_storage(cairn__pickle *vm, const cairn__pk_storage *s, size_t at,
                                   uint32_t *out, cairn_error *err)
{
    if (!grow((void **)&vm->storages, &vm->storage_cap, vm->storage_count, sizeof *vm->storages))
        return oom(vm, err, at);
    CAIRN_TRY(cairn__pk_new(vm, CAIRN__PK_STORAGE, at, out, err));
    vm->storages[vm->storage_count] = *s;
    vm->nodes[*out].u.ref = vm->storage_count++;
    return CAIRN_OK;
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
    while (vm->dims_cap - vm->dims_count < 2 * t->rank)
        if (!grow((void **)&vm->dims, &vm->dims_cap, vm->dims_cap, sizeof *vm->dims))
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
    for (uint32_t i = 0; i + 1 < q->count; i += 2)
        if (cairn__pk_is_str(vm, q->items[i], key))
            return q->items[i + 1];
    return UINT32_MAX;
}

int cairn__pk_is_str(const cairn__pickle *vm, uint32_t node, const char *lit)
{
    if (node == UINT32_MAX || vm->nodes[node].type != CAIRN__PK_STR)
        return 0;
    const cairn__pk_blob *b = cairn__pk_blob_of(vm, node);
    return b->len == strlen(lit) && memcmp(b->p, lit, b->len) == 0;
}
