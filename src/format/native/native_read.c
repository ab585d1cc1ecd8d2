/* native_read.c -- opens a .cairn file: checks the header, the trailer and
 * every index record with its chunk table (docs/FORMAT.md §2-4, §7), then
 * answers queries by binary search over the mapped records. Compressed
 * tensors are decoded by chunks.c; signatures are checked by native_sig.c. */
#include "format/format.h"
#include "common/hash.h"
#include "format/native/chunks.h"
#include "codec/codec.h"
#include "format/native/native_sig.h"
#include "common/value_internal.h"
#include "format/native/native.h"

#include <stdlib.h>

typedef struct native_reader {
    uint16_t major, minor;
    uint64_t count, record_size;
    uint64_t index_offset, strings_offset, strings_size, meta_offset, meta_size;
    uint64_t sig_offset, sig_size;
    const uint8_t *index;   /* [index_offset, meta_offset + meta_size) */
    uint8_t *index_heap;    /* owns `index` when the file is not mapped */
    uint64_t payload_bytes; /* stored bytes, aliases counted once */
    uint64_t raw_bytes;     /* raw bytes, aliases counted once */
    uint64_t compressed;    /* records with a codec */
    uint64_t max_align;
} native_reader;

#define FAIL(f, fmt, ...) cairn__fail(err, CAIRN_E_CORRUPT, "%s: " fmt, (f)->path, __VA_ARGS__)

static const uint8_t *record(const native_reader *nr, uint64_t i)
{
    return nr->index + i * nr->record_size;
}

static const char *record_name(const native_reader *nr, const uint8_t *r, size_t *len)
{
    *len = cairn__le32(r + RC_NAME_LEN);
    return (const char *)nr->index + (nr->strings_offset - nr->index_offset) +
           cairn__le32(r + RC_NAME_OFFSET);
}

static cairn_status check_header(cairn_file *f, const uint8_t *h, cairn_error *err)
{
    if (memcmp(h + HD_MAGIC, native_head_magic, 8) != 0)
        return cairn__fail(err, CAIRN_E_FORMAT, "%s: not a cairn file (bad magic at offset 0)",
                           f->path);
    uint16_t major = cairn__le16(h + HD_MAJOR), minor = cairn__le16(h + HD_MINOR);
    if (major > CAIRN_FORMAT_MAJOR)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: format %u.%u is newer than this reader "
                           "(%d.x)", f->path, major, minor, CAIRN_FORMAT_MAJOR);
    if (major != CAIRN_FORMAT_MAJOR)
        return FAIL(f, "header at offset %d: unknown major version %u", HD_MAJOR, major);
    uint32_t bom = cairn__le32(h + HD_BOM);
    if (bom != NATIVE_BOM)
        return FAIL(f, "header at offset %d: byte-order mark %08x is not 01020304 (%s)", HD_BOM,
                    bom, bom == 0x04030201u ? "big-endian file" : "damaged");
    /* A later minor version may grow the header; 1.0 has exactly 64 bytes. */
    uint32_t hsize = cairn__le32(h + HD_SIZE);
    if (hsize < NATIVE_HEADER_SIZE || (minor <= CAIRN_FORMAT_MINOR && hsize != NATIVE_HEADER_SIZE))
        return FAIL(f, "header at offset %d: header size %u is not %d", HD_SIZE, hsize,
                    NATIVE_HEADER_SIZE);
    return CAIRN_OK;
}

/* Trailer checks: hash, versions, and that every section lies in order
 * inside the file. Offsets named in messages are file offsets. */
