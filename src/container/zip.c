/* zip.c -- ZIP archives: a reader that trusts nothing and a streaming writer
 * (docs/FORMAT.md §12.2, §12.3, §12.5). */
#include "container/zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u

#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define END_SIZE 22
#define END64_SIZE 56 /* with no extensible data */
#define LOCATOR_SIZE 20
#define MAX_COMMENT 65535u

#define EXTRA_ZIP64 0x0001u
#define EXTRA_ALIGN 0xD935u  /* Android zipalign's padding field: u16 alignment, zeros */
#define ALIGN_EXTRA_MIN 6u   /* id, length, u16 alignment */

#define FLAG_ENCRYPTED 0x0001u
#define FLAG_DESCRIPTOR 0x0008u
#define FLAG_STRONG 0x0040u
#define FLAG_UTF8 0x0800u
#define FLAG_MASKED 0x2000u /* central directory encryption */

#define U16_MAX 0xFFFFu
#define U32_MAX 0xFFFFFFFFu

#define IO_CHUNK (64u << 10)
#define ZLIB_CHUNK (1u << 30) /* zlib counts bytes in uInt */

#define DOS_DATE_1980 0x0021u /* 1980-01-01: fixed, so equal calls give equal bytes */
#define MADE_BY_UNIX (3u << 8)
#define EXTERNAL_ATTR (0600u << 16) /* -rw-------, as Python's zipfile */

/* ------------------------------------------------------------------ common */

static uint32_t crc_update(uint32_t crc, const uint8_t *p, uint64_t n)
{
    while (n > 0) {
        uInt k = n > ZLIB_CHUNK ? ZLIB_CHUNK : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

const char *cairn__zip_where(const cairn__source *f, const cairn__zip_member *m, char *buf,
                             size_t size)
{
    char shown[160];
    snprintf(buf, size, "%s: member '%s'", f->path,
             cairn__printable(m->name, m->name_len, shown, sizeof shown));
    return buf;
}

/* Bytes [off, off + len) of the input (range checked by the caller): a
 * pointer into the mapping, or a copy in *heap that the caller frees. */
static cairn_status fetch(const cairn__source *f, uint64_t off, uint64_t len, const uint8_t **out,
                          uint8_t **heap, cairn_error *err)
{
    *heap = NULL;
    *out = cairn__source_ptr(f, off, len);
    if (*out)
        return CAIRN_OK;
    if (len > SIZE_MAX)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot hold %llu bytes at offset %llu",
                           f->path, (unsigned long long)len, (unsigned long long)off);
    *heap = malloc(len ? (size_t)len : 1);
    if (!*heap)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu bytes at offset %llu",
                           f->path, (unsigned long long)len, (unsigned long long)off);
    cairn_status st = cairn__source_read(f, off, *heap, (size_t)len, err);
    if (st != CAIRN_OK) {
        free(*heap);
        *heap = NULL;
        return st;
    }
    *out = *heap;
    return CAIRN_OK;
}

/* ------------------------------------------------------------- end records */

typedef struct end_info {
    uint64_t at;      /* offset of the end record */
    uint64_t entries, cd_size, cd_offset;
    uint64_t cd_end;  /* where the central directory must end */
    int zip64;
} end_info;

/* The end record is the last "PK\5\6" whose comment length reaches exactly
 * the end of the file, within the last 22 + 65535 bytes. */
static cairn_status find_end(const cairn__source *f, end_info *e, uint8_t rec[END_SIZE],
                             cairn_error *err)
{
    uint64_t size = f->size;
    if (size < END_SIZE)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: offset 0: ZIP archive of %llu bytes is "
                           "shorter than the 22-byte end of central directory record", f->path,
                           (unsigned long long)size);
    uint64_t tail = size < END_SIZE + MAX_COMMENT ? size : END_SIZE + MAX_COMMENT;
    const uint8_t *b;
    uint8_t *heap;
    CAIRN_TRY(fetch(f, size - tail, tail, &b, &heap, err));
    int found = 0;
    for (uint64_t i = tail - END_SIZE + 1; i-- > 0;) {
        if (cairn__le32(b + i) == SIG_END && cairn__le16(b + i + 20) == tail - i - END_SIZE) {
            e->at = size - tail + i;
            memcpy(rec, b + i, END_SIZE);
            found = 1;
            break;
        }
    }
    free(heap);
    if (!found)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: no ZIP end of central directory record "
                           "(PK\\5\\6 with a comment reaching the end of the file) between "
                           "offsets %llu and %llu", f->path, (unsigned long long)(size - tail),
                           (unsigned long long)size);
    return CAIRN_OK;
}

/* The ZIP64 end record, found through the locator right before the end
 * record; its values replace the end record's. */
static cairn_status read_end64(const cairn__source *f, end_info *e, const uint8_t rec[END_SIZE],
                               cairn_error *err)
{
    uint8_t loc[LOCATOR_SIZE], r[END64_SIZE];
    uint64_t loc_at = e->at - LOCATOR_SIZE;
    CAIRN_TRY(cairn__source_read(f, loc_at, loc, sizeof loc, err));
    uint64_t at = cairn__le64(loc + 8);
    if (cairn__le32(loc + 4) != 0 || cairn__le32(loc + 16) > 1)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: ZIP64 locator at offset %llu: "
                           "multi-disk archives are not supported (end record on disk %u, %u "
                           "disks)", f->path, (unsigned long long)loc_at, cairn__le32(loc + 4),
                           cairn__le32(loc + 16));
    if (at > loc_at || loc_at - at < END64_SIZE)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP64 locator at offset %llu points to a "
                           "ZIP64 end record at offset %llu, which does not fit before it",
                           f->path, (unsigned long long)loc_at, (unsigned long long)at);
    CAIRN_TRY(cairn__source_read(f, at, r, sizeof r, err));
    uint64_t rec_size = cairn__le64(r + 4);
    if (cairn__le32(r) != SIG_END64 || rec_size < END64_SIZE - 12 ||
        rec_size != loc_at - at - 12)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP64 end record at offset %llu: bad "
                           "signature or size (it must end where the locator at offset %llu "
                           "starts)", f->path, (unsigned long long)at,
                           (unsigned long long)loc_at);
    uint64_t disk = cairn__le32(r + 16), cd_disk = cairn__le32(r + 20);
    uint64_t on_disk = cairn__le64(r + 24), entries = cairn__le64(r + 32);
    if (disk != 0 || cd_disk != 0 || on_disk != entries)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: ZIP64 end record at offset %llu: "
                           "multi-disk archives are not supported (disk %llu, central directory "
                           "on disk %llu, %llu of %llu entries on this disk)", f->path,
                           (unsigned long long)at, (unsigned long long)disk,
                           (unsigned long long)cd_disk, (unsigned long long)on_disk,
                           (unsigned long long)entries);
    uint64_t cd_size = cairn__le64(r + 40), cd_offset = cairn__le64(r + 48);
    /* A 32-bit field that is not its placeholder must agree with its twin. */
    if ((cairn__le16(rec + 10) != U16_MAX && cairn__le16(rec + 10) != entries) ||
        (cairn__le32(rec + 12) != U32_MAX && cairn__le32(rec + 12) != cd_size) ||
        (cairn__le32(rec + 16) != U32_MAX && cairn__le32(rec + 16) != cd_offset))
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP64 end record at offset %llu (%llu "
                           "entries, central directory of %llu bytes at %llu) disagrees with the "
                           "end record at offset %llu", f->path, (unsigned long long)at,
                           (unsigned long long)entries, (unsigned long long)cd_size,
                           (unsigned long long)cd_offset, (unsigned long long)e->at);
    e->entries = entries;
    e->cd_size = cd_size;
    e->cd_offset = cd_offset;
    e->cd_end = at;
    e->zip64 = 1;
    return CAIRN_OK;
}

