/* packed.c -- tensor records kept compactly (format.h, cairn__packed). A
 * record is its name (length, bytes, NUL), a mask of the cairn__tensor
 * fields that are not zero, those fields as LEB128 varints, and the
 * format's fixed-size tail. Records are appended to blocks that never move,
 * so a name handed out stays where it is until the store is freed. */
#include "format/format.h"

#include <stdlib.h>

#define PACKED_BLOCK ((size_t)64 << 10) /* bytes per block; a record always fits */
#define PACKED_RECORD_MAX (10 + CAIRN_NAME_MAX + 1 + 5 + 10 * (20 + CAIRN_MAX_RANK))

/* The fields, by their bit in the mask. */
enum {
    F_DTYPE, F_RANK, F_ELEMS, F_RAW, F_STORED, F_OFFSET, F_ALIGN, F_CODEC, F_HAS_SUM, F_SUM,
    F_ZERO_COPY, F_FILTER, F_LEVEL, F_CHUNK_SIZE, F_CHUNKS, F_BIG_ENDIAN, F_FORTRAN, F_VIA_LOAD,
    F_STORED_IS_RAW, /* stored_size == raw_size (and not 0): not written again */
    F_FIELDS
};

static uint8_t *put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Only ever reads what put wrote. */
static const uint8_t *get(const uint8_t *p, uint64_t *v)
{
    uint64_t x = 0;
    unsigned shift = 0;
    while (*p & 0x80) {
        x |= (uint64_t)(*p++ & 0x7F) << shift;
        shift += 7;
    }
    *v = x | (uint64_t)*p++ << shift;
    return p;
}

static uint64_t zigzag(int32_t v) { return v < 0 ? ((uint64_t)~(uint32_t)v << 1) | 1 : (uint64_t)v << 1; }
static int32_t unzigzag(uint64_t v) { return v & 1 ? (int32_t)~(uint32_t)(v >> 1) : (int32_t)(v >> 1); }

void cairn__packed_init(cairn__packed *p, size_t tail)
{
    memset(p, 0, sizeof *p);
    p->tail = tail;
}

void cairn__packed_free(cairn__packed *p)
{
    for (size_t b = 0; b < p->nblocks; b++)
        free(p->blocks[b]);
    free(p->blocks);
    free(p->at);
    memset(p, 0, sizeof *p);
}

/* Room for `need` more bytes at the end of the last block. */
static int reserve(cairn__packed *p, size_t need)
{
    if (p->nblocks && PACKED_BLOCK - p->used >= need)
        return 1;
    if (p->nblocks == p->blocks_cap) {
        size_t cap = p->blocks_cap ? p->blocks_cap * 2 : 8;
        uint8_t **b = realloc(p->blocks, cap * sizeof *b);
        if (!b)
            return 0;
        p->blocks = b;
        p->blocks_cap = cap;
    }
    uint8_t *blk = malloc(PACKED_BLOCK);
    if (!blk)
        return 0;
    p->blocks[p->nblocks++] = blk;
    p->used = 0;
    return 1;
}