static cairn_status check_trailer(cairn_file *f, native_reader *nr, const uint8_t *t,
                                  const uint8_t *h, cairn_error *err)
{
    uint64_t tpos = f->src.size - NATIVE_TRAILER_SIZE;
    if (memcmp(t + TR_END_MAGIC, native_end_magic, 8) != 0)
        return FAIL(f, "no end marker at offset %llu: the file is truncated or was never "
                    "completed", (unsigned long long)(tpos + TR_END_MAGIC));
    uint64_t hash = cairn__le64(t + TR_HASH);
    if (cairn__hash(t, TR_HASH) != hash)
        return cairn__fail(err, CAIRN_E_CHECKSUM, "%s: trailer at offset %llu: checksum mismatch",
                           f->path, (unsigned long long)tpos);
    nr->major = cairn__le16(t + TR_MAJOR);
    nr->minor = cairn__le16(t + TR_MINOR);
    if (nr->major != cairn__le16(h + HD_MAJOR) || nr->minor != cairn__le16(h + HD_MINOR))
        return FAIL(f, "trailer at offset %llu: version %u.%u differs from the header's",
                    (unsigned long long)tpos, nr->major, nr->minor);
    if (cairn__le32(t + TR_BOM) != NATIVE_BOM || cairn__le32(t + TR_SIZE) != NATIVE_TRAILER_SIZE)
        return FAIL(f, "trailer at offset %llu: bad byte-order mark or trailer size",
                    (unsigned long long)tpos);
    nr->record_size = cairn__le32(t + TR_RECORD_SIZE);
    nr->count = cairn__le64(t + TR_COUNT);
    nr->index_offset = cairn__le64(t + TR_INDEX_OFFSET);
    nr->strings_offset = cairn__le64(t + TR_STRINGS_OFFSET);
    nr->strings_size = cairn__le64(t + TR_STRINGS_SIZE);
    nr->meta_offset = cairn__le64(t + TR_META_OFFSET);
    nr->meta_size = cairn__le64(t + TR_META_SIZE);
    nr->sig_offset = cairn__le64(t + TR_SIG_OFFSET);
    nr->sig_size = cairn__le64(t + TR_SIG_SIZE);

    if (nr->record_size < NATIVE_RECORD_SIZE || nr->record_size > NATIVE_MAX_RECORD_SIZE)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: trailer: record size %llu outside [128, 4096]",
                           f->path, (unsigned long long)nr->record_size);
    if (nr->count > NATIVE_MAX_TENSORS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: trailer: %llu tensors exceed the limit of %llu",
                           f->path, (unsigned long long)nr->count,
                           (unsigned long long)NATIVE_MAX_TENSORS);
    if (nr->strings_size > NATIVE_MAX_STRINGS || nr->meta_size > CAIRN_META_MAX_SIZE)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: trailer: string table (%llu bytes) or metadata "
                           "(%llu bytes) exceeds 256 MiB", f->path,
                           (unsigned long long)nr->strings_size, (unsigned long long)nr->meta_size);
    if (nr->sig_size > NATIVE_MAX_SIG)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: trailer: signature block of %llu bytes exceeds "
                           "1 MiB", f->path, (unsigned long long)nr->sig_size);
    uint32_t hsize = cairn__le32(h + HD_SIZE);
    /* count * record_size <= 2^22 * 4096 cannot overflow; the sums can. */
    uint64_t records_end, strings_end, meta_end, sig_end;
    if (nr->index_offset < hsize || nr->index_offset % 8 ||
        cairn__add_overflow(nr->index_offset, nr->count * nr->record_size, &records_end) ||
        records_end > nr->strings_offset ||
        cairn__add_overflow(nr->strings_offset, nr->strings_size, &strings_end) ||
        strings_end > nr->meta_offset ||
        cairn__add_overflow(nr->meta_offset, nr->meta_size, &meta_end) || meta_end > tpos)
        return FAIL(f, "trailer at offset %llu: index sections out of order or past the end "
                    "(index %llu, strings %llu+%llu, metadata %llu+%llu, trailer %llu)",
                    (unsigned long long)tpos, (unsigned long long)nr->index_offset,
                    (unsigned long long)nr->strings_offset, (unsigned long long)nr->strings_size,
                    (unsigned long long)nr->meta_offset, (unsigned long long)nr->meta_size,
                    (unsigned long long)tpos);
    if (nr->sig_size && (nr->sig_offset < meta_end ||
                         cairn__add_overflow(nr->sig_offset, nr->sig_size, &sig_end) ||
                         sig_end > tpos))
        return FAIL(f, "trailer at offset %llu: signature block %llu+%llu out of bounds",
                    (unsigned long long)tpos, (unsigned long long)nr->sig_offset,
                    (unsigned long long)nr->sig_size);
    if (meta_end - nr->index_offset > NATIVE_MAX_INDEX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: index region of %llu bytes exceeds 1 GiB",
                           f->path, (unsigned long long)(meta_end - nr->index_offset));
    return CAIRN_OK;
}