static cairn_status read_end(const cairn__source *f, end_info *e, cairn_error *err)
{
    uint8_t rec[END_SIZE] = {0};
    memset(e, 0, sizeof *e);
    CAIRN_TRY(find_end(f, e, rec, err));
    unsigned disk = cairn__le16(rec + 4), cd_disk = cairn__le16(rec + 6);
    unsigned on_disk = cairn__le16(rec + 8);
    e->entries = cairn__le16(rec + 10);
    e->cd_size = cairn__le32(rec + 12);
    e->cd_offset = cairn__le32(rec + 16);
    e->cd_end = e->at;
    uint8_t sig[4];
    int has_locator = e->at >= LOCATOR_SIZE &&
                      cairn__source_read(f, e->at - LOCATOR_SIZE, sig, 4, NULL) == CAIRN_OK &&
                      cairn__le32(sig) == SIG_LOCATOR;
    if (has_locator)
        CAIRN_TRY(read_end64(f, e, rec, err));
    else if (disk != 0 || cd_disk != 0 || on_disk != e->entries)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: ZIP end record at offset %llu: "
                           "multi-disk archives are not supported (disk %u, central directory "
                           "on disk %u, %u of %llu entries on this disk)", f->path,
                           (unsigned long long)e->at, disk, cd_disk, on_disk,
                           (unsigned long long)e->entries);
    /* Without a locator, placeholders are taken literally (as Python's
     * zipfile does): they then fail the range checks below. */
    uint64_t end;
    if (cairn__add_overflow(e->cd_offset, e->cd_size, &end) || end != e->cd_end)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory (offset %llu, %llu "
                           "bytes) does not end where the %send record at offset %llu starts",
                           f->path, (unsigned long long)e->cd_offset,
                           (unsigned long long)e->cd_size, e->zip64 ? "ZIP64 " : "",
                           (unsigned long long)e->cd_end);
    if (e->cd_size > CAIRN__ZIP_MAX_CD_SIZE)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: ZIP central directory at offset %llu is "
                           "%llu bytes, over the limit of %llu", f->path,
                           (unsigned long long)e->cd_offset, (unsigned long long)e->cd_size,
                           (unsigned long long)CAIRN__ZIP_MAX_CD_SIZE);
    if (e->entries > e->cd_size / CENTRAL_SIZE)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP end record at offset %llu: %llu "
                           "entries cannot fit in a central directory of %llu bytes (46 bytes "
                           "each at least)", f->path, (unsigned long long)e->at,
                           (unsigned long long)e->entries, (unsigned long long)e->cd_size);
    if (e->entries > CAIRN__ZIP_MAX_MEMBERS)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: ZIP archive has %llu members, over the "
                           "limit of %llu", f->path, (unsigned long long)e->entries,
                           (unsigned long long)CAIRN__ZIP_MAX_MEMBERS);
    return CAIRN_OK;
}

/* ------------------------------------------------------- central directory */

/* One central directory entry's raw fields, before they become a member. */
typedef struct raw_entry {
    uint64_t at; /* file offset of the entry */
    uint16_t flags, method;
    uint32_t crc;
    uint64_t comp, size, offset;
    uint32_t disk;
    const uint8_t *name, *extra;
    size_t name_len, extra_len;
} raw_entry;

/* ZIP64 values for the fields that hold their placeholder, in the order of
 * APPNOTE 4.5.3. Every extra field must fit; trailing bytes too short to be
 * a field are ignored, as Python's zipfile ignores them. */
static cairn_status zip64_extra(raw_entry *r, const char *where, cairn_error *err)
{
    int want_size = r->size == U32_MAX, want_comp = r->comp == U32_MAX;
    int want_off = r->offset == U32_MAX, want_disk = r->disk == U16_MAX, seen = 0;
    for (size_t at = 0; r->extra_len - at >= 4;) {
        unsigned id = cairn__le16(r->extra + at), len = cairn__le16(r->extra + at + 2);
        if (len > r->extra_len - at - 4)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: central directory entry at offset "
                               "%llu: extra field 0x%04x of %u bytes runs past the %zu-byte extra "
                               "data", where, (unsigned long long)r->at, id, len, r->extra_len);
        const uint8_t *q = r->extra + at + 4;
        size_t need = 8u * (size_t)(want_size + want_comp + want_off) + 4u * (size_t)want_disk;
        if (id == EXTRA_ZIP64 && !seen && need > 0) {
            if (len < need)
                return cairn__fail(err, CAIRN_E_CORRUPT, "%s: central directory entry at offset "
                                   "%llu: ZIP64 extra field of %u bytes is too short for the %zu "
                                   "bytes of values the entry defers to it", where,
                                   (unsigned long long)r->at, len, need);
            if (want_size)
                r->size = cairn__le64(q), q += 8;
            if (want_comp)
                r->comp = cairn__le64(q), q += 8;
            if (want_off)
                r->offset = cairn__le64(q), q += 8;
            if (want_disk)
                r->disk = cairn__le32(q);
        }
        seen |= id == EXTRA_ZIP64;
        at += 4u + len;
    }
    if (!seen && (want_size || want_comp || want_off || want_disk))
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: central directory entry at offset %llu "
                           "holds a ZIP64 placeholder (0xFFFFFFFF) but no ZIP64 extra field",
                           where, (unsigned long long)r->at);
    return CAIRN_OK;
}

