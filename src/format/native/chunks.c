/* chunks.c -- chunk tables, and parallel chunk decoding and encoding for
 * compressed native tensors (chunks.h, docs/FORMAT.md §4.2). */
#include "format/format.h"
#include "common/hash.h"
#include "format/native/chunks.h"
#include "codec/codec.h"
#include "format/native/native.h"
#include "common/pool.h"
#include "codec/shuffle.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ the table */

static uint64_t entry_at(const cairn__chunked *c, uint64_t i)
{
    return c->table_offset + CT_HEADER_SIZE + i * CE_SIZE;
}

#define TFAIL(st, c, fmt, ...) \
    cairn__fail(err, st, "%s: tensor '%s': " fmt, (c)->path, (c)->name, __VA_ARGS__)

cairn_status cairn__chunks_check(cairn__chunked *c, uint64_t table_size, cairn_error *err)
{
    const uint8_t *t = c->table;
    if (table_size < CT_HEADER_SIZE)
        return TFAIL(CAIRN_E_CORRUPT, c, "chunk table at offset %llu: %llu bytes is shorter than "
                     "its %d-byte header", (unsigned long long)c->table_offset,
                     (unsigned long long)table_size, CT_HEADER_SIZE);
    uint64_t cs = cairn__le64(t + CT_CHUNK_SIZE), n = cairn__le64(t + CT_CHUNK_COUNT);
    if (cs > NATIVE_MAX_CHUNK)
        return TFAIL(CAIRN_E_LIMIT, c, "chunk table at offset %llu: chunk size %llu exceeds the "
                     "limit of %llu bytes", (unsigned long long)c->table_offset,
                     (unsigned long long)cs, (unsigned long long)NATIVE_MAX_CHUNK);
    if (cs < NATIVE_MIN_CHUNK || (cs & (cs - 1)))
        return TFAIL(CAIRN_E_CORRUPT, c, "chunk table at offset %llu: chunk size %llu is not a "
                     "power of two of at least %llu bytes", (unsigned long long)c->table_offset,
                     (unsigned long long)cs, (unsigned long long)NATIVE_MIN_CHUNK);
    for (int i = CT_LEVEL + 1; i < CT_HEADER_SIZE; i++)
        if (t[i])
            return TFAIL(CAIRN_E_CORRUPT, c, "chunk table at offset %llu: reserved byte %d is not "
                         "zero", (unsigned long long)c->table_offset, i);
    if (n > NATIVE_MAX_CHUNKS)
        return TFAIL(CAIRN_E_LIMIT, c, "chunk table at offset %llu: %llu chunks exceed the limit "
                     "of %llu", (unsigned long long)c->table_offset, (unsigned long long)n,
                     (unsigned long long)NATIVE_MAX_CHUNKS);
    /* raw_size > 0 for a compressed tensor (checked by the record rules) */
    uint64_t want = c->raw_size / cs + (c->raw_size % cs != 0);
    if (n != want)
        return TFAIL(CAIRN_E_CORRUPT, c, "chunk table at offset %llu: %llu chunks, but %llu raw "
                     "bytes in chunks of %llu need %llu", (unsigned long long)c->table_offset,
                     (unsigned long long)n, (unsigned long long)c->raw_size,
                     (unsigned long long)cs, (unsigned long long)want);
    if (table_size != CT_HEADER_SIZE + n * CE_SIZE)
        return TFAIL(CAIRN_E_CORRUPT, c, "chunk table at offset %llu: %llu bytes, but %llu chunks "
                     "take %llu", (unsigned long long)c->table_offset,
                     (unsigned long long)table_size, (unsigned long long)n,
                     (unsigned long long)(CT_HEADER_SIZE + n * CE_SIZE));
    uint64_t next = 0; /* where the next chunk must start, relative to data_offset */
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e = t + CT_HEADER_SIZE + i * CE_SIZE;
        uint64_t off = cairn__le64(e + CE_OFFSET);
        uint32_t stored = cairn__le32(e + CE_STORED), raw = cairn__le32(e + CE_RAW);
        uint64_t want_raw = i + 1 < n ? cs : c->raw_size - (n - 1) * cs;
        unsigned long long at = (unsigned long long)entry_at(c, i), ci = (unsigned long long)i;
        if (raw != want_raw)
            return TFAIL(CAIRN_E_CORRUPT, c, "chunk %llu (table entry at offset %llu): declares "
                         "%u raw bytes, but the tensor's chunking gives %llu", ci, at, raw,
                         (unsigned long long)want_raw);
        if (stored == 0 || stored > raw)
            return TFAIL(CAIRN_E_CORRUPT, c, "chunk %llu (table entry at offset %llu): stored size "
                         "%u is not 1 to its raw size %u", ci, at, stored, raw);
        if (off < next)
            return TFAIL(CAIRN_E_CORRUPT, c, "chunk %llu (table entry at offset %llu): starts at "
                         "payload byte %llu, overlapping chunk %llu, which ends at %llu", ci, at,
                         (unsigned long long)off, ci - 1, (unsigned long long)next);
        if (off > next)
            return TFAIL(CAIRN_E_CORRUPT, c, "chunk %llu (table entry at offset %llu): starts at "
                         "payload byte %llu, leaving a gap of %llu bytes after %s", ci, at,
                         (unsigned long long)off, (unsigned long long)(off - next),
                         i ? "the previous chunk" : "the payload's start");
        next += stored;
        if (next > c->stored_size)
            return TFAIL(CAIRN_E_CORRUPT, c, "chunk %llu (table entry at offset %llu): ends at "
                         "payload byte %llu, past the stored size %llu", ci, at,
                         (unsigned long long)next, (unsigned long long)c->stored_size);
    }
    if (next != c->stored_size)
        return TFAIL(CAIRN_E_CORRUPT, c, "chunk table at offset %llu: chunks hold %llu bytes, but "
                     "the record's stored size is %llu (a gap at the end)",
                     (unsigned long long)c->table_offset, (unsigned long long)next,
                     (unsigned long long)c->stored_size);
    c->chunk_size = cs;
    c->chunk_count = n;
    c->level = (int8_t)t[CT_LEVEL];
    return CAIRN_OK;
}

