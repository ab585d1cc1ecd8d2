/*
 * s3_sink.c -- a sink that streams to an S3 object (remote.h).
 *
 * Appended bytes fill a part buffer; a full part is uploaded by a thread of
 * its own while the writer goes on, with at most IN_FLIGHT parts uploading
 * (the writer waits for the oldest beyond that). Memory is bounded by
 * (IN_FLIGHT + 2) parts, whatever the object's size.
 *
 * Part 1 stays in memory until commit: formats patch their first bytes at
 * the end (the native header's minor version, an mxnet count). A copy of
 * it is uploaded as soon as part 2 begins, like any part, and if a patch
 * changed it afterwards it is uploaded again at commit (a part number sent
 * twice keeps the last bytes). A patch or placement that falls into a
 * later part already sent is refused (CAIRN_E_UNSUPPORTED, naming the offset);
 * header-first formats (safetensors, GGUF) declare their tensors, extend
 * the sink to its final size and then place payloads. Placements stream
 * when they come in layout order: a small gap before one (padding) is
 * appended as zeros. A placement further ahead (tensors added in another
 * order than the layout's) waits in a spool file in $TMPDIR, not in memory,
 * and is appended when the bytes before it are; what is never placed is
 * zeros at commit.
 *
 * The multipart upload is created only when part 2 is full; an object that
 * fits in one part is sent by one PUT at commit. Past the first part, an
 * object may still go by one PUT: up to the handle's multipart threshold
 * (CAIRN_S3_MULTIPART_THRESHOLD, 8 MiB by default), full parts are staged
 * in an unlinked file in $TMPDIR instead of being uploaded, and commit sends
 * part 1 and that file as one PUT. For servers where a multipart upload
 * costs more than a PUT of the same bytes (moto copies every part again at
 * Complete) this is the faster way; it holds the object on local disk and
 * uses one connection. When the object outgrows the threshold, the staged
 * parts are uploaded as parts 2, 3, ... and the writer goes on as above. The object appears only at
 * commit (CompleteMultipartUpload or that PUT), with If-None-Match: * under
 * CAIRN__COMMIT_NO_REPLACE. Any failure, and discard, abort the upload.
 */
#include "common/pool.h"
#include "io/remote.h"
#include "io/s3.h"
#include "io/spool.h"

#include <errno.h>
#include <unistd.h>

#include <stdlib.h>

#define PART_BASE ((size_t)8 << 20)
#define PART_MAX ((size_t)5 << 30)
#define IN_FLIGHT 4
#define SMALL_GAP ((uint64_t)1 << 20) /* zeros appended at once before a placement */
#define DRAIN_CHUNK ((size_t)1 << 20)

typedef struct s3sink s3sink;

/* A placement waiting for the bytes before it: [off, off+len) of the
 * object, at spool offset `at`. */
typedef struct pending {
    uint64_t off, at;
    size_t len;
} pending;

typedef struct slot {
    s3sink *k;
    int busy;
    cairn__pool_job job;
    uint8_t *buf;
    size_t len;
    unsigned part;
    cairn_status st;
    cairn_error err;
} slot;

struct s3sink {
    cairn__s3 *s3;
    char *bucket, *key, *url;
    cairn__s3_upload *up;
    uint8_t *first; /* part 1, kept until commit */
    size_t first_len;
    int first_dirty; /* patched after its upload began: send it again at commit */
    uint8_t *cur; /* the part being filled: number `part`, starting at cur_off */
    size_t cur_len, cur_cap;
    uint64_t cur_off;
    unsigned part;
    uint64_t appended; /* bytes appended so far (the end of cur) */
    uint64_t final_size; /* set by extend */
    slot slots[IN_FLIGHT];
    unsigned next_slot;
    cairn_status failed; /* a part upload failed: every later call fails */
    cairn_error ferr;
    const cairn__sink *sink; /* its owner (for spool files) */
    uint64_t threshold; /* at most this many bytes: one PUT */
    int staging; /* full parts past part 1 go to `stage`, not to the server */
    cairn__spool stage; /* opened at the first staged part */
    int stage_open;
    cairn__spool spool; /* fd -1 until a placement has to wait */
    int spooling;
    pending *pend; /* sorted by off */
    size_t n_pend, cap_pend;
};