/* The chunked view of record r (a known codec). The table's position must
 * have been checked; its contents are read only when `checked` (open has
 * run cairn__chunks_check on it). */
static void record_chunked(const cairn_file *f, const native_reader *nr, const uint8_t *r,
                           const char *name, int checked, cairn__chunked *c)
{
    memset(c, 0, sizeof *c);
    c->path = f->path;
    c->name = name;
    c->codec = r[RC_CODEC];
    c->filter = r[RC_FILTER];
    c->esize = cairn_dtype_size((cairn_dtype)cairn__le16(r + RC_DTYPE));
    c->data_offset = cairn__le64(r + RC_DATA_OFFSET);
    c->stored_size = cairn__le64(r + RC_STORED_SIZE);
    c->raw_size = cairn__le64(r + RC_RAW_SIZE);
    c->table_offset = cairn__le64(r + RC_CODEC_TABLE_OFFSET);
    c->table = nr->index + (c->table_offset - nr->index_offset);
    if (checked) {
        c->chunk_size = cairn__le64(c->table + CT_CHUNK_SIZE);
        c->chunk_count = cairn__le64(c->table + CT_CHUNK_COUNT);
        c->level = (int8_t)c->table[CT_LEVEL];
    }
}

/* docs/FORMAT.md §4 rule 7 and §4.2: a compressed tensor's table lies in the
 * index between the string table and the metadata, and describes chunks
 * that tile the stored bytes exactly. */
static cairn_status check_coded(cairn_file *f, native_reader *nr, const uint8_t *r, uint64_t at,
                                const char *shown, cairn_error *err)
{
    uint64_t raw = cairn__le64(r + RC_RAW_SIZE);
    uint64_t toff = cairn__le64(r + RC_CODEC_TABLE_OFFSET), tsize = cairn__le64(r + RC_CODEC_TABLE_SIZE);
    uint64_t area = nr->strings_offset + nr->strings_size, tend;
    if (raw == 0)
        return FAIL(f, "tensor '%s' (record at offset %llu): an empty tensor cannot be compressed "
                    "(codec %u)", shown, (unsigned long long)at, r[RC_CODEC]);
    if (toff % 8 || toff < area || cairn__add_overflow(toff, tsize, &tend) || tend > nr->meta_offset)
        return FAIL(f, "tensor '%s' (record at offset %llu): chunk table %llu+%llu is not 8-aligned "
                    "inside [%llu, %llu), between the string table and the metadata", shown,
                    (unsigned long long)(at + RC_CODEC_TABLE_OFFSET), (unsigned long long)toff,
                    (unsigned long long)tsize, (unsigned long long)area,
                    (unsigned long long)nr->meta_offset);
    cairn__chunked c;
    record_chunked(f, nr, r, shown, 0, &c);
    return cairn__chunks_check(&c, tsize, err);
}