/* -------------------------------------------------------------- errors */

/* The failure of the lowest-numbered failing task wins, so a message does
 * not depend on thread timing. */
typedef struct first_error {
    pthread_mutex_t mu;
    atomic_int failed;
    size_t task;
    cairn_error err;
} first_error;

static void first_error_init(first_error *fe)
{
    pthread_mutex_init(&fe->mu, NULL);
    atomic_init(&fe->failed, 0);
    fe->task = SIZE_MAX;
    cairn__clear(&fe->err);
}

static void first_error_set(first_error *fe, size_t task, const cairn_error *e)
{
    pthread_mutex_lock(&fe->mu);
    if (task < fe->task) {
        fe->task = task;
        fe->err = *e;
    }
    atomic_store(&fe->failed, 1);
    pthread_mutex_unlock(&fe->mu);
}

static cairn_status first_error_done(first_error *fe, cairn_error *err)
{
    pthread_mutex_destroy(&fe->mu);
    if (!atomic_load(&fe->failed))
        return CAIRN_OK;
    if (err)
        *err = fe->err;
    return fe->err.status;
}

/* ------------------------------------------------------------- decoding */

typedef struct dec_worker {
    cairn__coder coder;
    uint8_t *stored;  /* chunk bytes read with pread (unmapped inputs) */
    uint8_t *decoded; /* a whole chunk, decoded */
    uint8_t *plain;   /* a whole chunk, unshuffled (partial chunks only) */
} dec_worker;

typedef struct dec_job {
    const cairn_file *f;
    const cairn__chunked *c;
    uint64_t lo, hi, first_chunk;
    uint8_t *dst;
    dec_worker *w;
    first_error fe;
} dec_job;