/* Splits the entry at cd[*pos] into its fields, checking every length. */
static cairn_status split_entry(const cairn__source *f, const uint8_t *cd, uint64_t cd_offset,
                                uint64_t cd_size, uint64_t *pos, uint64_t index, raw_entry *r,
                                cairn_error *err)
{
    const uint8_t *p = cd + *pos;
    r->at = cd_offset + *pos;
    if (cd_size - *pos < CENTRAL_SIZE)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory entry %llu at offset "
                           "%llu runs past the end of the central directory", f->path,
                           (unsigned long long)index, (unsigned long long)r->at);
    if (cairn__le32(p) != SIG_CENTRAL)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory entry %llu at offset "
                           "%llu: bad signature", f->path, (unsigned long long)index,
                           (unsigned long long)r->at);
    r->flags = cairn__le16(p + 8);
    r->method = cairn__le16(p + 10);
    r->crc = cairn__le32(p + 16);
    r->comp = cairn__le32(p + 20);
    r->size = cairn__le32(p + 24);
    r->name_len = cairn__le16(p + 28);
    r->extra_len = cairn__le16(p + 30);
    size_t comment = cairn__le16(p + 32);
    r->disk = cairn__le16(p + 34);
    r->offset = cairn__le32(p + 42);
    uint64_t len = CENTRAL_SIZE + (uint64_t)r->name_len + r->extra_len + comment;
    if (len > cd_size - *pos)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory entry %llu at offset "
                           "%llu: name, extra and comment (%zu + %zu + %zu bytes) run past the "
                           "end of the central directory", f->path, (unsigned long long)index,
                           (unsigned long long)r->at, r->name_len, r->extra_len, comment);
    r->name = p + CENTRAL_SIZE;
    r->extra = r->name + r->name_len;
    *pos += len;
    return CAIRN_OK;
}

/* Turns the raw fields into a member, refusing what cairn does not read. */
static cairn_status check_entry(const cairn__source *f, raw_entry *r, uint64_t max_inflate,
                                uint64_t index, cairn__zip_member *m, cairn_error *err)
{
    char where[512], shown[160];
    if (r->name_len == 0 || memchr(r->name, 0, r->name_len))
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory entry %llu at offset "
                           "%llu: member name is %s", f->path, (unsigned long long)index,
                           (unsigned long long)r->at,
                           r->name_len ? "not a key (it holds a NUL byte)" : "empty");
    snprintf(where, sizeof where, "%s: member '%s'", f->path,
             cairn__printable((const char *)r->name, r->name_len, shown, sizeof shown));
    CAIRN_TRY(zip64_extra(r, where, err));
    if (r->flags & (FLAG_ENCRYPTED | FLAG_STRONG | FLAG_MASKED))
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s (central directory entry at offset "
                           "%llu): encrypted members are not supported", where,
                           (unsigned long long)r->at);
    if (r->method != CAIRN__ZIP_STORED && r->method != CAIRN__ZIP_DEFLATED)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s (central directory entry at offset "
                           "%llu): compression method %u is not supported (only 0, stored, and "
                           "8, deflate)", where, (unsigned long long)r->at, r->method);
    if (r->disk != 0)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s (central directory entry at offset "
                           "%llu): starts on disk %u; multi-disk archives are not supported",
                           where, (unsigned long long)r->at, r->disk);
    if (r->method == CAIRN__ZIP_STORED && r->comp != r->size)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s (central directory entry at offset %llu): "
                           "stored member with compressed size %llu and size %llu", where,
                           (unsigned long long)r->at, (unsigned long long)r->comp,
                           (unsigned long long)r->size);
    uint64_t bound, ratio_cap;
    if (r->method == CAIRN__ZIP_DEFLATED &&
        !cairn__mul_overflow(r->comp, CAIRN__ZIP_DEFLATE_MAX_RATIO, &bound) && r->size > bound)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s (central directory entry at offset %llu): "
                           "declares %llu bytes from %llu deflated bytes, beyond deflate's "
                           "1032:1 maximum", where, (unsigned long long)r->at,
                           (unsigned long long)r->size, (unsigned long long)r->comp);
    /* The bytes the file holds set the budget: at most 100:1, and at most
     * 4 x the file's size, so that a command holding a member whole (or two,
     * for diff) keeps to 16 x S + 160 MiB (docs/FORMAT.md §14). */
    uint64_t file_cap;
    if (cairn__mul_overflow(r->comp, CAIRN__ZIP_RATIO_LIMIT, &ratio_cap))
        ratio_cap = UINT64_MAX;
    if (cairn__mul_overflow(f->size, CAIRN__ZIP_SIZE_LIMIT, &file_cap))
        file_cap = UINT64_MAX;
    if (ratio_cap > file_cap)
        ratio_cap = file_cap;
    if (r->method == CAIRN__ZIP_DEFLATED && r->size > max_inflate && r->size > ratio_cap)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s (central directory entry at offset %llu): "
                           "inflates %llu bytes to %llu (%llu:1), over the decompression limit "
                           "of %llu bytes: max(max_inflate %llu, min(%d x the compressed size, "
                           "%d x the file's %llu bytes)); raise cairn_open_opts.max_inflate "
                           "(Python: max_inflate=) to read it", where,
                           (unsigned long long)r->at, (unsigned long long)r->comp,
                           (unsigned long long)r->size,
                           (unsigned long long)(r->comp ? r->size / r->comp : 0),
                           (unsigned long long)(max_inflate > ratio_cap ? max_inflate : ratio_cap),
                           (unsigned long long)max_inflate, CAIRN__ZIP_RATIO_LIMIT,
                           CAIRN__ZIP_SIZE_LIMIT, (unsigned long long)f->size);
    m->name_len = (uint16_t)r->name_len;
    m->method = r->method;
    m->flags = r->flags;
    m->crc = r->crc;
    m->comp_size = r->comp;
    m->size = r->size;
    m->data_offset = r->offset; /* the local header's, until check_local */
    return CAIRN_OK;
}

/* The local header must be where the entry says, name the same member, and
 * leave the member's data before the central directory. m->data_offset
 * holds the local header's offset until then. */
static cairn_status check_local(const cairn__source *f, const cairn__zip *z, cairn__zip_member *m,
                                cairn_error *err)
{
    char where[512];
    uint8_t h[LOCAL_SIZE];
    uint64_t end, header_offset = m->data_offset;
    cairn__zip_where(f, m, where, sizeof where);
    if (cairn__add_overflow(header_offset, LOCAL_SIZE, &end) || end > z->cd_offset)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: local header offset %llu (30 bytes) runs "
                           "into the central directory at offset %llu", where,
                           (unsigned long long)header_offset,
                           (unsigned long long)z->cd_offset);
    /* Every member's header is read: with pread, so no page of the file
     * stays resident for it (cairn__source_read_cold). */
    CAIRN_TRY(cairn__source_read_cold(f, header_offset, h, sizeof h, err));
    size_t n = cairn__le16(h + 26), x = cairn__le16(h + 28);
    if (cairn__le32(h) != SIG_LOCAL)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: no local header signature at offset %llu",
                           where, (unsigned long long)header_offset);
    uint64_t data = end + n + x;
    if (data > z->cd_offset || m->comp_size > z->cd_offset - data)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: data at offset %llu (%llu bytes, after a "
                           "%zu-byte name and %zu-byte extra field) runs into the central "
                           "directory at offset %llu", where, (unsigned long long)data,
                           (unsigned long long)m->comp_size, n, x,
                           (unsigned long long)z->cd_offset);
    int same = n == m->name_len;
    if (same) { /* a different length already says enough */
        uint8_t *name = malloc(n ? n : 1);
        if (!name)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", where);
        cairn_status st = cairn__source_read_cold(f, end, name, n, err);
        same = st == CAIRN_OK && memcmp(name, m->name, n) == 0;
        free(name);
        CAIRN_TRY(st);
    }
    if (!same)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: the local header at offset %llu names "
                           "another member", where, (unsigned long long)header_offset);
    m->data_offset = data;
    m->local_extra = (uint16_t)x;
    return CAIRN_OK;
}

