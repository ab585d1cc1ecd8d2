/* native_write.c -- streams payloads to the sink as they are added, keeps
 * only the index in memory, and writes index + metadata + trailer at the end.
 * Compressed tensors (1.1) are chunked and coded by chunks.c; their chunk
 * tables are kept in memory and laid out in the index. */
#include "format/format.h"
#include "format/native/chunks.h"
#include "common/value_internal.h"
#include "common/nameset.h"
#include "format/native/native.h"

#include <stdio.h>

#include <stdlib.h>
#include "common/hash.h"

typedef struct entry {
    char *name;
    uint32_t name_len;
    uint16_t dtype;
    uint8_t rank, align_log2;
    uint16_t flags;
    uint8_t codec, filter;
    uint64_t dims[CAIRN_MAX_RANK];
    uint64_t offset, size, checksum; /* size: stored bytes */
    uint64_t raw;
    /* compressed tensors: the chunk table, owned by the entry that is not
     * an alias, and its place in the table area of the index */
    uint8_t *table;
    uint64_t table_size, table_rel;
} entry;

typedef struct native_writer {
    entry *entries;
    size_t count, cap;
    uint64_t strings_size;
    uint64_t tables_size; /* chunk tables, laid out between strings and metadata */
    cairn__nameset names; /* duplicate checks and alias look-ups in O(1) */
    cairn_value *meta;
} native_writer;

static const char *entry_name(const void *ctx, uint32_t i, size_t *len)
{
    const entry *e = &((const native_writer *)ctx)->entries[i];
    *len = e->name_len;
    return e->name;
}

static int64_t lookup(const native_writer *nw, const char *name, size_t len)
{
    return cairn__nameset_find(&nw->names, name, len, entry_name, nw);
}

/* Appends a new entry (name copied) and indexes it. */
static cairn_status push_entry(cairn_writer *w, const entry *proto, const char *name,
                               cairn_error *err)
{
    native_writer *nw = w->state;
    size_t len = strlen(name);
    if (nw->count >= NATIVE_MAX_TENSORS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: more than %llu tensors", w->path,
                           (unsigned long long)NATIVE_MAX_TENSORS);
    if (nw->strings_size + len + 1 > NATIVE_MAX_STRINGS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor names exceed %llu bytes in total",
                           w->path, (unsigned long long)NATIVE_MAX_STRINGS);
    if (!CAIRN__GROW(nw->entries, nw->cap, nw->count, 8))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the index", w->path);
    entry *e = &nw->entries[nw->count];
    *e = *proto;
    e->name = malloc(len + 1);
    if (!e->name)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    memcpy(e->name, name, len + 1);
    e->name_len = (uint32_t)len;
    cairn_status st = cairn__nameset_insert(&nw->names, (uint32_t)nw->count, entry_name, nw, err);
    if (st != CAIRN_OK) {
        free(e->name);
        return st;
    }
    nw->count++;
    nw->strings_size += len + 1; /* each name is followed by a NUL */
    return CAIRN_OK;
}

static cairn_status nw_begin(cairn_writer *w, cairn_error *err)
{
    native_writer *nw = calloc(1, sizeof *nw);
    if (!nw)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    w->state = nw;
    uint8_t h[NATIVE_HEADER_SIZE] = {0};
    memcpy(h + HD_MAGIC, native_head_magic, 8);
    cairn__put16(h + HD_MAJOR, CAIRN_FORMAT_MAJOR);
    /* 1.0 until a compressed tensor makes it 1.1 (patched in nw_finish) */
    cairn__put16(h + HD_MINOR, NATIVE_MINOR_PLAIN);
    cairn__put32(h + HD_BOM, NATIVE_BOM);
    cairn__put32(h + HD_SIZE, NATIVE_HEADER_SIZE);
    return cairn__sink_write(&w->sink, h, sizeof h, err);
}

/* Writes the payload in pieces, hashing each piece just before it is
 * written, so the bytes are read from memory once and hashed in cache. */