static const char *result_text(cairn__codec_result r)
{
    switch (r) {
    case CAIRN__CODEC_OVERFLOW: return "decodes to more bytes than its declared raw size";
    case CAIRN__CODEC_SHORT: return "decodes to fewer bytes than its declared raw size";
    case CAIRN__CODEC_TRAILING: return "has bytes after the end of its compressed stream";
    case CAIRN__CODEC_MALFORMED: return "is not a valid compressed stream";
    case CAIRN__CODEC_NOMEM: return "cannot be decoded: out of memory";
    default: return "cannot be decoded";
    }
}

static int grow(uint8_t **buf, uint64_t size)
{
    if (!*buf)
        *buf = malloc(size ? (size_t)size : 1);
    return *buf != NULL;
}

/* One chunk: fetch, check, decode, and copy the part in [lo, hi). */
static cairn_status decode_chunk(dec_job *j, dec_worker *w, uint64_t k, cairn_error *err)
{
    const cairn__chunked *c = j->c;
    const uint8_t *e = c->table + CT_HEADER_SIZE + k * CE_SIZE;
    uint64_t off = c->data_offset + cairn__le64(e + CE_OFFSET);
    uint32_t stored = cairn__le32(e + CE_STORED), raw = cairn__le32(e + CE_RAW);
    uint64_t start = k * c->chunk_size; /* raw offset of the chunk */
    uint64_t from = j->lo > start ? j->lo : start, to = j->hi < start + raw ? j->hi : start + raw;
    unsigned long long ck = (unsigned long long)k, fo = (unsigned long long)off;
    const uint8_t *src = cairn__file_ptr(j->f, off, stored);
    if (!src) {
        if (!grow(&w->stored, c->chunk_size))
            return TFAIL(CAIRN_E_NOMEM, c, "chunk %llu at offset %llu: out of memory", ck, fo);
        CAIRN_TRY(cairn__file_read(j->f, off, w->stored, stored, err));
        src = w->stored;
    }
    uint64_t sum = cairn__hash(src, stored);
    if (sum != cairn__le64(e + CE_CHECKSUM))
        return TFAIL(CAIRN_E_CHECKSUM, c, "chunk %llu (%u bytes at offset %llu): checksum mismatch "
                     "(stored %016llx, computed %016llx)", ck, stored, fo,
                     (unsigned long long)cairn__le64(e + CE_CHECKSUM), (unsigned long long)sum);
    uint8_t *out = j->dst ? j->dst + (from - j->lo) : NULL;
    if (stored == raw) { /* stored raw: neither filter nor codec applies */
        if (out)
            memcpy(out, src + (from - start), (size_t)(to - from));
        return CAIRN_OK;
    }
    int whole = out && from == start && to == start + raw;
    int shuffled = c->filter == CAIRN_FILTER_SHUFFLE && c->esize > 1;
    uint8_t *into = whole && !shuffled ? out : NULL;
    if (!into) {
        if (!grow(&w->decoded, c->chunk_size))
            return TFAIL(CAIRN_E_NOMEM, c, "chunk %llu at offset %llu: out of memory", ck, fo);
        into = w->decoded;
    }
    char why[128];
    cairn__codec_result r = cairn__codec_decompress(&w->coder, c->codec, src, stored, into, raw,
                                                    why, sizeof why);
    if (r != CAIRN__CODEC_OK)
        return TFAIL(r == CAIRN__CODEC_NOMEM ? CAIRN_E_NOMEM : CAIRN_E_CORRUPT, c,
                     "chunk %llu (%u bytes at offset %llu, %u raw bytes declared): %s stream %s%s%s%s",
                     ck, stored, fo, raw, cairn_codec_name(c->codec), result_text(r),
                     why[0] ? " (" : "", why, why[0] ? ")" : "");
    if (!out)
        return CAIRN_OK;
    if (shuffled && whole) {
        cairn__unshuffle(into, out, raw, c->esize);
    } else if (shuffled) {
        if (!grow(&w->plain, c->chunk_size))
            return TFAIL(CAIRN_E_NOMEM, c, "chunk %llu at offset %llu: out of memory", ck, fo);
        cairn__unshuffle(into, w->plain, raw, c->esize);
        memcpy(out, w->plain + (from - start), (size_t)(to - from));
    } else if (into != out) {
        memcpy(out, into + (from - start), (size_t)(to - from));
    }
    return CAIRN_OK;
}