static int by_name(const void *a, const void *b)
{
    const cairn__zip_member *x = *(const cairn__zip_member *const *)a;
    const cairn__zip_member *y = *(const cairn__zip_member *const *)b;
    return cairn__name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int by_offset(const void *a, const void *b)
{
    const cairn__zip_member *x = *(const cairn__zip_member *const *)a;
    const cairn__zip_member *y = *(const cairn__zip_member *const *)b;
    uint64_t a_at = cairn__zip_header_offset(x), b_at = cairn__zip_header_offset(y);
    return (a_at > b_at) - (a_at < b_at);
}

/* Unique names (sorts z->by_name) and disjoint members: two entries that
 * share bytes are how overlapping-file zip bombs multiply their output.
 * entry_at: each member's central directory entry (for messages). */
static cairn_status check_set(const cairn__source *f, cairn__zip *z, const uint64_t *entry_at,
                              cairn_error *err)
{
    char a[512], b[512];
    uint64_t n = z->count;
    if (n < 2)
        return CAIRN_OK;
    qsort(z->by_name, (size_t)n, sizeof *z->by_name, by_name);
    for (uint64_t i = 1; i < n; i++)
        if (by_name(&z->by_name[i - 1], &z->by_name[i]) == 0)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: duplicate member name (central "
                               "directory entries at offsets %llu and %llu)",
                               cairn__zip_where(f, z->by_name[i], a, sizeof a),
                               (unsigned long long)entry_at[z->by_name[i - 1] - z->members],
                               (unsigned long long)entry_at[z->by_name[i] - z->members]);
    const cairn__zip_member **order = malloc((size_t)n * sizeof *order);
    if (!order)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    memcpy(order, z->by_name, (size_t)n * sizeof *order);
    qsort(order, (size_t)n, sizeof *order, by_offset);
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 1; i < n && st == CAIRN_OK; i++) {
        const cairn__zip_member *p = order[i - 1], *q = order[i];
        if (p->data_offset + p->comp_size > cairn__zip_header_offset(q)) {
            cairn__zip_where(f, p, a, sizeof a);
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s (data up to offset %llu) overlaps member "
                             "'%s' (local header at offset %llu)", a,
                             (unsigned long long)(p->data_offset + p->comp_size),
                             cairn__printable(q->name, q->name_len, b, 160),
                             (unsigned long long)cairn__zip_header_offset(q));
        }
    }
    free(order);
    return st;
}

/* Parses every entry of the central directory `cd` into z, and the file
 * offset of each entry into entry_at. */
static cairn_status parse_cd(const cairn__source *f, const uint8_t *cd, uint64_t max_inflate,
                             cairn__zip *z, uint64_t *entry_at, cairn_error *err)
{
    uint64_t pos = 0, names_len = 0;
    raw_entry *raw = malloc((size_t)(z->count ? z->count : 1) * sizeof *raw);
    if (!raw)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu ZIP entries", f->path,
                           (unsigned long long)z->count);
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; i < z->count && st == CAIRN_OK; i++) {
        st = split_entry(f, cd, z->cd_offset, z->cd_size, &pos, i, &raw[i], err);
        if (st == CAIRN_OK)
            st = check_entry(f, &raw[i], max_inflate, i, &z->members[i], err);
        if (st == CAIRN_OK)
            names_len += raw[i].name_len + 1;
        entry_at[i] = raw[i].at;
    }
    if (st == CAIRN_OK && pos != z->cd_size)
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: ZIP central directory at offset %llu has "
                         "%llu bytes after its %llu entries", f->path,
                         (unsigned long long)z->cd_offset, (unsigned long long)(z->cd_size - pos),
                         (unsigned long long)z->count);
    if (st == CAIRN_OK && !(z->names = malloc((size_t)names_len + 1)))
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for ZIP member names", f->path);
    for (uint64_t i = 0, at = 0; st == CAIRN_OK && i < z->count; i++) {
        memcpy(z->names + at, raw[i].name, raw[i].name_len);
        z->names[at + raw[i].name_len] = '\0';
        z->members[i].name = z->names + at;
        z->by_name[i] = &z->members[i];
        at += raw[i].name_len + 1;
    }
    free(raw);
    return st;
}

void cairn__zip_close(cairn__zip *z)
{
    free(z->members);
    free(z->by_name);
    free(z->names);
    memset(z, 0, sizeof *z);
}

cairn_status cairn__zip_open(const cairn__source *f, uint64_t max_inflate, cairn__zip *z,
                             cairn_error *err)
{
    end_info e;
    memset(z, 0, sizeof *z);
    CAIRN_TRY(read_end(f, &e, err));
    z->count = e.entries;
    z->cd_offset = e.cd_offset;
    z->cd_size = e.cd_size;
    z->zip64 = e.zip64;
    size_t n = (size_t)(e.entries ? e.entries : 1);
    z->members = calloc(n, sizeof *z->members);
    z->by_name = calloc(n, sizeof *z->by_name);
    if (!z->members || !z->by_name) {
        cairn__zip_close(z);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu ZIP entries", f->path,
                           (unsigned long long)e.entries);
    }
    /* The entries' offsets serve the messages of check_set only. */
    uint64_t *entry_at = malloc(n * sizeof *entry_at);
    if (!entry_at) {
        cairn__zip_close(z);
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for %llu ZIP entries", f->path,
                           (unsigned long long)e.entries);
    }
    const uint8_t *cd;
    uint8_t *heap;
    cairn_status st = fetch(f, e.cd_offset, e.cd_size, &cd, &heap, err);
    if (st == CAIRN_OK) {
        st = parse_cd(f, cd, max_inflate, z, entry_at, err);
        free(heap);
    }
    for (uint64_t i = 0; st == CAIRN_OK && i < z->count; i++)
        st = check_local(f, z, &z->members[i], err);
    if (st == CAIRN_OK)
        st = check_set(f, z, entry_at, err);
    free(entry_at);
    if (st != CAIRN_OK)
        cairn__zip_close(z);
    return st;
}

static const char *sorted_name(const void *ctx, uint64_t pos, size_t *len)
{
    const cairn__zip_member *m = ((const cairn__zip *)ctx)->by_name[pos];
    *len = m->name_len;
    return m->name;
}

void cairn__zip_drop_index(cairn__zip *z)
{
    free(z->by_name);
    z->by_name = NULL;
}

const cairn__zip_member *cairn__zip_find(const cairn__zip *z, const char *name, size_t len)
{
    uint64_t pos;
    if (!z->by_name) {
        for (uint64_t i = 0; i < z->count; i++)
            if (z->members[i].name_len == len && memcmp(z->members[i].name, name, len) == 0)
                return &z->members[i];
        return NULL;
    }
    return cairn__name_search(z->count, sorted_name, z, name, len, &pos) ? z->by_name[pos] : NULL;
}