/* docs/FORMAT.md §4 rules 1-6 for record i; `prev` is the previous name. */
static cairn_status check_record(cairn_file *f, native_reader *nr, uint64_t i, const char **prev,
                                 size_t *prev_len, cairn_error *err)
{
    const uint8_t *r = record(nr, i);
    uint64_t at = nr->index_offset + i * nr->record_size;
    uint32_t noff = cairn__le32(r + RC_NAME_OFFSET), nlen = cairn__le32(r + RC_NAME_LEN);
    if ((uint64_t)noff + nlen >= nr->strings_size || nlen == 0 || nlen > CAIRN_NAME_MAX)
        return FAIL(f, "tensor record %llu at offset %llu: name (offset %u, length %u) outside the "
                    "string table (%llu bytes) or not 1..4096 bytes", (unsigned long long)i,
                    (unsigned long long)at, noff, nlen, (unsigned long long)nr->strings_size);
    size_t len;
    const char *name = record_name(nr, r, &len);
    if (name[len] != '\0')
        return FAIL(f, "tensor record %llu at offset %llu: name is not followed by a NUL byte",
                    (unsigned long long)i, (unsigned long long)at);
    char shown[96];
    cairn__printable(name, len, shown, sizeof shown);
    if (memchr(name, 0, len) || !cairn__utf8_valid(name, len))
        return FAIL(f, "tensor record %llu at offset %llu: name '%s' is not valid UTF-8 without NUL",
                    (unsigned long long)i, (unsigned long long)at, shown);
    int order = *prev ? cairn__name_cmp(*prev, *prev_len, name, len) : -1;
    if (order >= 0)
        return FAIL(f, "tensor record %llu at offset %llu: name '%s' is %s the previous one",
                    (unsigned long long)i, (unsigned long long)at, shown,
                    order ? "sorted before" : "a duplicate of");
    *prev = name;
    *prev_len = len;
    uint16_t dtype = cairn__le16(r + RC_DTYPE);
    unsigned rank = r[RC_RANK], align_log2 = r[RC_ALIGN_LOG2], codec = r[RC_CODEC];
    size_t esize = dtype < CAIRN_DTYPE_COUNT ? cairn_dtype_size((cairn_dtype)dtype) : 0;
    if (esize == 0)
        return FAIL(f, "tensor '%s' (record at offset %llu): unknown dtype code %u", shown,
                    (unsigned long long)(at + RC_DTYPE), dtype);
    if (rank > CAIRN_MAX_RANK)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s' (record at offset %llu): rank %u "
                           "exceeds 8", f->path, shown, (unsigned long long)(at + RC_RANK), rank);
    uint64_t bytes = esize;
    for (unsigned d = 0; d < CAIRN_MAX_RANK; d++) {
        uint64_t dim = cairn__le64(r + RC_DIMS + 8 * d);
        if (d >= rank && dim != 0)
            return FAIL(f, "tensor '%s' (record at offset %llu): dims[%u] = %llu beyond rank %u",
                        shown, (unsigned long long)(at + RC_DIMS + 8 * d), d,
                        (unsigned long long)dim, rank);
        if (d < rank && cairn__mul_overflow(bytes, dim, &bytes))
            return FAIL(f, "tensor '%s' (record at offset %llu): shape overflows 64 bits", shown,
                        (unsigned long long)at);
    }
    uint64_t raw = cairn__le64(r + RC_RAW_SIZE), stored = cairn__le64(r + RC_STORED_SIZE);
    if (raw != bytes)
        return FAIL(f, "tensor '%s' (record at offset %llu): raw size %llu, but shape x dtype "
                    "gives %llu", shown, (unsigned long long)(at + RC_RAW_SIZE),
                    (unsigned long long)raw, (unsigned long long)bytes);
    if (codec == CAIRN_CODEC_NONE && (stored != raw || r[RC_FILTER] != 0 ||
                                      cairn__le64(r + RC_CODEC_TABLE_OFFSET) ||
                                      cairn__le64(r + RC_CODEC_TABLE_SIZE)))
        return FAIL(f, "tensor '%s' (record at offset %llu): uncompressed, but stored size %llu != "
                    "raw size %llu or filter/codec table set", shown, (unsigned long long)at,
                    (unsigned long long)stored, (unsigned long long)raw);
    if (cairn__codec_known(codec))
        CAIRN_TRY(check_coded(f, nr, r, at, shown, err));
    uint64_t off = cairn__le64(r + RC_DATA_OFFSET), end;
    if (align_log2 > NATIVE_MAX_ALIGN_LOG2)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: tensor '%s' (record at offset %llu): alignment "
                           "2^%u exceeds 2^16", f->path, shown,
                           (unsigned long long)(at + RC_ALIGN_LOG2), align_log2);
    if (off % (UINT64_C(1) << align_log2) || off < NATIVE_HEADER_SIZE ||
        cairn__add_overflow(off, stored, &end) || end > nr->index_offset)
        return FAIL(f, "tensor '%s' (record at offset %llu): data %llu+%llu is misaligned or "
                    "outside the payload area [64, %llu)", shown, (unsigned long long)at,
                    (unsigned long long)off, (unsigned long long)stored,
                    (unsigned long long)nr->index_offset);
    if (!(cairn__le16(r + RC_FLAGS) & RC_FLAG_ALIAS)) {
        nr->payload_bytes += stored;
        nr->raw_bytes += raw;
    }
    nr->compressed += codec != CAIRN_CODEC_NONE;
    if ((UINT64_C(1) << align_log2) > nr->max_align)
        nr->max_align = UINT64_C(1) << align_log2;
    return CAIRN_OK;
}