static void decode_task(void *ctx, unsigned worker, size_t task)
{
    dec_job *j = ctx;
    if (atomic_load_explicit(&j->fe.failed, memory_order_relaxed))
        return; /* a chunk already failed: the read fails, stop early */
    cairn_error e;
    if (decode_chunk(j, &j->w[worker], j->first_chunk + task, &e) != CAIRN_OK)
        first_error_set(&j->fe, task, &e);
}

cairn_status cairn__chunks_read(const cairn_file *f, const cairn__chunked *c, uint64_t lo,
                                uint64_t hi, uint8_t *dst, unsigned threads, cairn_error *err)
{
    if (lo >= hi)
        return CAIRN_OK;
    dec_job j = {.f = f, .c = c, .lo = lo, .hi = hi, .dst = dst};
    j.first_chunk = lo / c->chunk_size;
    uint64_t chunks = (hi - 1) / c->chunk_size - j.first_chunk + 1;
    unsigned workers = cairn__pool_workers(threads, (size_t)chunks);
    j.w = calloc(workers, sizeof *j.w);
    if (!j.w)
        return TFAIL(CAIRN_E_NOMEM, c, "out of memory for %u decoding workers", workers);
    first_error_init(&j.fe);
    cairn__pool_run(workers, (size_t)chunks, decode_task, &j);
    for (unsigned i = 0; i < workers; i++) {
        cairn__coder_free(&j.w[i].coder);
        free(j.w[i].stored);
        free(j.w[i].decoded);
        free(j.w[i].plain);
    }
    free(j.w);
    return first_error_done(&j.fe, err);
}

/* ------------------------------------------------------------- encoding */

/* Batches hold at most this many raw bytes of chunks in flight (twice: one
 * batch compresses while the previous one is written). */
#define BATCH_BYTES (UINT64_C(32) << 20)

typedef struct enc_slot {
    uint8_t *buf;      /* compressed bytes (cap: the codec's bound for a chunk) */
    size_t len;        /* compressed length, or 0 when stored raw */
    uint64_t checksum; /* of the stored bytes */
} enc_slot;

typedef struct enc_worker {
    cairn__coder coder;
    uint8_t *shuffled;
} enc_worker;

typedef struct enc_job {
    const cairn__chunk_plan *p;
    const uint8_t *data;
    uint64_t raw_size, n;
    uint64_t first; /* chunk number of slot 0 */
    enc_slot *slots;
    enc_worker *w;
    const char *what;
    first_error fe;
    cairn__pool_job pool;
    int sync; /* one worker: the batch ran on the calling thread */
} enc_job;

static void encode_task(void *ctx, unsigned worker, size_t task)
{
    enc_job *j = ctx;
    enc_worker *w = &j->w[worker];
    enc_slot *s = &j->slots[task];
    uint64_t k = j->first + task, start = k * j->p->chunk_size;
    size_t raw = (size_t)(k + 1 < j->n ? j->p->chunk_size : j->raw_size - start);
    const uint8_t *src = j->data + start;
    s->len = 0;
    if (j->p->filter == CAIRN_FILTER_SHUFFLE && j->p->esize > 1) {
        if (!grow(&w->shuffled, j->p->chunk_size))
            goto nomem;
        cairn__shuffle(src, w->shuffled, raw, j->p->esize);
        src = w->shuffled;
    }
    size_t cap = cairn__codec_bound(j->p->codec, (size_t)j->p->chunk_size);
    if (!grow(&s->buf, cap))
        goto nomem;
    size_t len = 0;
    cairn__codec_result r = cairn__codec_compress(&w->coder, j->p->codec, j->p->level, src, raw,
                                                  s->buf, cap, &len);
    if (r == CAIRN__CODEC_NOMEM)
        goto nomem;
    s->len = r == CAIRN__CODEC_OK ? len : 0;
    s->checksum = s->len ? cairn__hash(s->buf, s->len) : cairn__hash(j->data + start, raw);
    return;
nomem:;
    cairn_error e;
    cairn__fail(&e, CAIRN_E_NOMEM, "%s: chunk %llu: out of memory while compressing", j->what,
                (unsigned long long)k);
    first_error_set(&j->fe, task, &e);
}

