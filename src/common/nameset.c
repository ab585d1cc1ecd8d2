/* nameset.c -- the name hash set of nameset.h (linear probing, XXH3 hashes). */
#include "common/nameset.h"

#include <stdlib.h>
#include <xxhash.h>

static size_t slot_of(const char *name, size_t len, size_t cap)
{
    return (size_t)XXH3_64bits(name, len) & (cap - 1);
}

int64_t cairn__nameset_find(const cairn__nameset *s, const char *name, size_t len,
                            cairn__name_fn name_at, const void *ctx)
{
    if (!s->cap)
        return -1;
    for (size_t i = slot_of(name, len, s->cap);; i = (i + 1) & (s->cap - 1)) {
        uint32_t v = s->slots[i];
        if (!v)
            return -1;
        size_t n;
        const char *other = name_at(ctx, v - 1, &n);
        if (n == len && memcmp(other, name, len) == 0)
            return v - 1;
    }
}

static void place(uint32_t *slots, size_t cap, uint32_t index, cairn__name_fn name_at,
                  const void *ctx)
{
    size_t len;
    const char *name = name_at(ctx, index, &len);
    size_t i = slot_of(name, len, cap);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = index + 1;
}

cairn_status cairn__nameset_insert(cairn__nameset *s, uint32_t index, cairn__name_fn name_at,
                                   const void *ctx, cairn_error *err)
{
    if ((s->count + 1) * 2 > s->cap) { /* keep the set at most half full */
        size_t cap = s->cap ? s->cap * 2 : 16;
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return cairn__fail(err, CAIRN_E_NOMEM, "out of memory for a name index of %zu names",
                               s->count + 1);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                place(slots, cap, s->slots[i] - 1, name_at, ctx);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    place(s->slots, s->cap, index, name_at, ctx);
    s->count++;
    return CAIRN_OK;
}

void cairn__nameset_free(cairn__nameset *s)
{
    free(s->slots);
    s->slots = NULL;
    s->cap = s->count = 0;
}