/* Part n's size: 8 MiB for parts 1..1000, doubling every 1000 parts, so the
 * 10,000-part limit allows objects of several TB. */
static size_t part_size(unsigned n)
{
    size_t sz = PART_BASE << ((n - 1) / 1000);
    return sz < PART_MAX ? sz : PART_MAX;
}

static void upload_task(void *ctx, unsigned worker, size_t task)
{
    slot *sl = ctx;
    (void)worker;
    (void)task;
    sl->st = cairn__s3_upload_part(sl->k->up, sl->part, sl->buf, sl->len, &sl->err);
}

/* Waits for a slot's upload; records its failure. */
static void slot_join(s3sink *k, slot *sl)
{
    if (!sl->busy)
        return;
    cairn__pool_join(&sl->job);
    sl->busy = 0;
    if (sl->st != CAIRN_OK && k->failed == CAIRN_OK) {
        k->failed = sl->st;
        k->ferr = sl->err;
    }
}

static cairn_status failed(s3sink *k, cairn_error *err)
{
    if (err)
        *err = k->ferr;
    return k->failed;
}

static cairn_status ensure_upload(s3sink *k, cairn_error *err)
{
    if (k->up)
        return CAIRN_OK;
    return cairn__s3_upload_create(k->s3, k->bucket, k->key, &k->up, err);
}

/* Hands buf (owned, len bytes) to a free slot as part `part`. */
static cairn_status submit(s3sink *k, uint8_t *buf, size_t len, unsigned part, cairn_error *err)
{
    cairn_status st = ensure_upload(k, err);
    if (st != CAIRN_OK) {
        free(buf);
        k->failed = st; /* the sink is unusable from now on */
        if (err)
            k->ferr = *err;
        return st;
    }
    slot *sl = &k->slots[k->next_slot];
    k->next_slot = (k->next_slot + 1) % IN_FLIGHT;
    slot_join(k, sl);
    free(sl->buf);
    sl->buf = NULL;
    if (k->failed != CAIRN_OK) {
        free(buf);
        return failed(k, err);
    }
    sl->k = k;
    sl->buf = buf;
    sl->len = len;
    sl->part = part;
    sl->busy = 1;
    cairn__pool_start(&sl->job, 1, 1, upload_task, sl);
    return CAIRN_OK;
}

/* Uploads part 1 (a copy) and the staged parts 2 .. k->part - 1: the
 * object has outgrown the threshold. */
static cairn_status unstage(s3sink *k, cairn_error *err)
{
    k->staging = 0;
    uint8_t *copy = malloc(k->first_len);
    if (!copy)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot allocate a %zu-byte part", k->url,
                           k->first_len);
    memcpy(copy, k->first, k->first_len);
    k->first_dirty = 0; /* the copy has every patch so far */
    CAIRN_TRY(submit(k, copy, k->first_len, 1, err));
    uint64_t at = 0;
    for (unsigned n = 2; n < k->part; n++) {
        size_t len = part_size(n);
        uint8_t *buf = malloc(len);
        if (!buf)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot allocate a %zu-byte part",
                               k->url, len);
        for (size_t done = 0; done < len;) {
            ssize_t got = pread(k->stage.fd, buf + done, len - done, (off_t)(at + done));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                free(buf);
                return cairn__fail(err, CAIRN_E_IO, "%s: read of the staged part %u failed: %s",
                                   k->url, n, got < 0 ? strerror(errno) : "unexpected end");
            }
            done += (size_t)got;
        }
        CAIRN_TRY(submit(k, buf, len, n, err));
        at += len;
    }
    if (k->stage_open)
        cairn__spool_close(&k->stage);
    k->stage_open = 0;
    return CAIRN_OK;
}