static cairn_status load_index(cairn_file *f, native_reader *nr, cairn_error *err)
{
    uint64_t size = nr->meta_offset + nr->meta_size - nr->index_offset;
    const uint8_t *p = cairn__file_ptr(f, nr->index_offset, size);
    if (!p) {
        nr->index_heap = malloc(size ? (size_t)size : 1);
        if (!nr->index_heap)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot allocate %llu bytes for the index",
                               f->path, (unsigned long long)size);
        CAIRN_TRY(cairn__file_read(f, nr->index_offset, nr->index_heap, (size_t)size, err));
        p = nr->index_heap;
    }
    nr->index = p;
    return CAIRN_OK;
}

static cairn_status nr_open(cairn_file *f, cairn_error *err)
{
    if (f->src.size < NATIVE_HEADER_SIZE + NATIVE_TRAILER_SIZE)
        return FAIL(f, "%llu bytes is too small for a header and a trailer (192 bytes)",
                    (unsigned long long)f->src.size);
    native_reader *nr = calloc(1, sizeof *nr);
    if (!nr)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    f->state = nr;
    nr->max_align = 1;
    uint8_t h[NATIVE_HEADER_SIZE], t[NATIVE_TRAILER_SIZE];
    CAIRN_TRY(cairn__file_read(f, 0, h, sizeof h, err));
    CAIRN_TRY(check_header(f, h, err));
    CAIRN_TRY(cairn__file_read(f, f->src.size - sizeof t, t, sizeof t, err));
    CAIRN_TRY(check_trailer(f, nr, t, h, err));
    CAIRN_TRY(load_index(f, nr, err));
    uint64_t size = nr->meta_offset + nr->meta_size - nr->index_offset;
    if (cairn__hash(nr->index, (size_t)size) != cairn__le64(t + TR_INDEX_HASH))
        return cairn__fail(err, CAIRN_E_CHECKSUM, "%s: index at offset %llu (%llu bytes): checksum "
                           "mismatch", f->path, (unsigned long long)nr->index_offset,
                           (unsigned long long)size);
    const char *prev = NULL;
    size_t prev_len = 0;
    for (uint64_t i = 0; i < nr->count; i++)
        CAIRN_TRY(check_record(f, nr, i, &prev, &prev_len, err));
    return CAIRN_OK;
}

static void nr_close(cairn_file *f)
{
    native_reader *nr = f->state;
    free(nr->index_heap);
    free(nr);
    f->state = NULL;
}

static uint64_t nr_count(const cairn_file *f) { return ((const native_reader *)f->state)->count; }

static cairn_status nr_tensor_at(const cairn_file *f, uint64_t i, cairn__tensor *out,
                                 cairn_error *err)
{
    const native_reader *nr = f->state;
    const uint8_t *r = record(nr, i);
    cairn_tensor_info *t = &out->info;
    memset(out, 0, sizeof *out);
    /* Every name is followed by a NUL in the string table (checked on
     * open), so the pointer into the mapping is a C string. */
    t->name = record_name(nr, r, &t->name_len);
    t->dtype = (cairn_dtype)cairn__le16(r + RC_DTYPE);
    t->rank = r[RC_RANK];
    t->count = 1;
    for (uint32_t d = 0; d < t->rank; d++) {
        t->dims[d] = cairn__le64(r + RC_DIMS + 8 * d);
        t->count *= t->dims[d];
    }
    t->raw_size = cairn__le64(r + RC_RAW_SIZE);
    t->stored_size = cairn__le64(r + RC_STORED_SIZE);
    t->offset = cairn__le64(r + RC_DATA_OFFSET);
    t->alignment = UINT64_C(1) << r[RC_ALIGN_LOG2];
    t->codec = r[RC_CODEC];
    t->has_checksum = 1;
    t->checksum = cairn__le64(r + RC_CHECKSUM);
    t->zero_copy = f->src.base != NULL && t->codec == CAIRN_CODEC_NONE;
    t->filter = r[RC_FILTER];
    if (cairn__codec_known(t->codec)) {
        cairn__chunked c;
        record_chunked(f, nr, r, t->name, 1, &c);
        t->level = c.level;
        t->chunk_size = c.chunk_size;
        t->chunk_count = c.chunk_count;
        /* an unknown filter leaves the tensor unreadable (read.c says so) */
        out->via_load = c.filter <= CAIRN_FILTER_SHUFFLE;
    }
    return CAIRN_OK;
}