typedef struct encoder {
    const cairn__chunk_plan *p;
    const uint8_t *data;
    uint64_t raw_size, n, batch;
    unsigned workers;
    enc_job job[2];
    enc_worker *w;
    uint8_t *table;
    uint64_t table_size, pos; /* stored bytes emitted so far */
    uint64_t compressed;      /* chunks that were stored compressed */
    cairn__hasher *hash;
} encoder;

/* Emits the stored bytes of one batch, in order, and fills its table rows. */
static cairn_status emit_batch(encoder *en, enc_job *j, uint64_t count, cairn__chunk_sink sink,
                               void *sink_ctx, cairn_error *err)
{
    for (uint64_t i = 0; i < count; i++) {
        const enc_slot *s = &j->slots[i];
        uint64_t k = j->first + i, start = k * en->p->chunk_size;
        uint64_t raw = k + 1 < en->n ? en->p->chunk_size : en->raw_size - start;
        const uint8_t *bytes = s->len ? s->buf : en->data + start;
        size_t len = s->len ? s->len : (size_t)raw;
        uint8_t *row = en->table + CT_HEADER_SIZE + k * CE_SIZE;
        cairn__put64(row + CE_OFFSET, en->pos);
        cairn__put32(row + CE_STORED, (uint32_t)len);
        cairn__put32(row + CE_RAW, (uint32_t)raw);
        cairn__put64(row + CE_CHECKSUM, s->checksum);
        cairn__hasher_update(en->hash, bytes, len);
        CAIRN_TRY(sink(sink_ctx, bytes, len, err));
        en->pos += len;
        en->compressed += s->len != 0;
    }
    return CAIRN_OK;
}

static void encoder_free(encoder *en)
{
    for (int b = 0; b < 2; b++) {
        for (uint64_t i = 0; en->job[b].slots && i < en->batch; i++)
            free(en->job[b].slots[i].buf);
        free(en->job[b].slots);
    }
    for (unsigned i = 0; en->w && i < en->workers; i++) {
        cairn__coder_free(&en->w[i].coder);
        free(en->w[i].shuffled);
    }
    free(en->w);
    free(en->table);
    cairn__hasher_free(en->hash);
}

static void start_batch(encoder *en, int b, uint64_t first, const char *what)
{
    enc_job *j = &en->job[b];
    j->p = en->p;
    j->data = en->data;
    j->raw_size = en->raw_size;
    j->n = en->n;
    j->first = first;
    j->w = en->w;
    j->what = what;
    first_error_init(&j->fe);
    uint64_t count = en->n - first < en->batch ? en->n - first : en->batch;
    /* One worker means no thread at all (cairn_write_opts.threads = 1);
     * more overlap the batch's compression with writing the previous one. */
    j->sync = en->workers == 1;
    if (j->sync)
        cairn__pool_run(1, (size_t)count, encode_task, j);
    else
        cairn__pool_start(&j->pool, en->workers, (size_t)count, encode_task, j);
}

static cairn_status join_batch(encoder *en, int b, cairn_error *err)
{
    enc_job *j = &en->job[b];
    if (!j->sync)
        cairn__pool_join(&j->pool);
    return first_error_done(&j->fe, err);
}