/* ----------------------------------------------------------------- inflate */

/* A member's deflate stream being inflated, with everything counted. */
typedef struct inflater {
    const cairn__source *f;
    const cairn__zip_member *m;
    z_stream zs;
    int live;         /* inflateInit2 succeeded */
    int done;         /* Z_STREAM_END seen */
    uint64_t fed;     /* compressed bytes handed to zlib */
    uint64_t out;     /* bytes produced */
    uint32_t crc;
    uint8_t *inbuf;   /* for inputs that are not mapped */
    char where[512];
} inflater;

static cairn_status inflater_init(inflater *in, const cairn__source *f, const cairn__zip_member *m,
                                  cairn_error *err)
{
    memset(in, 0, sizeof *in);
    in->f = f;
    in->m = m;
    cairn__zip_where(f, m, in->where, sizeof in->where);
    if (!f->base && !(in->inbuf = malloc(IO_CHUNK)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", in->where);
    int rc = inflateInit2(&in->zs, -MAX_WBITS); /* raw deflate, as ZIP stores it */
    if (rc != Z_OK)
        return cairn__fail(err, rc == Z_MEM_ERROR ? CAIRN_E_NOMEM : CAIRN_E_UNSUPPORTED,
                           "%s: cannot start inflating (zlib error %d)", in->where, rc);
    in->live = 1;
    return CAIRN_OK;
}

static void inflater_end(inflater *in)
{
    if (in->live)
        inflateEnd(&in->zs);
    free(in->inbuf);
    in->live = 0;
    in->inbuf = NULL;
}

/* Hands zlib the next piece of compressed input once it used the last. */
static cairn_status feed(inflater *in, cairn_error *err)
{
    if (in->zs.avail_in > 0 || in->fed == in->m->comp_size)
        return CAIRN_OK;
    uint64_t left = in->m->comp_size - in->fed, at = in->m->data_offset + in->fed;
    if (in->f->base) {
        uInt n = left > ZLIB_CHUNK ? ZLIB_CHUNK : (uInt)left;
        in->zs.next_in = (Bytef *)(uintptr_t)cairn__source_ptr(in->f, at, n);
        in->zs.avail_in = n;
        in->fed += n;
        return CAIRN_OK;
    }
    size_t n = left > IO_CHUNK ? IO_CHUNK : (size_t)left;
    CAIRN_TRY(cairn__source_read(in->f, at, in->inbuf, n, err));
    in->zs.next_in = in->inbuf;
    in->zs.avail_in = (uInt)n;
    in->fed += n;
    return CAIRN_OK;
}

/* One inflate call into dst[0..cap); *made says how many bytes came out. */
static cairn_status step(inflater *in, uint8_t *dst, uInt cap, uInt *made, cairn_error *err)
{
    CAIRN_TRY(feed(in, err));
    in->zs.next_out = dst;
    in->zs.avail_out = cap;
    uInt had_in = in->zs.avail_in;
    int rc = inflate(&in->zs, Z_NO_FLUSH);
    *made = cap - in->zs.avail_out;
    in->out += *made;
    if (rc == Z_STREAM_END) {
        in->done = 1;
        return CAIRN_OK;
    }
    if (rc == Z_OK || (rc == Z_BUF_ERROR && (*made > 0 || in->zs.avail_in < had_in)))
        return CAIRN_OK;
    uint64_t at = in->m->data_offset + in->fed - in->zs.avail_in;
    if (rc == Z_BUF_ERROR) /* no progress possible: the input ran out */
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: deflate data ends at offset %llu before "
                           "the stream does (%llu of %llu bytes inflated)", in->where,
                           (unsigned long long)at, (unsigned long long)in->out,
                           (unsigned long long)in->m->size);
    if (rc == Z_MEM_ERROR)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory while inflating", in->where);
    return cairn__fail(err, CAIRN_E_CORRUPT, "%s: invalid deflate data near offset %llu (%s)",
                       in->where, (unsigned long long)at, in->zs.msg ? in->zs.msg : "zlib error");
}

/* Produces exactly `len` more bytes into dst (the caller keeps out + len
 * within the declared size). */
static cairn_status pull(inflater *in, uint8_t *dst, uint64_t len, cairn_error *err)
{
    while (len > 0) {
        if (in->done)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: deflate stream (at offset %llu) ends "
                               "after %llu bytes, the central directory says %llu", in->where,
                               (unsigned long long)in->m->data_offset,
                               (unsigned long long)in->out, (unsigned long long)in->m->size);
        uInt made;
        CAIRN_TRY(step(in, dst, len > ZLIB_CHUNK ? ZLIB_CHUNK : (uInt)len, &made, err));
        in->crc = crc_update(in->crc, dst, made);
        dst += made;
        len -= made;
    }
    return CAIRN_OK;
}

/* Throws `len` produced bytes away (they still count for the CRC). */
static cairn_status skip_bytes(inflater *in, uint64_t len, uint8_t *scratch, cairn_error *err)
{
    while (len > 0) {
        uint64_t n = len < IO_CHUNK ? len : IO_CHUNK;
        CAIRN_TRY(pull(in, scratch, n, err));
        len -= n;
    }
    return CAIRN_OK;
}

/* After the declared size: the stream must end here, use every compressed
 * byte, and match the CRC. */
static cairn_status finish(inflater *in, cairn_error *err)
{
    uint8_t probe[1];
    while (!in->done) {
        uInt made;
        CAIRN_TRY(step(in, probe, 1, &made, err));
        if (made > 0)
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: deflate stream (at offset %llu) inflates "
                               "to more than the %llu bytes the central directory declares",
                               in->where, (unsigned long long)in->m->data_offset,
                               (unsigned long long)in->m->size);
    }
    uint64_t used = in->fed - in->zs.avail_in;
    if (used != in->m->comp_size)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: deflate stream ends at offset %llu, %llu "
                           "bytes before the member's compressed size says", in->where,
                           (unsigned long long)(in->m->data_offset + used),
                           (unsigned long long)(in->m->comp_size - used));
    if (in->crc != in->m->crc)
        return cairn__fail(err, CAIRN_E_CHECKSUM, "%s: CRC-32 mismatch (stored %08x, computed "
                           "%08x over %llu inflated bytes from offset %llu)", in->where,
                           in->m->crc, in->crc, (unsigned long long)in->m->size,
                           (unsigned long long)in->m->data_offset);
    return CAIRN_OK;
}

static cairn_status read_deflated(const cairn__source *f, const cairn__zip_member *m, uint64_t skip,
                                  uint8_t *dst, size_t len, int check, cairn_error *err)
{
    inflater in;
    uint8_t *scratch = NULL;
    cairn_status st = inflater_init(&in, f, m, err);
    if (st == CAIRN_OK && (skip > 0 || check) && !(scratch = malloc(IO_CHUNK)))
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", in.where);
    if (st == CAIRN_OK)
        st = skip_bytes(&in, skip, scratch, err);
    if (st == CAIRN_OK)
        st = pull(&in, dst, len, err);
    if (st == CAIRN_OK && check)
        st = skip_bytes(&in, m->size - skip - len, scratch, err);
    if (st == CAIRN_OK && check)
        st = finish(&in, err);
    inflater_end(&in);
    free(scratch);
    return st;
}