static cairn_status nr_load_range(const cairn_file *f, uint64_t index, uint64_t lo, uint64_t hi,
                                  void *dst, cairn_error *err)
{
    const native_reader *nr = f->state;
    const uint8_t *r = record(nr, index);
    size_t len;
    cairn__chunked c;
    record_chunked(f, nr, r, record_name(nr, r, &len), 1, &c);
    return cairn__chunks_read(f, &c, lo, hi, dst, cairn__file_threads(f), err);
}

static cairn_status nr_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err)
{
    const native_reader *nr = f->state;
    return nr_load_range(f, index, 0, cairn__le64(record(nr, index) + RC_RAW_SIZE), dst, err);
}

static const char *sorted_name(const void *ctx, uint64_t pos, size_t *len)
{
    const native_reader *nr = ctx;
    return record_name(nr, record(nr, pos), len);
}

static cairn_status nr_find(const cairn_file *f, const char *name, size_t len, uint64_t *index,
                            cairn_error *err)
{
    const native_reader *nr = f->state;
    if (cairn__name_search(nr->count, sorted_name, nr, name, len, index))
        return CAIRN_OK;
    char shown[96];
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor named '%s'", f->path,
                       cairn__printable(name, len, shown, sizeof shown));
}

static cairn_status nr_file_info(const cairn_file *f, cairn_file_info *out, cairn_error *err)
{
    const native_reader *nr = f->state;
    out->format = CAIRN_FORMAT_NATIVE;
    out->version_major = nr->major;
    out->version_minor = nr->minor;
    out->tensor_count = nr->count;
    out->file_size = f->src.size;
    out->payload_bytes = nr->payload_bytes;
    out->alignment = nr->max_align;
    out->has_metadata = nr->meta_size > 0;
    out->raw_bytes = nr->raw_bytes;
    out->compressed_tensors = nr->compressed;
    out->is_signed = nr->sig_size > 0;
    if (nr->sig_size >= SG_SIZE)
        CAIRN_TRY(cairn__file_read(f, nr->sig_offset + SG_KEY_ID, out->key_id, sizeof out->key_id,
                                     err));
    return CAIRN_OK;
}

static int exists_cb(void *ctx, const char *name, size_t len)
{
    const cairn_file *f = ctx;
    uint64_t i;
    return nr_find(f, name, len, &i, NULL) == CAIRN_OK;
}

static cairn_status nr_read_metadata(const cairn_file *f, cairn_value **out, cairn_error *err)
{
    const native_reader *nr = f->state;
    if (nr->meta_size == 0) {
        *out = cairn_value_map();
        return *out ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    }
    const uint8_t *p = nr->index + (nr->meta_offset - nr->index_offset);
    return cairn__meta_decode(p, (size_t)nr->meta_size, f->path, nr->meta_offset, exists_cb,
                              (void *)f, out, err);
}

/* A byte range of the file: a payload (with its checksum and record) or a
 * chunk table; sorted by offset, then size. */
typedef struct span {
    uint64_t offset, size, checksum;
    uint64_t record;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->size > y->size) - (x->size < y->size);
}

/* Every byte between payloads (and between the last payload and the index,
 * and after the index) is padding and must be zero, so that `verify` covers
 * every byte of the file. */
static cairn_status check_zero(const cairn_file *f, uint64_t from, uint64_t to, cairn_error *err)
{
    uint8_t buf[4096];
    while (from < to) {
        size_t n = to - from < sizeof buf ? (size_t)(to - from) : sizeof buf;
        CAIRN_TRY(cairn__file_read(f, from, buf, n, err));
        for (size_t i = 0; i < n; i++)
            if (buf[i])
                return FAIL(f, "padding byte at offset %llu is not zero",
                            (unsigned long long)(from + i));
        from += n;
    }
    return CAIRN_OK;
}