cairn_status cairn__packed_add(cairn__packed *p, const cairn__tensor *t, const void *tail,
                               const char *path, cairn_error *err)
{
    const cairn_tensor_info *in = &t->info;
    if (in->name_len > CAIRN_NAME_MAX || in->rank > CAIRN_MAX_RANK)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor record past cairn's limits", path);
    if (p->count == p->cap) {
        uint64_t cap = p->cap ? p->cap * 2 : 64;
        uint64_t *at = realloc(p->at, (size_t)cap * sizeof *at);
        if (!at)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors", path,
                               (unsigned long long)cap);
        p->at = at;
        p->cap = cap;
    }
    if (!reserve(p, PACKED_RECORD_MAX + p->tail))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu tensors", path,
                           (unsigned long long)p->count + 1);
    uint64_t v[F_FIELDS] = {
        [F_DTYPE] = (uint64_t)in->dtype, [F_RANK] = in->rank, [F_ELEMS] = in->count,
        [F_RAW] = in->raw_size, [F_STORED] = in->stored_size, [F_OFFSET] = in->offset,
        [F_ALIGN] = in->alignment, [F_CODEC] = in->codec, [F_HAS_SUM] = (uint64_t)in->has_checksum,
        [F_SUM] = in->checksum, [F_ZERO_COPY] = (uint64_t)in->zero_copy, [F_FILTER] = in->filter,
        [F_LEVEL] = zigzag(in->level), [F_CHUNK_SIZE] = in->chunk_size,
        [F_CHUNKS] = in->chunk_count, [F_BIG_ENDIAN] = (uint64_t)t->big_endian,
        [F_FORTRAN] = (uint64_t)t->fortran_order, [F_VIA_LOAD] = (uint64_t)t->via_load,
    };
    if (in->stored_size && in->stored_size == in->raw_size) {
        v[F_STORED] = 0;
        v[F_STORED_IS_RAW] = 1;
    }
    uint64_t mask = 0;
    for (unsigned k = 0; k < F_FIELDS; k++)
        if (v[k])
            mask |= 1u << k;
    uint8_t *start = p->blocks[p->nblocks - 1] + p->used, *q = start;
    q = put(q, in->name_len);
    memcpy(q, in->name, in->name_len);
    q += in->name_len;
    *q++ = 0;
    q = put(q, mask);
    for (unsigned k = 0; k < F_FIELDS; k++) {
        if (!(mask >> k & 1) || k == F_STORED_IS_RAW)
            continue;
        q = put(q, v[k]);
        if (k == F_RANK)
            for (uint32_t d = 0; d < in->rank; d++)
                q = put(q, in->dims[d]);
    }
    if (p->tail)
        memcpy(q, tail, p->tail);
    q += p->tail;
    p->at[p->count++] = (uint64_t)(p->nblocks - 1) << 32 | p->used;
    p->used += (size_t)(q - start);
    return CAIRN_OK;
}

static const uint8_t *record(const cairn__packed *p, uint64_t i)
{
    return p->blocks[p->at[i] >> 32] + (uint32_t)p->at[i];
}

const char *cairn__packed_name(const cairn__packed *p, uint64_t i, size_t *len)
{
    uint64_t n;
    const uint8_t *q = get(record(p, i), &n);
    *len = (size_t)n;
    return (const char *)q;
}

/* Decodes record i into *out; returns where its tail starts. */
static const uint8_t *unpack(const cairn__packed *p, uint64_t i, cairn__tensor *out)
{
    uint64_t n, mask, v[F_FIELDS] = {0};
    memset(out, 0, sizeof *out);
    cairn_tensor_info *in = &out->info;
    const uint8_t *q = get(record(p, i), &n);
    in->name = (const char *)q;
    in->name_len = (size_t)n;
    q = get(q + n + 1, &mask);
    for (unsigned k = 0; k < F_FIELDS; k++) {
        if (!(mask >> k & 1) || k == F_STORED_IS_RAW)
            continue;
        q = get(q, &v[k]);
        if (k == F_RANK)
            for (uint32_t d = 0; d < v[k]; d++)
                q = get(q, &in->dims[d]);
    }
    in->dtype = (cairn_dtype)v[F_DTYPE];
    in->rank = (uint32_t)v[F_RANK];
    in->count = v[F_ELEMS];
    in->raw_size = v[F_RAW];
    in->stored_size = mask >> F_STORED_IS_RAW & 1 ? v[F_RAW] : v[F_STORED];
    in->offset = v[F_OFFSET];
    in->alignment = v[F_ALIGN];
    in->codec = (uint32_t)v[F_CODEC];
    in->has_checksum = (int)v[F_HAS_SUM];
    in->checksum = v[F_SUM];
    in->zero_copy = (int)v[F_ZERO_COPY];
    in->filter = (uint32_t)v[F_FILTER];
    in->level = unzigzag(v[F_LEVEL]);
    in->chunk_size = v[F_CHUNK_SIZE];
    in->chunk_count = v[F_CHUNKS];
    out->big_endian = (int)v[F_BIG_ENDIAN];
    out->fortran_order = (int)v[F_FORTRAN];
    out->via_load = (int)v[F_VIA_LOAD];
    return q;
}

void cairn__packed_get(const cairn__packed *p, uint64_t i, cairn__tensor *out)
{
    unpack(p, i, out);
}

void cairn__packed_tail(const cairn__packed *p, uint64_t i, void *out)
{
    cairn__tensor t;
    memcpy(out, unpack(p, i, &t), p->tail);
}