static cairn_status write_hashed(cairn_writer *w, const uint8_t *data, uint64_t size,
                                 uint64_t *checksum, cairn_error *err)
{
    enum { PIECE = 1u << 20 };
    if (size <= PIECE) {
        *checksum = cairn__hash(data, (size_t)size);
        return cairn__sink_write(&w->sink, data, (size_t)size, err);
    }
    cairn__hasher *state = cairn__hasher_new();
    if (!state)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    cairn_status st = CAIRN_OK;
    for (uint64_t done = 0; done < size && st == CAIRN_OK;) {
        size_t n = size - done < PIECE ? (size_t)(size - done) : PIECE;
        cairn__hasher_update(state, data + done, n);
        st = cairn__sink_write(&w->sink, data + done, n, err);
        done += n;
    }
    *checksum = cairn__hasher_digest(state);
    cairn__hasher_free(state);
    return st;
}

static cairn_status sink_chunk(void *ctx, const uint8_t *data, size_t len, cairn_error *err)
{
    return cairn__sink_write(&((cairn_writer *)ctx)->sink, data, len, err);
}

/* Chunks, compresses and writes one tensor (chunks.c decides per chunk and
 * per tensor whether compression pays). */
static cairn_status write_coded(cairn_writer *w, entry *e, const char *name, const uint8_t *data,
                                uint32_t codec, int32_t level, uint32_t filter, cairn_error *err)
{
    size_t esize = cairn_dtype_size((cairn_dtype)e->dtype);
    cairn__chunk_plan plan = {.codec = codec, .level = level, .esize = esize,
                              .filter = esize > 1 ? filter : CAIRN_FILTER_NONE,
                              .chunk_size = w->chunk_size, .threads = w->threads};
    char what[CAIRN_NAME_MAX + 64];
    snprintf(what, sizeof what, "%s: tensor '%.*s'", w->path, 200, name);
    cairn__encoded enc;
    CAIRN_TRY(cairn__chunks_encode(&plan, data, e->raw, sink_chunk, w, what, &enc, err));
    e->size = enc.stored_size;
    e->checksum = enc.checksum;
    if (enc.compressed) {
        native_writer *nw = w->state;
        e->codec = (uint8_t)codec;
        e->filter = (uint8_t)plan.filter;
        e->table = enc.table;
        e->table_size = enc.table_size; /* 32 + 24 n: a multiple of 8 */
        e->table_rel = nw->tables_size;
    }
    return CAIRN_OK;
}

static cairn_status nw_add_coded(cairn_writer *w, const char *name, cairn_dtype dtype,
                                 uint32_t rank, const uint64_t *dims, const void *data,
                                 uint32_t codec, int32_t level, uint32_t filter, cairn_error *err)
{
    native_writer *nw = w->state;
    entry e = {0};
    e.dtype = (uint16_t)dtype;
    e.rank = (uint8_t)rank;
    e.align_log2 = (uint8_t)__builtin_ctzll(w->alignment);
    uint64_t size = cairn_dtype_size(dtype);
    for (uint32_t d = 0; d < rank; d++) {
        e.dims[d] = dims[d];
        size *= dims[d]; /* overflow was ruled out by cairn_writer_add */
    }
    CAIRN_TRY(cairn__sink_pad(&w->sink, w->alignment, err));
    e.offset = w->sink.pos;
    e.size = size;
    e.raw = size;
    if (codec != CAIRN_CODEC_NONE && size > 0)
        CAIRN_TRY(write_coded(w, &e, name, data, codec, level, filter, err));
    else
        CAIRN_TRY(write_hashed(w, data, size, &e.checksum, err));
    cairn_status st = push_entry(w, &e, name, err);
    if (st != CAIRN_OK)
        free(e.table);
    else
        nw->tables_size += e.table_size;
    return st;
}