/* ------------------------------------------------------------ member reads */

/* CRC-32 of stored bytes [off, off + len) of the input, chunk by chunk. */
static cairn_status crc_range(const cairn__source *f, uint64_t off, uint64_t len, uint32_t *crc,
                              cairn_error *err)
{
    const uint8_t *p = cairn__source_ptr(f, off, len);
    if (p) {
        *crc = crc_update(*crc, p, len);
        return CAIRN_OK;
    }
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = CAIRN_OK;
    while (len > 0 && st == CAIRN_OK) {
        size_t n = len < IO_CHUNK ? (size_t)len : IO_CHUNK;
        st = cairn__source_read(f, off, buf, n, err);
        *crc = crc_update(*crc, buf, n);
        off += n;
        len -= n;
    }
    free(buf);
    return st;
}

static cairn_status stored_crc_mismatch(const cairn__source *f, const cairn__zip_member *m,
                                        uint32_t got, cairn_error *err)
{
    char where[512];
    return cairn__fail(err, CAIRN_E_CHECKSUM, "%s: CRC-32 mismatch (stored %08x, computed %08x "
                       "over %llu bytes at offset %llu)", cairn__zip_where(f, m, where,
                       sizeof where), m->crc, got, (unsigned long long)m->size,
                       (unsigned long long)m->data_offset);
}

static cairn_status read_stored(const cairn__source *f, const cairn__zip_member *m, uint64_t skip,
                                uint8_t *dst, size_t len, unsigned flags, cairn_error *err)
{
    CAIRN_TRY((flags & CAIRN__ZIP_PEEK ? cairn__source_read_cold : cairn__source_read)(
        f, m->data_offset + skip, dst, len, err));
    if (!(flags & CAIRN__ZIP_CHECK))
        return CAIRN_OK;
    uint32_t crc = 0;
    CAIRN_TRY(crc_range(f, m->data_offset, skip, &crc, err));
    crc = crc_update(crc, dst, len);
    CAIRN_TRY(crc_range(f, m->data_offset + skip + len, m->size - skip - len, &crc, err));
    return crc == m->crc ? CAIRN_OK : stored_crc_mismatch(f, m, crc, err);
}

cairn_status cairn__zip_read(const cairn__source *f, const cairn__zip_member *m, uint64_t skip,
                             void *dst, size_t len, unsigned flags, cairn_error *err)
{
    char where[512];
    if (skip > m->size || len > m->size - skip)
        return cairn__fail(err, CAIRN_E_ARG, "%s: read of %zu bytes at %llu is outside the "
                           "member's %llu bytes", cairn__zip_where(f, m, where, sizeof where),
                           len, (unsigned long long)skip, (unsigned long long)m->size);
    int check = (flags & CAIRN__ZIP_CHECK) != 0;
    if (m->method == CAIRN__ZIP_STORED)
        return read_stored(f, m, skip, dst, len, flags, err);
    return read_deflated(f, m, skip, dst, len, check, err);
}

cairn_status cairn__zip_verify(const cairn__source *f, const cairn__zip_member *m, cairn_error *err)
{
    if (m->method == CAIRN__ZIP_DEFLATED)
        return read_deflated(f, m, 0, NULL, 0, 1, err);
    uint32_t crc = 0;
    CAIRN_TRY(crc_range(f, m->data_offset, m->size, &crc, err));
    return crc == m->crc ? CAIRN_OK : stored_crc_mismatch(f, m, crc, err);
}

static cairn_status stream_stored(const cairn__source *f, const cairn__zip_member *m,
                                  cairn__zip_put_fn put, void *ctx, uint8_t *buf,
                                  cairn_error *err)
{
    uint32_t crc = 0;
    for (uint64_t at = 0; at < m->size;) {
        size_t n = m->size - at < IO_CHUNK ? (size_t)(m->size - at) : IO_CHUNK;
        CAIRN_TRY(cairn__source_read(f, m->data_offset + at, buf, n, err));
        crc = crc_update(crc, buf, n);
        CAIRN_TRY(put(ctx, buf, n, err));
        at += n;
    }
    return crc == m->crc ? CAIRN_OK : stored_crc_mismatch(f, m, crc, err);
}

static cairn_status stream_deflated(const cairn__source *f, const cairn__zip_member *m,
                                    cairn__zip_put_fn put, void *ctx, uint8_t *buf,
                                    cairn_error *err)
{
    inflater in;
    cairn_status st = inflater_init(&in, f, m, err);
    for (uint64_t at = 0; st == CAIRN_OK && at < m->size;) {
        size_t n = m->size - at < IO_CHUNK ? (size_t)(m->size - at) : IO_CHUNK;
        st = pull(&in, buf, n, err);
        if (st == CAIRN_OK)
            st = put(ctx, buf, n, err);
        at += n;
    }
    if (st == CAIRN_OK)
        st = finish(&in, err);
    inflater_end(&in);
    return st;
}

cairn_status cairn__zip_stream(const cairn__source *f, const cairn__zip_member *m,
                               cairn__zip_put_fn put, void *ctx, cairn_error *err)
{
    uint8_t *buf = malloc(IO_CHUNK);
    if (!buf) {
        char where[512];
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory",
                           cairn__zip_where(f, m, where, sizeof where));
    }
    cairn_status st = m->method == CAIRN__ZIP_STORED ? stream_stored(f, m, put, ctx, buf, err)
                                                     : stream_deflated(f, m, put, ctx, buf, err);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------- sniff */

int cairn__zip_magic(const uint8_t *b, size_t n)
{
    return n >= 4 && b[0] == 'P' && b[1] == 'K' &&
           ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6));
}

static int ends_with(const cairn__zip_member *m, const char *suffix)
{
    size_t n = strlen(suffix);
    return m->name_len >= n && memcmp(m->name + m->name_len - n, suffix, n) == 0;
}

cairn_status cairn__zip_sniff(const cairn__source *f, cairn__zip_kind *kind, cairn_error *err)
{
    cairn__zip z;
    *kind = CAIRN__ZIP_OTHER;
    CAIRN_TRY(cairn__zip_open(f, UINT64_MAX, &z, err));
    int npy = z.count == 0, pickle = 0;
    for (uint64_t i = 0; i < z.count; i++) {
        const cairn__zip_member *m = &z.members[i];
        npy |= ends_with(m, ".npy");
        pickle |= strcmp(m->name, "data.pkl") == 0 || ends_with(m, "/data.pkl");
    }
    cairn__zip_close(&z);
    *kind = pickle ? CAIRN__ZIP_TORCH : npy ? CAIRN__ZIP_NPZ : CAIRN__ZIP_OTHER;
    return CAIRN_OK;
}