/* Appends the current part to the staging file. */
static cairn_status stage_part(s3sink *k, cairn_error *err)
{
    if (!k->stage_open) {
        CAIRN_TRY(cairn__spool_open(&k->stage, k->sink, err));
        k->stage_open = 1;
    }
    return cairn__spool_write(&k->stage, k->sink, k->cur, k->cur_len, "(staged part)", err);
}

/* The full current part goes: part 1 is kept, later ones are uploaded
 * (or staged while the object may still go by one PUT). More bytes follow. */
static cairn_status next_part(s3sink *k, cairn_error *err)
{
    if (k->staging && k->part > 1 && k->appended < k->threshold) {
        CAIRN_TRY(stage_part(k, err));
        k->cur_off += k->cur_len;
        k->part++;
        k->cur_len = 0; /* the same buffer: parts keep 8 MiB far past the 5 GiB threshold */
        return CAIRN_OK;
    }
    if (k->staging && k->part > 1)
        CAIRN_TRY(unstage(k, err));
    uint8_t *full = k->cur;
    k->cur = NULL; /* owned by `first` or by the upload now */
    if (k->part == 1 && k->staging) {
        k->first = full;
        k->first_len = k->cur_len;
    } else if (k->part == 1) {
        k->first = full;
        k->first_len = k->cur_len;
        /* The upload gets a copy: patches may change `first` meanwhile. */
        uint8_t *copy = malloc(k->first_len);
        if (!copy)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot allocate a %zu-byte part",
                               k->url, k->first_len);
        memcpy(copy, full, k->first_len);
        CAIRN_TRY(submit(k, copy, k->first_len, 1, err));
    } else {
        CAIRN_TRY(submit(k, full, k->cur_len, k->part, err));
    }
    if (k->part >= CAIRN__S3_MAX_PARTS) {
        k->failed = cairn__fail(&k->ferr, CAIRN_E_LIMIT, "%s: more than %u parts", k->url,
                                CAIRN__S3_MAX_PARTS);
        return failed(k, err);
    }
    k->cur_off += k->cur_len;
    k->part++;
    k->cur_cap = part_size(k->part);
    k->cur_len = 0;
    k->cur = malloc(k->cur_cap);
    if (!k->cur)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot allocate a %zu-byte part", k->url,
                           k->cur_cap);
    return CAIRN_OK;
}

/* Appends bytes (data NULL: zeros). */
static cairn_status append(s3sink *k, const uint8_t *data, uint64_t len, cairn_error *err)
{
    if (k->failed != CAIRN_OK)
        return failed(k, err);
    while (len > 0) {
        if (k->cur_len == k->cur_cap)
            CAIRN_TRY(next_part(k, err));
        size_t n = k->cur_cap - k->cur_len;
        if (n > len)
            n = (size_t)len;
        if (data) {
            memcpy(k->cur + k->cur_len, data, n);
            data += n;
        } else {
            memset(k->cur + k->cur_len, 0, n);
        }
        k->cur_len += n;
        k->appended += n;
        len -= n;
    }
    return CAIRN_OK;
}


/* Overwrites [off, off+len) of the appended bytes still in memory. */
static cairn_status overwrite(s3sink *k, uint64_t off, const uint8_t *data, size_t len,
                              cairn_error *err)
{
    uint64_t end = off + len;
    int in_first = k->first && end <= k->first_len;
    int in_cur = off >= k->cur_off && end <= k->cur_off + k->cur_len;
    int spans = k->first && k->part == 2 && off < k->first_len && end > k->cur_off &&
                end <= k->cur_off + k->cur_len;
    if (in_first || spans)
        k->first_dirty = 1;
    if (in_first || (!k->first && in_cur)) {
        memcpy((in_first ? k->first : k->cur) + off, data, len);
    } else if (in_cur) {
        memcpy(k->cur + (off - k->cur_off), data, len);
    } else if (spans) {
        size_t a = (size_t)(k->first_len - off);
        memcpy(k->first + off, data, a);
        memcpy(k->cur, data + a, len - a);
    } else {
        return cairn__fail(err, CAIRN_E_UNSUPPORTED,
                           "%s: bytes %llu..%llu were already uploaded and cannot be changed "
                           "(write the tensors in the order they were declared)",
                           k->url, (unsigned long long)off, (unsigned long long)end);
    }
    return CAIRN_OK;
}