/* Payloads are either identical (tied tensors) or disjoint (docs/FORMAT.md §4). */
static cairn_status check_overlaps(const cairn_file *f, const native_reader *nr, cairn_error *err)
{
    span *s = malloc((nr->count ? nr->count : 1) * sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < nr->count; i++) {
        const uint8_t *r = record(nr, i);
        s[i] = (span){cairn__le64(r + RC_DATA_OFFSET), cairn__le64(r + RC_STORED_SIZE),
                      cairn__le64(r + RC_CHECKSUM), i};
    }
    qsort(s, nr->count, sizeof *s, span_cmp);
    cairn_status st = CAIRN_OK;
    uint64_t covered = NATIVE_HEADER_SIZE; /* end of the bytes accounted for so far */
    for (uint64_t i = 0; i < nr->count && st == CAIRN_OK; i++) {
        if (s[i].offset > covered)
            st = check_zero(f, covered, s[i].offset, err);
        if (s[i].offset + s[i].size > covered)
            covered = s[i].offset + s[i].size;
    }
    if (st == CAIRN_OK)
        st = check_zero(f, covered, nr->index_offset, err);
    for (uint64_t i = 1; i < nr->count && st == CAIRN_OK; i++) {
        const span *a = &s[i - 1], *b = &s[i];
        int same = a->offset == b->offset && a->size == b->size && a->checksum == b->checksum;
        if (!same && a->size && b->size && a->offset + a->size > b->offset) {
            size_t la, lb;
            const char *na = record_name(nr, record(nr, a->record), &la);
            const char *nb = record_name(nr, record(nr, b->record), &lb);
            st = FAIL(f, "payloads of tensors '%s' (%llu+%llu) and '%s' (%llu+%llu) overlap", na,
                      (unsigned long long)a->offset, (unsigned long long)a->size, nb,
                      (unsigned long long)b->offset, (unsigned long long)b->size);
        }
    }
    free(s);
    return st;
}

/* 1.1 header: flags may say "signed", and then the layout hash follows;
 * every other byte after the size is reserved. */
static cairn_status check_header_reserved(const cairn_file *f, const native_reader *nr,
                                          const uint8_t *h, cairn_error *err)
{
    if (nr->minor > CAIRN_FORMAT_MINOR)
        return CAIRN_OK; /* a newer minor version may use them */
    uint32_t flags = cairn__le32(h + HD_FLAGS);
    uint32_t allowed = nr->minor >= NATIVE_MINOR_EXTENDED ? HD_FLAG_SIGNED : 0;
    if (flags & ~allowed)
        return FAIL(f, "header at offset %d: flags %08x has reserved bits set", HD_FLAGS, flags);
    if ((flags & HD_FLAG_SIGNED) && nr->sig_size == 0)
        return FAIL(f, "header at offset %d: flags say signed, but the file has no signature block",
                    HD_FLAGS);
    for (int i = HD_FLAGS + 4; i < NATIVE_HEADER_SIZE; i++) {
        int layout = i >= HD_LAYOUT_HASH && i < HD_LAYOUT_HASH + HD_LAYOUT_HASH_SIZE;
        if (h[i] != 0 && !(layout && (flags & HD_FLAG_SIGNED)))
            return FAIL(f, "header at offset %d: reserved byte is not zero", i);
    }
    return CAIRN_OK;
}

/* Between the string table and the metadata lie the chunk tables: each
 * either shared by aliases or disjoint from the others, and every byte
 * around them zero. Then every chunk of every compressed tensor decodes to
 * exactly its declared size. */
