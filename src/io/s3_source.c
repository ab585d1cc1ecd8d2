/*
 * s3_source.c -- a lazy source over an S3 object (remote.h).
 *
 * Opening costs one request: a suffix-range GET of the last TAIL_BYTES,
 * whose Content-Range gives the size, and whose bytes hold a native file's
 * trailer and index. An object no larger than that is then wholly in memory
 * and served as if mapped. Otherwise reads are ranged GETs:
 *   - a small read (<= SMALL_READ) fetches a whole BLOCK from its offset and
 *     keeps it in a small LRU cache, so the header of a header-first format
 *     and runs of neighbouring small tensors cost one request together;
 *   - a large read (>= PARALLEL_MIN) is split into PARALLEL_PART ranges
 *     fetched by up to PARALLEL_WAYS threads;
 *   - anything between is one ranged GET straight into the caller's buffer.
 * Memory: the tail plus CACHE_BLOCKS blocks, whatever the object's size.
 * Reads are thread-safe (the cache is under a mutex; fetches run outside it).
 */
#include "common/pool.h"
#include "io/remote.h"
#include "io/s3.h"

#include <pthread.h>
#include <stdlib.h>

#define TAIL_BYTES ((size_t)256 << 10)
#define BLOCK ((size_t)256 << 10)
#define SMALL_READ ((size_t)64 << 10)
#define CACHE_BLOCKS 32
#define PARALLEL_MIN ((size_t)16 << 20)
#define PARALLEL_PART ((size_t)8 << 20)
#define PARALLEL_WAYS 4

typedef struct block {
    uint64_t off;
    size_t len;
    uint8_t *p;
    uint64_t used; /* LRU tick; 0 = empty */
} block;

typedef struct s3src {
    cairn__s3 *s3;
    char *bucket, *key;
    uint8_t *tail; /* the object's last tail_len bytes */
    size_t tail_len;
    uint64_t tail_off;
    pthread_mutex_t mu;
    block blocks[CACHE_BLOCKS];
    uint64_t tick;
} s3src;

static void src_free(s3src *r)
{
    if (!r)
        return;
    for (int i = 0; i < CACHE_BLOCKS; i++)
        free(r->blocks[i].p);
    pthread_mutex_destroy(&r->mu);
    cairn__s3_close(r->s3);
    free(r->tail);
    free(r->bucket);
    free(r->key);
    free(r);
}

static void src_close(cairn__source *s)
{
    src_free(s->backend_state);
    s->backend_state = NULL;
    s->base = NULL; /* was r->tail when the object fit in it */
}

/* Copies [off, off+len) from the cache if one block holds all of it. */
static int cache_get(s3src *r, uint64_t off, void *dst, size_t len)
{
    int hit = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < CACHE_BLOCKS; i++) {
        block *b = &r->blocks[i];
        if (b->used && off >= b->off && off - b->off <= b->len && len <= b->len - (off - b->off)) {
            memcpy(dst, b->p + (off - b->off), len);
            b->used = ++r->tick;
            hit = 1;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return hit;
}

/* Takes ownership of p[0..len) as the block at off (evicting the oldest). */
static void cache_put(s3src *r, uint64_t off, uint8_t *p, size_t len)
{
    pthread_mutex_lock(&r->mu);
    block *victim = &r->blocks[0];
    for (int i = 0; i < CACHE_BLOCKS; i++)
        if (r->blocks[i].used < victim->used)
            victim = &r->blocks[i];
    free(victim->p);
    victim->off = off;
    victim->len = len;
    victim->p = p;
    victim->used = ++r->tick;
    pthread_mutex_unlock(&r->mu);
}

typedef struct par_read {
    s3src *r;
    uint64_t off;
    uint8_t *dst;
    size_t len;
    _Atomic int failed;
    pthread_mutex_t mu;
    cairn_error err; /* the first failure */
    cairn_status st;
} par_read;

static void par_task(void *ctx, unsigned worker, size_t task)
{
    par_read *p = ctx;
    (void)worker;
    if (p->failed)
        return;
    size_t at = task * PARALLEL_PART;
    size_t n = p->len - at < PARALLEL_PART ? p->len - at : PARALLEL_PART;
    cairn_error e;
    cairn_status st = cairn__s3_get(p->r->s3, p->r->bucket, p->r->key, p->off + at, n, p->dst + at, &e);
    if (st != CAIRN_OK) {
        pthread_mutex_lock(&p->mu);
        if (!p->failed) {
            p->err = e;
            p->st = st;
            p->failed = 1;
        }
        pthread_mutex_unlock(&p->mu);
    }
}

static cairn_status src_read(const cairn__source *s, uint64_t off, void *dst, size_t len,
                             cairn_error *err)
{
    s3src *r = s->backend_state;
    /* The tail is immutable after open: no lock. */
    if (off >= r->tail_off) {
        memcpy(dst, r->tail + (off - r->tail_off), len);
        return CAIRN_OK;
    }
    if (len <= SMALL_READ) {
        if (cache_get(r, off, dst, len))
            return CAIRN_OK;
        uint64_t end = off + BLOCK < s->size ? off + BLOCK : s->size;
        size_t n = (size_t)(end - off);
        uint8_t *p = malloc(n);
        if (!p)
            return cairn__s3_get(r->s3, r->bucket, r->key, off, len, dst, err);
        cairn_status st = cairn__s3_get(r->s3, r->bucket, r->key, off, n, p, err);
        if (st != CAIRN_OK) {
            free(p);
            return st;
        }
        memcpy(dst, p, len);
        cache_put(r, off, p, n);
        return CAIRN_OK;
    }
    if (len >= PARALLEL_MIN) {
        par_read p = {.r = r, .off = off, .dst = dst, .len = len, .st = CAIRN_OK};
        pthread_mutex_init(&p.mu, NULL);
        size_t parts = (len + PARALLEL_PART - 1) / PARALLEL_PART;
        cairn__pool_run(cairn__pool_workers(PARALLEL_WAYS, parts), parts, par_task, &p);
        pthread_mutex_destroy(&p.mu);
        if (p.st != CAIRN_OK) {
            if (err)
                *err = p.err;
            return p.st;
        }
        return CAIRN_OK;
    }
    return cairn__s3_get(r->s3, r->bucket, r->key, off, len, dst, err);
}

static const cairn__source_backend s3_source = {
    .scheme = "s3",
    .read = src_read,
    .close = src_close,
};

cairn_status cairn__remote_source_open(cairn__source *s, const char *url, cairn_error *err)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->path = url;
    s3src *r = calloc(1, sizeof *r);
    if (!r)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", url);
    pthread_mutex_init(&r->mu, NULL);
    cairn_status st = cairn__s3_open_url(url, 0, &r->s3, &r->bucket, &r->key, err);
    if (st == CAIRN_OK && !(r->tail = malloc(TAIL_BYTES)))
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", url);
    size_t got = 0;
    uint64_t size = 0;
    if (st == CAIRN_OK)
        st = cairn__s3_get_tail(r->s3, r->bucket, r->key, TAIL_BYTES, r->tail, &got, &size, err);
    if (st != CAIRN_OK) {
        src_free(r);
        return st;
    }
    /* Keep only the bytes received, at the start of the buffer. */
    memmove(r->tail, r->tail + TAIL_BYTES - got, got);
    r->tail_len = got;
    r->tail_off = size - got;
    s->size = size;
    s->backend = &s3_source;
    s->backend_state = r;
    if (got == size) /* the whole object is here: serve it like a mapping */
        s->base = r->tail;
    return CAIRN_OK;
}