/* Bytes at [off, off+len): appended (after zeros) when at or past the end,
 * else written over what is still in memory. */
static cairn_status place(s3sink *k, uint64_t off, const uint8_t *data, size_t len,
                          cairn_error *err)
{
    if (off >= k->appended) {
        CAIRN_TRY(append(k, NULL, off - k->appended, err));
        return append(k, data, len, err);
    }
    if (len > k->appended - off) { /* overlaps the end: the rest is appended */
        size_t in = (size_t)(k->appended - off);
        CAIRN_TRY(overwrite(k, off, data, in, err));
        return append(k, data + in, len - in, err);
    }
    return overwrite(k, off, data, len, err);
}

/* Sets a placement aside in the spool until the bytes before it are there. */
static cairn_status stash(cairn__sink *s, s3sink *k, uint64_t off, const void *data, size_t len,
                          cairn_error *err)
{
    if (!k->spooling) {
        CAIRN_TRY(cairn__spool_open(&k->spool, s, err));
        k->spooling = 1;
    }
    if (!CAIRN__GROW(k->pend, k->cap_pend, k->n_pend, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", k->url);
    uint64_t at = k->spool.len;
    CAIRN_TRY(cairn__spool_write(&k->spool, s, data, len, "(placed ahead)", err));
    size_t i = k->n_pend;
    while (i > 0 && k->pend[i - 1].off > off)
        i--;
    memmove(k->pend + i + 1, k->pend + i, (k->n_pend - i) * sizeof *k->pend);
    k->pend[i] = (pending){off, at, len};
    k->n_pend++;
    return CAIRN_OK;
}

/* Places waiting placements whose start has been reached (all of them
 * with `all`, zeros filling the gaps). */
static cairn_status drain(s3sink *k, int all, cairn_error *err)
{
    uint8_t *buf = NULL;
    cairn_status st = CAIRN_OK;
    while (st == CAIRN_OK && k->n_pend && (all || k->pend[0].off <= k->appended)) {
        pending p = k->pend[0];
        memmove(k->pend, k->pend + 1, (k->n_pend - 1) * sizeof *k->pend);
        k->n_pend--;
        if (!buf && !(buf = malloc(DRAIN_CHUNK)))
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", k->url);
        for (size_t done = 0; st == CAIRN_OK && done < p.len;) {
            size_t want = p.len - done < DRAIN_CHUNK ? p.len - done : DRAIN_CHUNK;
            ssize_t n = pread(k->spool.fd, buf, want, (off_t)(p.at + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                st = cairn__fail(err, CAIRN_E_IO, "%s: read of the placement spool failed: %s",
                                 k->url, n < 0 ? strerror(errno) : "unexpected end");
                break;
            }
            st = place(k, p.off + done, buf, (size_t)n, err);
            done += (size_t)n;
        }
    }
    free(buf);
    return st;
}

static cairn_status sink_write(cairn__sink *s, const void *data, size_t len, cairn_error *err)
{
    s3sink *k = s->backend_state;
    CAIRN_TRY(append(k, data, len, err));
    return k->n_pend ? drain(k, 0, err) : CAIRN_OK;
}

static cairn_status sink_pwrite(cairn__sink *s, uint64_t off, const void *data, size_t len,
                                cairn_error *err)
{
    s3sink *k = s->backend_state;
    if (k->failed != CAIRN_OK)
        return failed(k, err);
    if (off > k->appended && off - k->appended > SMALL_GAP)
        return stash(s, k, off, data, len, err);
    CAIRN_TRY(place(k, off, data, len, err));
    return drain(k, 0, err);
}

static cairn_status sink_extend(cairn__sink *s, uint64_t size, cairn_error *err)
{
    s3sink *k = s->backend_state;
    k->final_size = size;
    return CAIRN_OK;
}

static void sink_free(s3sink *k)
{
    for (int i = 0; i < IN_FLIGHT; i++) {
        slot_join(k, &k->slots[i]);
        free(k->slots[i].buf);
    }
    cairn__s3_upload_abort(k->up, NULL);
    cairn__s3_close(k->s3);
    if (k->stage_open)
        cairn__spool_close(&k->stage);
    if (k->spooling)
        cairn__spool_close(&k->spool);
    free(k->pend);
    free(k->first);
    free(k->cur);
    free(k->bucket);
    free(k->key);
    free(k->url);
    free(k);
}

static cairn_status sink_commit(cairn__sink *s, unsigned flags, cairn_error *err)
{
    s3sink *k = s->backend_state;
    s->backend_state = NULL;
    unsigned s3flags = (flags & CAIRN__COMMIT_NO_REPLACE) ? CAIRN__S3_CREATE_ONLY : 0;
    cairn_status st = drain(k, 1, err);
    if (st == CAIRN_OK && k->final_size > k->appended)
        st = append(k, NULL, k->final_size - k->appended, err);
    if (st == CAIRN_OK && !k->first && !k->up) {
        /* One part in all: one PUT. */
        st = cairn__s3_put(k->s3, k->bucket, k->key, k->cur ? k->cur : (const uint8_t *)"",
                           k->cur_len, s3flags, err);
        sink_free(k);
        return st;
    }
    if (st == CAIRN_OK && k->staging) {
        /* Within the threshold: part 1, the staged parts and the current one by one PUT. */
        if (k->cur_len)
            st = stage_part(k, err);
        if (st == CAIRN_OK)
            st = cairn__s3_put_file(k->s3, k->bucket, k->key, k->first, k->first_len,
                                    k->stage_open ? k->stage.fd : -1,
                                    k->stage_open ? k->stage.len : 0, s3flags, err);
        sink_free(k);
        return st;
    }
    unsigned last = k->part;
    if (st == CAIRN_OK && k->cur_len == 0)
        last--; /* the object ends exactly at a part boundary */
    if (st == CAIRN_OK && k->cur_len > 0) {
        st = submit(k, k->cur, k->cur_len, k->part, err);
        k->cur = NULL;
    }
    for (int i = 0; i < IN_FLIGHT; i++)
        slot_join(k, &k->slots[i]);
    if (st == CAIRN_OK && k->failed == CAIRN_OK && k->first_dirty)
        st = cairn__s3_upload_part(k->up, 1, k->first, k->first_len, err);
    if (st == CAIRN_OK && k->failed != CAIRN_OK)
        st = failed(k, err);
    if (st == CAIRN_OK) {
        st = cairn__s3_upload_complete(k->up, last, s3flags, err);
        k->up = NULL; /* complete frees it, aborting on failure */
    }
    sink_free(k);
    return st;
}

static void sink_discard(cairn__sink *s)
{
    if (s->backend_state)
        sink_free(s->backend_state);
    s->backend_state = NULL;
}

static const cairn__sink_backend s3_sink = {
    .scheme = "s3",
    .write = sink_write,
    .pwrite = sink_pwrite,
    .extend = sink_extend,
    .commit = sink_commit,
    .discard = sink_discard,
};

cairn_status cairn__remote_sink_open(cairn__sink *s, const char *url, cairn_error *err)
{
    cairn__sink_init_memory(s, url);
    s3sink *k = calloc(1, sizeof *k);
    if (!k || !(k->url = strdup(url))) {
        free(k);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", url);
    }
    cairn_status st = cairn__s3_open_url(url, 0, &k->s3, &k->bucket, &k->key, err);
    k->sink = s;
    k->threshold = k->s3 ? cairn__s3_multipart_threshold(k->s3) : 0;
    k->staging = k->threshold > part_size(1);
    k->part = 1;
    k->cur_cap = part_size(1);
    if (st == CAIRN_OK && !(k->cur = malloc(k->cur_cap)))
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", url);
    if (st != CAIRN_OK) {
        sink_free(k);
        return st;
    }
    s->backend = &s3_sink;
    s->backend_state = k;
    return CAIRN_OK;
}
