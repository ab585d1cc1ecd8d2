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
 *   - a read in between that continues where an earlier one ended (a scan:
 *     tensors read in file order, by one thread or several) fetches a SPAN
 *     of the object from its offset, which the following reads are served
 *     from: a scan of N tensors costs about size/SPAN requests, not N (each
 *     request costs a server something, whatever its size). A reader whose
 *     bytes lie in a span still being fetched waits for it;
 *   - any other read is one ranged GET straight into the caller's buffer
 *     (so a lazy read of one tensor fetches only its bytes).
 * Memory: the tail plus CACHE_BLOCKS blocks plus SPANS spans, whatever the
 * object's size. Reads are thread-safe (the caches are under a mutex;
 * fetches run outside it).
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
#define SPAN ((size_t)16 << 20)
#define SPANS 4
#define SCAN_GAP ((uint64_t)64 << 10) /* alignment padding between neighbours */

typedef struct span {
    uint64_t off;
    size_t len;
    uint8_t *p; /* cap bytes, kept from span to span (no page faults on every reuse) */
    size_t cap;
    int state; /* SPAN_EMPTY, SPAN_LOADING (p[0..len) being filled), SPAN_READY */
    unsigned readers; /* copying out of p without the lock (it is not evicted then) */
    uint64_t used;
} span;
enum { SPAN_EMPTY, SPAN_LOADING, SPAN_READY };
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
    pthread_cond_t span_done; /* a span left SPAN_LOADING */
    span spans[SPANS];
    uint64_t last_end; /* end of the latest medium read, to see a scan */
} s3src;

static void src_free(s3src *r)
{
    if (!r)
        return;
    for (int i = 0; i < CACHE_BLOCKS; i++)
        free(r->blocks[i].p);
    for (int i = 0; i < SPANS; i++)
        free(r->spans[i].p);
    pthread_cond_destroy(&r->span_done);
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

/* Does `end` (where some read or span ended) put off right after it? */
static int continues(uint64_t end, uint64_t off)
{
    return end && off >= end && off - end <= SCAN_GAP;
}

/* Under r->mu: the least recently used span nobody loads or copies from,
 * marked as loading [off, off + SPAN) (at least `need` bytes, never into
 * the tail); NULL if every span is busy. */
static span *span_claim(s3src *r, uint64_t off, size_t need)
{
    span *v = NULL;
    for (int i = 0; i < SPANS; i++) {
        span *p = &r->spans[i];
        if (p->state != SPAN_LOADING && p->readers == 0 && (!v || p->used < v->used))
            v = p;
    }
    if (!v)
        return NULL;
    uint64_t end = off + SPAN < r->tail_off ? off + SPAN : r->tail_off;
    if (end < off + need)
        end = off + need;
    v->off = off;
    v->len = (size_t)(end - off);
    v->state = SPAN_LOADING;
    v->used = ++r->tick;
    return v;
}

/* Without r->mu: fetches a claimed span and publishes it (or empties it on
 * failure), copying dst[0..len) from its start first when dst is given. */
static cairn_status span_fill(const cairn__source *s, s3src *r, span *v, void *dst, size_t len,
                              cairn_error *err)
{
    /* LOADING: nobody else touches v->p until it is published. */
    if (v->cap < v->len) {
        free(v->p);
        v->p = malloc(v->len);
        v->cap = v->p ? v->len : 0;
    }
    cairn_status st = v->p ? cairn__s3_get(r->s3, r->bucket, r->key, v->off, v->len, v->p, err)
                           : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->path);
    if (st == CAIRN_OK && dst)
        memcpy(dst, v->p, len);
    pthread_mutex_lock(&r->mu);
    v->state = st == CAIRN_OK ? SPAN_READY : SPAN_EMPTY;
    pthread_cond_broadcast(&r->span_done);
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* Under r->mu: the span holding [off, off+len) entirely, or NULL. */
static span *span_find(s3src *r, uint64_t off, size_t len)
{
    for (int i = 0; i < SPANS; i++) {
        span *p = &r->spans[i];
        if (p->state != SPAN_EMPTY && off >= p->off && len <= p->len &&
            off - p->off <= p->len - len)
            return p;
    }
    return NULL;
}

/* A medium read as part of a scan: served from a span holding all of it,
 * or, when the read continues an earlier read or span, by loading a new
 * span from off. A reader whose span is still loading fetches the span
 * after it meanwhile (when one is free), so a scan keeps two requests
 * going, as one streaming GET would. Returns 1 when it handled the read
 * (*st says how it went), 0 when the caller reads directly. */
static int span_read(const cairn__source *s, s3src *r, uint64_t off, void *dst, size_t len,
                     cairn_status *st, cairn_error *err)
{
    pthread_mutex_lock(&r->mu);
    span *hit;
    while ((hit = span_find(r, off, len)) != NULL && hit->state == SPAN_LOADING) {
        uint64_t next = hit->off + hit->len;
        span *ahead = next < r->tail_off && !span_find(r, next, 1) ? span_claim(r, next, 1) : NULL;
        if (!ahead) {
            pthread_cond_wait(&r->span_done, &r->mu);
            continue; /* it may have failed (EMPTY) or been replaced: look again */
        }
        pthread_mutex_unlock(&r->mu);
        cairn_error ignored; /* a read-ahead's failure is the later reader's to see */
        span_fill(s, r, ahead, NULL, 0, &ignored);
        pthread_mutex_lock(&r->mu);
    }
    if (hit) {
        hit->readers++;
        hit->used = ++r->tick;
        pthread_mutex_unlock(&r->mu);
        memcpy(dst, hit->p + (off - hit->off), len);
        pthread_mutex_lock(&r->mu);
        hit->readers--;
        pthread_mutex_unlock(&r->mu);
        *st = CAIRN_OK;
        return 1;
    }
    int scan = continues(r->last_end, off);
    for (int i = 0; i < SPANS && !scan; i++)
        scan = r->spans[i].state != SPAN_EMPTY &&
               continues(r->spans[i].off + r->spans[i].len, off);
    if (off + len > r->last_end)
        r->last_end = off + len;
    span *v = scan ? span_claim(r, off, len) : NULL;
    pthread_mutex_unlock(&r->mu);
    if (!v)
        return 0;
    *st = span_fill(s, r, v, dst, len, err);
    return 1;
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
    cairn_status st;
    if (len <= SPAN / 2 && span_read(s, r, off, dst, len, &st, err))
        return st;
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
    pthread_cond_init(&r->span_done, NULL);
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