/* ------------------------------------------------------------------ writer */

struct cairn__zip_entry {
    char *name;
    size_t name_len;
    uint16_t method, flags;
    uint32_t crc;
    uint64_t comp, size, offset;
};

void cairn__zipw_init(cairn__zip_writer *zw, cairn__sink *sink)
{
    memset(zw, 0, sizeof *zw);
    zw->sink = sink;
    zw->level = Z_DEFAULT_COMPRESSION;
}

void cairn__zipw_free(cairn__zip_writer *zw)
{
    for (size_t i = 0; i < zw->count; i++)
        free(zw->entries[i].name);
    free(zw->entries);
    zw->entries = NULL;
    zw->count = zw->cap = 0;
}

static int ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

static cairn_status new_entry(cairn__zip_writer *zw, const char *name, size_t name_len,
                              cairn__zip_entry **out, cairn_error *err)
{
    if (!CAIRN__GROW(zw->entries, zw->cap, zw->count, 16))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", zw->sink->path);
    cairn__zip_entry *e = &zw->entries[zw->count];
    memset(e, 0, sizeof *e);
    if (!(e->name = malloc(name_len + 1)))
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", zw->sink->path);
    memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    e->name_len = name_len;
    e->offset = zw->sink->pos;
    e->flags = ascii(name, name_len) ? 0 : FLAG_UTF8; /* as Python's zipfile */
    zw->count++;
    *out = e;
    return CAIRN_OK;
}

/* A local header with `extra` (extra_len bytes) after the name. */
static cairn_status write_local(cairn__zip_writer *zw, const cairn__zip_entry *e, int zip64,
                                const uint8_t *extra, size_t extra_len, cairn_error *err)
{
    uint8_t h[LOCAL_SIZE];
    int descriptor = (e->flags & FLAG_DESCRIPTOR) != 0;
    cairn__put32(h, SIG_LOCAL);
    cairn__put16(h + 4, zip64 ? 45 : 20);
    cairn__put16(h + 6, e->flags);
    cairn__put16(h + 8, e->method);
    cairn__put16(h + 10, 0);
    cairn__put16(h + 12, DOS_DATE_1980);
    cairn__put32(h + 14, descriptor ? 0 : e->crc);
    cairn__put32(h + 18, zip64 ? U32_MAX : descriptor ? 0 : (uint32_t)e->comp);
    cairn__put32(h + 22, zip64 ? U32_MAX : descriptor ? 0 : (uint32_t)e->size);
    cairn__put16(h + 26, (uint16_t)e->name_len);
    cairn__put16(h + 28, (uint16_t)extra_len);
    CAIRN_TRY(cairn__sink_write(zw->sink, h, sizeof h, err));
    CAIRN_TRY(cairn__sink_write(zw->sink, e->name, e->name_len, err));
    return cairn__sink_write(zw->sink, extra, extra_len, err);
}

/* Local extra data for a stored member: ZIP64 sizes when needed, then the
 * alignment padding. Returns its length; `x` has room for 20 + align + 6. */
static size_t stored_extra(const cairn__zip_entry *e, int zip64, uint64_t align,
                           uint64_t align_at, uint8_t *x)
{
    size_t n = 0;
    if (zip64) {
        cairn__put16(x, EXTRA_ZIP64);
        cairn__put16(x + 2, 16);
        cairn__put64(x + 4, e->size);
        cairn__put64(x + 12, e->comp);
        n = 20;
    }
    if (align <= 1)
        return n;
    uint64_t at = e->offset + LOCAL_SIZE + e->name_len + n + align_at;
    uint64_t pad = (align - at % align) % align;
    if (pad > 0 && pad < ALIGN_EXTRA_MIN)
        pad += align;
    if (pad == 0)
        return n;
    cairn__put16(x + n, EXTRA_ALIGN);
    cairn__put16(x + n + 2, (uint16_t)(pad - 4));
    cairn__put16(x + n + 4, (uint16_t)align);
    memset(x + n + 6, 0, (size_t)pad - 6);
    return n + (size_t)pad;
}

static cairn_status add_stored(cairn__zip_writer *zw, cairn__zip_entry *e,
                               const cairn__zip_piece *pieces, size_t n, uint64_t align,
                               uint64_t align_at, cairn_error *err)
{
    for (size_t i = 0; i < n; i++)
        e->crc = crc_update(e->crc, pieces[i].data, pieces[i].len);
    int zip64 = zw->force_zip64 || e->size >= U32_MAX;
    uint8_t *x = malloc(20 + (size_t)align + ALIGN_EXTRA_MIN);
    if (!x)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", zw->sink->path);
    size_t xlen = stored_extra(e, zip64, align, align_at, x);
    cairn_status st = write_local(zw, e, zip64, x, xlen, err);
    free(x);
    for (size_t i = 0; i < n && st == CAIRN_OK; i++)
        st = cairn__sink_write(zw->sink, pieces[i].data, (size_t)pieces[i].len, err);
    return st;
}

