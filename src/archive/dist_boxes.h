/*
 * dist_boxes.h -- box arithmetic shared by the distributed checkpoint reader
 * (dist_manifest.c) and libcairn_mpi's save planner (src/mpi/), so both
 * decide "these boxes tile the tensor" by the same code. Pure functions on
 * caller arrays: no library state, no I/O, no allocation.
 */
#ifndef CAIRN_DIST_BOXES_H
#define CAIRN_DIST_BOXES_H

#include <stdint.h>
#include <stdlib.h>

/* A box to check: its corner and size, `rank` entries each. */
typedef struct cairn__box_ref {
    const uint64_t *off, *ext;
    uint64_t id; /* the caller's number for it, for messages */
} cairn__box_ref;

static inline int cairn__box_ref_cmp(const void *a, const void *b)
{
    const cairn__box_ref *x = a, *y = b;
    if (x->off[0] != y->off[0])
        return x->off[0] < y->off[0] ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Sorts `r` by the first coordinate and sweeps: returns 1 and the two
 * overlapping boxes' ids in *a, *b when two overlap, else 0. Only boxes
 * whose ranges in dimension 0 meet are compared. rank >= 1. */
static inline int cairn__boxes_overlap(uint32_t rank, cairn__box_ref *r, size_t n, uint64_t *a,
                                       uint64_t *b)
{
    qsort(r, n, sizeof *r, cairn__box_ref_cmp);
    for (size_t i = 0; i < n; i++) {
        uint64_t end0 = r[i].off[0] + r[i].ext[0];
        for (size_t k = i + 1; k < n && r[k].off[0] < end0; k++) {
            uint32_t j = 1;
            while (j < rank && r[i].off[j] < r[k].off[j] + r[k].ext[j] &&
                   r[k].off[j] < r[i].off[j] + r[i].ext[j])
                j++;
            if (j == rank) {
                *a = r[i].id;
                *b = r[k].id;
                return 1;
            }
        }
    }
    return 0;
}

#endif