cairn_status cairn__chunks_encode(const cairn__chunk_plan *p, const uint8_t *data,
                                  uint64_t raw_size, cairn__chunk_sink sink, void *sink_ctx,
                                  const char *what, cairn__encoded *out, cairn_error *err)
{
    memset(out, 0, sizeof *out);
    encoder en = {.p = p, .data = data, .raw_size = raw_size};
    en.n = raw_size / p->chunk_size + (raw_size % p->chunk_size != 0);
    if (en.n > NATIVE_MAX_CHUNKS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: %llu chunks of %llu bytes exceed the limit of "
                           "%llu chunks per tensor; use a larger chunk size", what,
                           (unsigned long long)en.n, (unsigned long long)p->chunk_size,
                           (unsigned long long)NATIVE_MAX_CHUNKS);
    en.workers = cairn__pool_workers(p->threads, (size_t)en.n);
    uint64_t per_batch = BATCH_BYTES / p->chunk_size;
    en.batch = 4 * (uint64_t)en.workers;
    if (en.batch > per_batch)
        en.batch = per_batch > en.workers ? per_batch : en.workers;
    if (en.batch > en.n)
        en.batch = en.n;
    en.table_size = CT_HEADER_SIZE + en.n * CE_SIZE;
    en.table = calloc(1, (size_t)en.table_size);
    en.w = calloc(en.workers, sizeof *en.w);
    en.hash = cairn__hasher_new();
    int ok = en.table && en.w && en.hash;
    for (int b = 0; ok && b < 2; b++)
        ok = (en.job[b].slots = calloc((size_t)en.batch, sizeof(enc_slot))) != NULL;
    if (!ok) {
        encoder_free(&en);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for compression buffers", what);
    }
    cairn_status st = CAIRN_OK;
    uint64_t batches = (en.n + en.batch - 1) / en.batch;
    start_batch(&en, 0, 0, what);
    for (uint64_t b = 0; b < batches; b++) {
        int cur = (int)(b & 1);
        cairn_status js = join_batch(&en, cur, err);
        if (st == CAIRN_OK)
            st = js;
        if (st == CAIRN_OK && b + 1 < batches)
            start_batch(&en, !cur, (b + 1) * en.batch, what);
        else if (b + 1 < batches)
            break; /* failed: nothing more is started, nothing is in flight */
        uint64_t count = en.n - b * en.batch < en.batch ? en.n - b * en.batch : en.batch;
        if (st == CAIRN_OK && batches == 1) {
            /* The whole tensor is in hand: store it raw unless compression
             * saves more than its table costs. */
            uint64_t total = 0;
            for (uint64_t i = 0; i < count; i++)
                total += en.job[0].slots[i].len ? en.job[0].slots[i].len
                         : (i + 1 < en.n ? p->chunk_size : raw_size - i * p->chunk_size);
            if (total + en.table_size >= raw_size) {
                for (uint64_t i = 0; i < count; i++)
                    en.job[0].slots[i].len = 0;
            }
        }
        if (st == CAIRN_OK)
            st = emit_batch(&en, &en.job[cur], count, sink, sink_ctx, err);
        if (st != CAIRN_OK && b + 1 < batches) {
            /* the next batch is compressing: wait for it before freeing */
            join_batch(&en, !cur, NULL);
            break;
        }
    }
    if (st == CAIRN_OK) {
        out->stored_size = en.pos;
        out->checksum = cairn__hasher_digest(en.hash);
        out->compressed = en.compressed > 0;
        if (out->compressed) {
            cairn__put64(en.table + CT_CHUNK_SIZE, p->chunk_size);
            cairn__put64(en.table + CT_CHUNK_COUNT, en.n);
            int32_t lo, hi, def;
            cairn__codec_levels(p->codec, &lo, &hi, &def);
            en.table[CT_LEVEL] = (uint8_t)(p->level ? p->level : def);
            out->table = en.table;
            out->table_size = en.table_size;
            en.table = NULL;
        }
    }
    encoder_free(&en);
    return st;
}