static cairn_status nw_add(cairn_writer *w, const char *name, cairn_dtype dtype, uint32_t rank,
                           const uint64_t *dims, const void *data, cairn_error *err)
{
    return nw_add_coded(w, name, dtype, rank, dims, data, CAIRN_CODEC_NONE, 0, 0, err);
}

static cairn_status nw_add_alias(cairn_writer *w, const char *name, const char *existing,
                                 cairn_error *err)
{
    native_writer *nw = w->state;
    int64_t i = lookup(nw, existing, strlen(existing));
    if (i < 0)
        return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: alias '%s': no tensor '%s' was added",
                           w->path, name, existing);
    entry proto = nw->entries[i];
    proto.flags |= RC_FLAG_ALIAS;
    return push_entry(w, &proto, name, err);
}

static cairn_status nw_set_metadata(cairn_writer *w, cairn_value *tree, cairn_error *err)
{
    native_writer *nw = w->state;
    cairn_value_free(nw->meta);
    nw->meta = tree;
    return CAIRN_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return cairn__name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int sorted_exists(void *ctx, const char *name, size_t len)
{
    const native_writer *nw = ctx;
    return lookup(nw, name, len) >= 0;
}

static void put_record(uint8_t *r, const entry *e, uint32_t name_offset, uint64_t tables_at)
{
    memset(r, 0, NATIVE_RECORD_SIZE);
    cairn__put64(r + RC_DATA_OFFSET, e->offset);
    cairn__put64(r + RC_STORED_SIZE, e->size);
    cairn__put64(r + RC_RAW_SIZE, e->raw);
    cairn__put64(r + RC_CHECKSUM, e->checksum);
    cairn__put32(r + RC_NAME_OFFSET, name_offset);
    cairn__put32(r + RC_NAME_LEN, e->name_len);
    cairn__put16(r + RC_DTYPE, e->dtype);
    r[RC_RANK] = e->rank;
    r[RC_ALIGN_LOG2] = e->align_log2;
    cairn__put16(r + RC_FLAGS, e->flags);
    for (int d = 0; d < CAIRN_MAX_RANK; d++)
        cairn__put64(r + RC_DIMS + 8 * d, e->dims[d]);
    if (e->codec != CAIRN_CODEC_NONE) {
        r[RC_CODEC] = e->codec;
        r[RC_FILTER] = e->filter;
        cairn__put64(r + RC_CODEC_TABLE_OFFSET, tables_at + e->table_rel);
        cairn__put64(r + RC_CODEC_TABLE_SIZE, e->table_size);
    }
}

/* Lays out records, strings (padded to 8), chunk tables and metadata in one
 * buffer that will be written at `index_offset`. */
static cairn_status build_index(cairn_writer *w, uint64_t index_offset, const uint8_t *meta,
                                size_t meta_size, uint8_t **out, uint64_t *strings_rel,
                                uint64_t *meta_rel, uint64_t *total, cairn_error *err)
{
    native_writer *nw = w->state;
    uint64_t records = (uint64_t)nw->count * NATIVE_RECORD_SIZE;
    uint64_t strings_padded = (nw->strings_size + 7) & ~UINT64_C(7);
    uint64_t tables_rel = records + strings_padded;
    *strings_rel = records;
    *meta_rel = tables_rel + nw->tables_size;
    *total = *meta_rel + meta_size;
    if (*total > NATIVE_MAX_INDEX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: index of %llu bytes exceeds the 1 GiB limit",
                           w->path, (unsigned long long)*total);
    uint8_t *buf = calloc(1, *total ? (size_t)*total : 1);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for a %llu-byte index", w->path,
                           (unsigned long long)*total);
    uint64_t name_pos = 0;
    for (size_t i = 0; i < nw->count; i++) {
        const entry *e = &nw->entries[i];
        put_record(buf + i * NATIVE_RECORD_SIZE, e, (uint32_t)name_pos, index_offset + tables_rel);
        memcpy(buf + records + name_pos, e->name, e->name_len + 1);
        name_pos += e->name_len + 1;
        if (e->table && !(e->flags & RC_FLAG_ALIAS))
            memcpy(buf + tables_rel + e->table_rel, e->table, (size_t)e->table_size);
    }
    if (meta_size)
        memcpy(buf + *meta_rel, meta, meta_size);
    *out = buf;
    return CAIRN_OK;
}

