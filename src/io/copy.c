/* copy.c -- the multi-core copies of copy.h. From a warm page cache a copy
 * into fresh memory costs the kernel's copy plus a page fault per 4 KiB of
 * the destination, and both scale with cores (1 GiB of 4 MiB tensors into
 * new buffers, 2 cores: 0.75 s on one thread, 0.33 s on two). */
#include "io/copy.h"

#include <stdatomic.h>

#include "common/pool.h"

/* The slice, and the size below which a thread costs more than it saves. */
#define SLICE (1u << 20)

/* One copy in slices; the first failure is kept, later slices are skipped. */
typedef struct slice_copy {
    const cairn__source *f;
    uint64_t offset, size;
    uint8_t *dst;
    atomic_int failed;
    cairn_status status;
    cairn_error err;
} slice_copy;

static size_t slice_len(const slice_copy *c, size_t task)
{
    uint64_t at = (uint64_t)task * SLICE;
    return c->size - at < SLICE ? (size_t)(c->size - at) : SLICE;
}

static void copy_slice(void *ctx, unsigned worker, size_t task)
{
    slice_copy *c = ctx;
    (void)worker;
    if (atomic_load(&c->failed))
        return;
    uint64_t at = (uint64_t)task * SLICE;
    cairn_error err;
    cairn_status st = cairn__source_read(c->f, c->offset + at, c->dst + at, slice_len(c, task),
                                         &err);
    int expected = 0;
    if (st != CAIRN_OK && atomic_compare_exchange_strong(&c->failed, &expected, 1)) {
        c->status = st;
        c->err = err;
    }
}

static cairn_status finish(const slice_copy *c, cairn_error *err)
{
    if (c->status != CAIRN_OK && err)
        *err = c->err;
    return c->status;
}

static void init_copy(slice_copy *c, const cairn__source *f, uint64_t offset, uint8_t *dst,
                      uint64_t size)
{
    c->f = f;
    c->offset = offset;
    c->size = size;
    c->dst = dst;
    atomic_init(&c->failed, 0);
    c->status = CAIRN_OK;
}

cairn_status cairn__copy_out(const cairn__source *f, unsigned threads, uint64_t offset, uint8_t *dst, uint64_t size,
                             cairn_error *err)
{
    if (size < CAIRN__COPY_PARALLEL_MIN) /* before counting workers: small reads stay cheap */
        return cairn__source_read(f, offset, dst, (size_t)size, err);
    size_t slices = (size_t)((size + SLICE - 1) / SLICE);
    unsigned workers = cairn__pool_workers(threads, slices);
    if (workers < 2)
        return cairn__source_read(f, offset, dst, (size_t)size, err);
    slice_copy c;
    init_copy(&c, f, offset, dst, size);
    cairn__pool_run(workers, slices, copy_slice, &c);
    return finish(&c, err);
}

/* Verified copies stay on one thread: each slice is hashed right after it
 * lands, while it is still in this core's cache. Handing slices to another
 * thread to copy while this one hashes was measured slower (1 GiB,
 * 2 cores: 1.45x raw read() against 1.2x), the hash then reading every byte
 * back from memory. */
cairn_status cairn__copy_out_hashed(const cairn__source *f, uint64_t offset, uint8_t *dst,
                                    uint64_t size, cairn__hasher *state, cairn_error *err)
{
    for (uint64_t done = 0; done < size;) {
        size_t n = size - done < SLICE ? (size_t)(size - done) : SLICE;
        CAIRN_TRY(cairn__source_read(f, offset + done, dst + done, n, err));
        cairn__hasher_update(state, dst + done, n);
        done += n;
    }
    return CAIRN_OK;
}
