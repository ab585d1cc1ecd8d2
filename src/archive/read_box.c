/* read_box.c -- cairn_tensor_read_box: a hyperrectangle of a tensor into a
 * caller's buffer, as the longest runs that are contiguous in both the
 * stored tensor and the buffer. Distributed checkpoint directories
 * (ops->read_box) assemble the box from the saved pieces with the same
 * copier, cairn__box_copy. */
#include "archive/archive.h"

#include <stdlib.h>
#include <string.h>

/* Compressed pieces are read in windows of at least this many bytes, so a
 * chunk is decoded once for all the runs it holds, not once per run. */
#define BOX_WINDOW (UINT64_C(4) << 20)

typedef struct box_walk {
    uint32_t k;                         /* runs vary dims [0, k); a run spans dims [k, rank) */
    uint64_t run;                       /* elements per run */
    uint64_t idx[CAIRN_MAX_RANK];       /* position among the runs, dims [0, k) */
    uint64_t sstride[CAIRN_MAX_RANK], dstride[CAIRN_MAX_RANK];
    uint64_t sbase, dbase;              /* element of the first run in source and dst */
    const uint64_t *iext;
} box_walk;

static void walk_init(box_walk *w, uint32_t rank, const uint64_t *sext, const uint64_t *rext,
                      const uint64_t *soff, const uint64_t *roff, const uint64_t *ioff,
                      const uint64_t *iext)
{
    uint64_t s = 1, d = 1;
    for (uint32_t j = rank; j-- > 0;) {
        w->sstride[j] = s;
        w->dstride[j] = d;
        s *= sext[j];
        d *= rext[j];
    }
    /* Merge trailing dimensions the intersection covers whole in both. */
    uint32_t k = rank ? rank - 1 : 0;
    while (k > 0 && iext[k] == sext[k] && iext[k] == rext[k])
        k--;
    w->k = k;
    w->run = 1;
    for (uint32_t j = k; j < rank; j++)
        w->run *= iext[j];
    w->sbase = w->dbase = 0;
    for (uint32_t j = 0; j < rank; j++) {
        w->sbase += (ioff[j] - soff[j]) * w->sstride[j];
        w->dbase += (ioff[j] - roff[j]) * w->dstride[j];
        w->idx[j] = 0;
    }
    w->iext = iext;
}

static void walk_pos(const box_walk *w, uint64_t *src, uint64_t *dst)
{
    uint64_t s = w->sbase, d = w->dbase;
    for (uint32_t j = 0; j < w->k; j++) {
        s += w->idx[j] * w->sstride[j];
        d += w->idx[j] * w->dstride[j];
    }
    *src = s;
    *dst = d;
}

/* Next run; 0 when done. */
static int walk_next(box_walk *w)
{
    for (uint32_t j = w->k; j-- > 0;) {
        if (++w->idx[j] < w->iext[j])
            return 1;
        w->idx[j] = 0;
    }
    return 0;
}

cairn_status cairn__box_copy(const cairn_file *src, uint64_t index, uint32_t rank,
                             const uint64_t *soff, const uint64_t *sext, const uint64_t *roff,
                             const uint64_t *rext, const uint64_t *ioff, const uint64_t *iext,
                             cairn_dtype dtype, void *dst, cairn_error *err)
{
    size_t es = cairn_dtype_size(dtype);
    uint8_t *out = dst;
    cairn_tensor_info info;
    CAIRN_TRY(cairn_tensor_info_at(src, index, &info, err));
    box_walk w;
    walk_init(&w, rank, sext, rext, soff, roff, ioff, iext);
    uint64_t window = 0;
    if (info.codec != CAIRN_CODEC_NONE) {
        window = info.chunk_size > BOX_WINDOW ? info.chunk_size : BOX_WINDOW;
        window /= es;
    }
    uint8_t *tmp = NULL;
    cairn_status st = CAIRN_OK;
    int more = 1;
    while (more && st == CAIRN_OK) {
        uint64_t s0, d0;
        walk_pos(&w, &s0, &d0);
        /* Runs that fit one window with this one. */
        box_walk start = w;
        uint64_t n = 1, end = s0 + w.run;
        more = walk_next(&w);
        while (more && window) {
            uint64_t s, d;
            walk_pos(&w, &s, &d);
            if (s + w.run - s0 > window)
                break;
            end = s + w.run;
            n++;
            more = walk_next(&w);
        }
        if (n == 1) {
            st = cairn_tensor_read_range(src, index, s0, w.run, dtype, out + d0 * es,
                                         (size_t)(w.run * es), 0, err);
            continue;
        }
        if (!tmp && !(tmp = malloc((size_t)(window * es)))) {
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for a %llu-byte window",
                             cairn_file_path(src), (unsigned long long)(window * es));
            break;
        }
        st = cairn_tensor_read_range(src, index, s0, end - s0, dtype, tmp,
                                     (size_t)((end - s0) * es), 0, err);
        for (uint64_t i = 0; i < n && st == CAIRN_OK; i++) {
            uint64_t s, d;
            walk_pos(&start, &s, &d);
            memcpy(out + d * es, tmp + (s - s0) * es, (size_t)(w.run * es));
            walk_next(&start);
        }
    }
    free(tmp);
    return st;
}

cairn_status cairn_tensor_read_box(const cairn_file *f, uint64_t index, const uint64_t *offset,
                                   const uint64_t *extent, cairn_dtype dtype, void *dst,
                                   size_t dst_size, unsigned flags, cairn_error *err)
{
    cairn_tensor_info info;
    CAIRN_TRY(cairn_tensor_info_at(f, index, &info, err));
    if (info.rank > 0 && (!offset || !extent))
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': offset and extent must not be "
                           "NULL", f->path, info.name);
    size_t es = cairn_dtype_size(dtype);
    if (!es)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': invalid dtype %d", f->path,
                           info.name, (int)dtype);
    uint64_t vol = 1, need, e;
    for (uint32_t j = 0; j < info.rank; j++) {
        if (cairn__add_overflow(offset[j], extent[j], &e) || e > info.dims[j])
            return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': dimension %u: offset %llu + "
                               "extent %llu is outside %llu", f->path, info.name, j,
                               (unsigned long long)offset[j], (unsigned long long)extent[j],
                               (unsigned long long)info.dims[j]);
        vol *= extent[j]; /* <= the element count */
    }
    if (cairn__mul_overflow(vol, es, &need) || need != dst_size)
        return cairn__fail(err, CAIRN_E_SIZE, "%s: tensor '%s': buffer of %zu bytes, the box "
                           "needs %llu (%llu x %s)", f->path, info.name, dst_size,
                           (unsigned long long)need, (unsigned long long)vol,
                           cairn_dtype_name(dtype));
    if (!dst && dst_size > 0)
        return cairn__fail(err, CAIRN_E_ARG, "%s: tensor '%s': NULL destination", f->path,
                           info.name);
    if (f->ops->read_box)
        return f->ops->read_box(f, index, offset, extent, dtype, dst, flags, err);
    if (flags & CAIRN_READ_VERIFY)
        CAIRN_TRY(cairn_tensor_verify(f, index, err));
    if (vol == 0)
        return cairn_tensor_read_range(f, index, 0, 0, dtype, dst, 0, 0, err);
    uint64_t zero[CAIRN_MAX_RANK] = {0};
    return cairn__box_copy(f, index, info.rank, zero, info.dims, offset, extent, offset, extent,
                           dtype, dst, err);
}