static cairn_status nw_finish(cairn_writer *w, cairn_error *err)
{
    native_writer *nw = w->state;
    uint8_t *meta = NULL, *index = NULL;
    size_t meta_size = 0;
    uint64_t strings_rel, meta_rel, total;
    if (nw->meta && cairn_value_count(nw->meta) > 0)
        CAIRN_TRY(cairn__meta_encode(nw->meta, sorted_exists, nw, &meta, &meta_size, err));
    /* Sorting moves entries, which invalidates the name set: drop it. */
    if (nw->count > 1)
        qsort(nw->entries, nw->count, sizeof *nw->entries, entry_cmp);
    cairn__nameset_free(&nw->names);
    cairn_status st = cairn__sink_pad(&w->sink, 8, err);
    uint64_t index_offset = w->sink.pos;
    if (st == CAIRN_OK)
        st = build_index(w, index_offset, meta, meta_size, &index, &strings_rel, &meta_rel, &total,
                         err);
    free(meta);
    if (st != CAIRN_OK)
        return st;
    st = cairn__sink_write(&w->sink, index, (size_t)total, err);
    /* Any chunk table makes the file 1.1; the header said 1.0 so far. */
    uint16_t minor = nw->tables_size ? NATIVE_MINOR_EXTENDED : NATIVE_MINOR_PLAIN;
    if (st == CAIRN_OK && minor != NATIVE_MINOR_PLAIN) {
        uint8_t m[2];
        cairn__put16(m, minor);
        st = cairn__sink_patch(&w->sink, HD_MINOR, m, sizeof m, err);
    }
    uint8_t t[NATIVE_TRAILER_SIZE] = {0};
    cairn__put16(t + TR_MAJOR, CAIRN_FORMAT_MAJOR);
    cairn__put16(t + TR_MINOR, minor);
    cairn__put32(t + TR_BOM, NATIVE_BOM);
    cairn__put32(t + TR_SIZE, NATIVE_TRAILER_SIZE);
    cairn__put32(t + TR_RECORD_SIZE, NATIVE_RECORD_SIZE);
    cairn__put64(t + TR_COUNT, nw->count);
    cairn__put64(t + TR_INDEX_OFFSET, index_offset);
    cairn__put64(t + TR_STRINGS_OFFSET, index_offset + strings_rel);
    cairn__put64(t + TR_STRINGS_SIZE, nw->strings_size);
    cairn__put64(t + TR_META_OFFSET, index_offset + meta_rel);
    cairn__put64(t + TR_META_SIZE, meta_size);
    w->index_hash = cairn__hash(index, (size_t)total);
    w->has_index_hash = 1;
    cairn__put64(t + TR_INDEX_HASH, w->index_hash);
    cairn__put64(t + TR_HASH, cairn__hash(t, TR_HASH));
    memcpy(t + TR_END_MAGIC, native_end_magic, 8);
    free(index);
    if (st == CAIRN_OK)
        st = cairn__sink_write(&w->sink, t, sizeof t, err);
    return st;
}

static void nw_destroy(cairn_writer *w)
{
    native_writer *nw = w->state;
    for (size_t i = 0; i < nw->count; i++) {
        free(nw->entries[i].name);
        if (!(nw->entries[i].flags & RC_FLAG_ALIAS))
            free(nw->entries[i].table);
    }
    free(nw->entries);
    cairn__nameset_free(&nw->names);
    cairn_value_free(nw->meta);
    free(nw);
}

const cairn__writer_ops cairn__native_writer =
    CAIRN__WRITER_OPS(nw, CAIRN_FORMAT_NATIVE, .add_coded = nw_add_coded,
                      .add_alias = nw_add_alias, .set_metadata = nw_set_metadata);