/* Runs deflate over the pieces, writing what comes out. */
static cairn_status deflate_pieces(cairn__zip_writer *zw, cairn__zip_entry *e, z_stream *zs,
                                   const cairn__zip_piece *pieces, size_t n, uint8_t *out,
                                   cairn_error *err)
{
    for (size_t i = 0; i <= n; i++) {
        const uint8_t *p = i < n ? pieces[i].data : NULL;
        uint64_t left = i < n ? pieces[i].len : 0;
        if (p)
            e->crc = crc_update(e->crc, p, left);
        int flush;
        do {
            uInt k = left > ZLIB_CHUNK ? ZLIB_CHUNK : (uInt)left;
            flush = i == n ? Z_FINISH : Z_NO_FLUSH;
            zs->next_in = (Bytef *)(uintptr_t)p;
            zs->avail_in = k;
            int rc;
            do {
                zs->next_out = out;
                zs->avail_out = IO_CHUNK;
                rc = deflate(zs, flush);
                if (rc == Z_STREAM_ERROR)
                    return cairn__fail(err, CAIRN_E_STATE, "%s: member '%s': deflate failed",
                                       zw->sink->path, e->name);
                size_t made = IO_CHUNK - zs->avail_out;
                e->comp += made;
                CAIRN_TRY(cairn__sink_write(zw->sink, out, made, err));
            } while (zs->avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
            if (p)
                p += k;
            left -= k;
        } while (left > 0);
    }
    return CAIRN_OK;
}

static cairn_status add_deflated(cairn__zip_writer *zw, cairn__zip_entry *e,
                                 const cairn__zip_piece *pieces, size_t n, cairn_error *err)
{
    e->method = CAIRN__ZIP_DEFLATED;
    e->flags |= FLAG_DESCRIPTOR; /* sizes and CRC follow the data */
    int zip64 = zw->force_zip64 || compressBound((uLong)e->size) >= U32_MAX;
    uint8_t x[20] = {0};
    cairn__put16(x, EXTRA_ZIP64);
    cairn__put16(x + 2, 16); /* sizes are in the data descriptor */
    CAIRN_TRY(write_local(zw, e, zip64, x, zip64 ? sizeof x : 0, err));
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    uint8_t *out = malloc(IO_CHUNK);
    int rc = out ? deflateInit2(&zs, zw->level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY)
                 : Z_MEM_ERROR;
    if (rc != Z_OK) {
        free(out);
        return cairn__fail(err, rc == Z_MEM_ERROR ? CAIRN_E_NOMEM : CAIRN_E_ARG,
                           "%s: member '%s': cannot start deflate (zlib error %d)", zw->sink->path,
                           e->name, rc);
    }
    cairn_status st = deflate_pieces(zw, e, &zs, pieces, n, out, err);
    deflateEnd(&zs);
    free(out);
    CAIRN_TRY(st);
    uint8_t d[24];
    cairn__put32(d, SIG_DESCRIPTOR);
    cairn__put32(d + 4, e->crc);
    if (zip64) {
        cairn__put64(d + 8, e->comp);
        cairn__put64(d + 16, e->size);
        return cairn__sink_write(zw->sink, d, 24, err);
    }
    cairn__put32(d + 8, (uint32_t)e->comp);
    cairn__put32(d + 12, (uint32_t)e->size);
    return cairn__sink_write(zw->sink, d, 16, err);
}

cairn_status cairn__zipw_add(cairn__zip_writer *zw, const char *name, size_t name_len,
                             const cairn__zip_piece *pieces, size_t n, int deflate,
                             uint64_t align, uint64_t align_at, cairn_error *err)
{
    if (name_len == 0 || name_len > U16_MAX)
        return cairn__fail(err, CAIRN_E_LIMIT, "%s: a ZIP member name must be 1 to 65535 bytes "
                           "(got %zu)", zw->sink->path, name_len);
    if (align > 4096 || (align & (align - 1)))
        return cairn__fail(err, CAIRN_E_ARG, "%s: member alignment %llu is not a power of two "
                           "up to 4096", zw->sink->path, (unsigned long long)align);
    cairn__zip_entry *e = NULL;
    CAIRN_TRY(new_entry(zw, name, name_len, &e, err));
    for (size_t i = 0; i < n; i++)
        e->size += pieces[i].len;
    if (deflate)
        return add_deflated(zw, e, pieces, n, err);
    e->comp = e->size;
    return add_stored(zw, e, pieces, n, align, align_at, err);
}

static cairn_status write_central(cairn__zip_writer *zw, const cairn__zip_entry *e,
                                  cairn_error *err)
{
    int big_size = zw->force_zip64 || e->size >= U32_MAX;
    int big_comp = zw->force_zip64 || e->comp >= U32_MAX;
    int big_off = zw->force_zip64 || e->offset >= U32_MAX;
    uint8_t h[CENTRAL_SIZE], x[28];
    size_t xlen = 0;
    if (big_size || big_comp || big_off) {
        size_t k = 4;
        if (big_size)
            cairn__put64(x + k, e->size), k += 8;
        if (big_comp)
            cairn__put64(x + k, e->comp), k += 8;
        if (big_off)
            cairn__put64(x + k, e->offset), k += 8;
        cairn__put16(x, EXTRA_ZIP64);
        cairn__put16(x + 2, (uint16_t)(k - 4));
        xlen = k;
    }
    int v = xlen ? 45 : 20;
    cairn__put32(h, SIG_CENTRAL);
    cairn__put16(h + 4, (uint16_t)(MADE_BY_UNIX | (unsigned)v));
    cairn__put16(h + 6, (uint16_t)v);
    cairn__put16(h + 8, e->flags);
    cairn__put16(h + 10, e->method);
    cairn__put16(h + 12, 0);
    cairn__put16(h + 14, DOS_DATE_1980);
    cairn__put32(h + 16, e->crc);
    cairn__put32(h + 20, big_comp ? U32_MAX : (uint32_t)e->comp);
    cairn__put32(h + 24, big_size ? U32_MAX : (uint32_t)e->size);
    cairn__put16(h + 28, (uint16_t)e->name_len);
    cairn__put16(h + 30, (uint16_t)xlen);
    cairn__put16(h + 32, 0);
    cairn__put16(h + 34, 0);
    cairn__put16(h + 36, 0);
    cairn__put32(h + 38, EXTERNAL_ATTR);
    cairn__put32(h + 42, big_off ? U32_MAX : (uint32_t)e->offset);
    CAIRN_TRY(cairn__sink_write(zw->sink, h, sizeof h, err));
    CAIRN_TRY(cairn__sink_write(zw->sink, e->name, e->name_len, err));
    return cairn__sink_write(zw->sink, x, xlen, err);
}

/* The ZIP64 end record and its locator, right before the end record. */
static cairn_status write_end64(cairn__zip_writer *zw, uint64_t cd_offset, uint64_t cd_size,
                                cairn_error *err)
{
    uint8_t r[END64_SIZE + LOCATOR_SIZE];
    uint64_t at = zw->sink->pos;
    cairn__put32(r, SIG_END64);
    cairn__put64(r + 4, END64_SIZE - 12);
    cairn__put16(r + 12, MADE_BY_UNIX | 45);
    cairn__put16(r + 14, 45);
    cairn__put32(r + 16, 0);
    cairn__put32(r + 20, 0);
    cairn__put64(r + 24, zw->count);
    cairn__put64(r + 32, zw->count);
    cairn__put64(r + 40, cd_size);
    cairn__put64(r + 48, cd_offset);
    uint8_t *l = r + END64_SIZE;
    cairn__put32(l, SIG_LOCATOR);
    cairn__put32(l + 4, 0);
    cairn__put64(l + 8, at);
    cairn__put32(l + 16, 1);
    return cairn__sink_write(zw->sink, r, sizeof r, err);
}

cairn_status cairn__zipw_finish(cairn__zip_writer *zw, cairn_error *err)
{
    uint64_t cd_offset = zw->sink->pos;
    for (size_t i = 0; i < zw->count; i++)
        CAIRN_TRY(write_central(zw, &zw->entries[i], err));
    uint64_t cd_size = zw->sink->pos - cd_offset;
    int zip64 = zw->force_zip64 || zw->count >= U16_MAX || cd_size >= U32_MAX ||
                cd_offset >= U32_MAX;
    if (zip64)
        CAIRN_TRY(write_end64(zw, cd_offset, cd_size, err));
    uint8_t h[END_SIZE];
    uint16_t count = zip64 ? U16_MAX : (uint16_t)zw->count;
    cairn__put32(h, SIG_END);
    cairn__put16(h + 4, 0);
    cairn__put16(h + 6, 0);
    cairn__put16(h + 8, count);
    cairn__put16(h + 10, count);
    cairn__put32(h + 12, zip64 ? U32_MAX : (uint32_t)cd_size);
    cairn__put32(h + 16, zip64 ? U32_MAX : (uint32_t)cd_offset);
    cairn__put16(h + 20, 0);
    return cairn__sink_write(zw->sink, h, sizeof h, err);
}