static cairn_status check_tables(const cairn_file *f, const native_reader *nr, cairn_error *err)
{
    span *s = malloc((nr->compressed ? nr->compressed : 1) * sizeof *s);
    if (!s)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    uint64_t n = 0;
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; i < nr->count && st == CAIRN_OK; i++) {
        const uint8_t *r = record(nr, i);
        size_t len;
        const char *name = record_name(nr, r, &len);
        if (r[RC_CODEC] == CAIRN_CODEC_NONE)
            continue;
        if (!cairn__codec_known(r[RC_CODEC]) || r[RC_FILTER] > CAIRN_FILTER_SHUFFLE) {
            st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: tensor '%s': codec %u / filter %u is "
                             "unknown to this reader, which cannot verify it", f->path, name,
                             r[RC_CODEC], r[RC_FILTER]);
            break;
        }
        s[n++] = (span){.offset = cairn__le64(r + RC_CODEC_TABLE_OFFSET),
                        .size = cairn__le64(r + RC_CODEC_TABLE_SIZE)};
        if (cairn__le16(r + RC_FLAGS) & RC_FLAG_ALIAS)
            continue; /* the same chunks as the tensor it aliases */
        cairn__chunked c;
        record_chunked(f, nr, r, name, 1, &c);
        st = cairn__chunks_read(f, &c, 0, c.raw_size, NULL, cairn__file_threads(f), err);
    }
    if (st == CAIRN_OK)
        qsort(s, n, sizeof *s, span_cmp);
    uint64_t covered = nr->strings_offset + nr->strings_size;
    const uint8_t *base = nr->index - nr->index_offset; /* file offset -> index byte */
    for (uint64_t i = 0; i <= n && st == CAIRN_OK; i++) {
        uint64_t next = i < n ? s[i].offset : nr->meta_offset;
        for (uint64_t o = covered; o < next; o++)
            if (base[o])
                st = FAIL(f, "byte at offset %llu, between the string table and the metadata and "
                          "in no chunk table, is not zero", (unsigned long long)o);
        if (i == n || st != CAIRN_OK)
            break;
        if (i > 0 && s[i].offset < covered &&
            !(s[i].offset == s[i - 1].offset && s[i].size == s[i - 1].size))
            st = FAIL(f, "chunk tables at offsets %llu and %llu overlap",
                      (unsigned long long)s[i - 1].offset, (unsigned long long)s[i].offset);
        if (s[i].offset + s[i].size > covered)
            covered = s[i].offset + s[i].size;
    }
    free(s);
    return st;
}

static cairn_status nr_verify_structure(const cairn_file *f, cairn_error *err)
{
    const native_reader *nr = f->state;
    uint8_t h[NATIVE_HEADER_SIZE];
    CAIRN_TRY(cairn__file_read(f, 0, h, sizeof h, err));
    CAIRN_TRY(check_header_reserved(f, nr, h, err));
    CAIRN_TRY(check_overlaps(f, nr, err));
    CAIRN_TRY(check_tables(f, nr, err));
    uint64_t meta_end = nr->meta_offset + nr->meta_size, tpos = f->src.size - NATIVE_TRAILER_SIZE;
    if (nr->sig_size == 0)
        CAIRN_TRY(check_zero(f, meta_end, tpos, err));
    uint8_t t[NATIVE_TRAILER_SIZE];
    CAIRN_TRY(cairn__file_read(f, tpos, t, sizeof t, err));
    for (int i = TR_INDEX_HASH + 8; i < TR_HASH; i++)
        if (t[i] != 0 && nr->minor <= CAIRN_FORMAT_MINOR)
            return FAIL(f, "trailer at offset %llu: reserved byte %d is not zero",
                        (unsigned long long)tpos, i);
    if (nr->sig_size && nr->minor <= CAIRN_FORMAT_MINOR)
        CAIRN_TRY(cairn__sig_check_structure(f, h, t, err));
    return cairn__metadata_check(f, err);
}

/* Records are decoded from the mapped index on demand, not kept in a
 * cairn__tensor_table: the accessors are the format's own. */
const cairn__reader_ops cairn__native_reader = CAIRN__READER_OPS(
    nr, CAIRN_FORMAT_NATIVE, .close = nr_close, .count = nr_count, .tensor_at = nr_tensor_at,
    .find = nr_find, .file_info = nr_file_info, .verify_structure = nr_verify_structure,
    .read_metadata = nr_read_metadata, .load = nr_load, .load_range = nr_load_range,
    .verify_signature = cairn__native_verify_signature, .sign = cairn__native_sign);
