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
    if (want > s->cap) {
        uint32_t cap = s->cap ? s->cap : 4;
        while (cap < want)
            cap = cap > UINT32_MAX / 2 ? want : cap * 2;
        uint32_t *p = realloc(s->items, (size_t)cap * sizeof *p);
        if (!p)
            return oom(vm, err, vm->nodes[node].at);
        s->items = p;
        s->cap = cap;
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
        free(vm->seqs[i].items);
    for (uint32_t i = 0; i < vm->blob_count; i++)
        if (vm->blobs[i].owned)
            free((void *)vm->blobs[i].p);
    free(vm->nodes);
    free(vm->seqs);
    free(vm->blobs);
    free(vm->storages);
    free(vm->tensors);
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
    CAIRN_TRY(cairn__pk_new(vm, CAIRN__PK_TENSOR, at, out, err));
    vm->tensors[vm->tensor_count] = *t;
    vm->nodes[*out].u.ref = vm->tensor_count++;
    return CAIRN_OK;
}
