/* buf.c -- the growable byte buffer of buf.h. */
#include "common/buf.h"

#include <stdlib.h>

void cairn__buf_put(cairn__buf *b, const void *data, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) { /* doubling would wrap */
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

int cairn__grow(void *items, size_t *cap, size_t count, size_t size, size_t first)
{
    if (count < *cap)
        return 1;
    size_t n = *cap ? *cap * 2 : first;
    if (n <= *cap || n > SIZE_MAX / size)
        return 0;
    void *p;
    memcpy(&p, items, sizeof p);
    if (!(p = realloc(p, n * size)))
        return 0;
    memcpy(items, &p, sizeof p);
    *cap = n;
    return 1;
}
