/*
 * zip.h -- a ZIP archive reader and writer for the formats that are ZIP files
 * (.npz today, PyTorch .pt next). The reader treats every archive as hostile
 * (docs/FORMAT.md §12.2 lists what it checks); the writer streams members
 * onto a cairn_writer's sink and writes the central directory at the end.
 *
 * Member names are keys, never paths: nothing here touches the file system
 * by name, and '/' or ".." mean nothing special.
 */
#ifndef CAIRN_ZIP_H
#define CAIRN_ZIP_H

#include "io/sink.h"
#include "io/source.h"

#define CAIRN__ZIP_STORED 0
#define CAIRN__ZIP_DEFLATED 8

/* Normative bounds (CAIRN_E_LIMIT beyond them): members per archive, and
 * bytes of central directory (read in one piece). */
#define CAIRN__ZIP_MAX_MEMBERS (UINT64_C(1) << 22)
#define CAIRN__ZIP_MAX_CD_SIZE (UINT64_C(1) << 30)
/* A deflated member may declare at most max(max_inflate, min(this x its
 * compressed size, CAIRN__ZIP_SIZE_LIMIT x the archive's size)) bytes
 * (cairn_open_opts.max_inflate). */
#define CAIRN__ZIP_RATIO_LIMIT 100
#define CAIRN__ZIP_SIZE_LIMIT 4
/* Deflate cannot do better than 1032:1 (a 258-byte match in 2 bits), so a
 * larger declared ratio is malformed whatever the limits say. */
#define CAIRN__ZIP_DEFLATE_MAX_RATIO 1032

/* One member, as the central directory describes it (checked against its
 * local header). */
typedef struct cairn__zip_member { /* 48 bytes: an archive may hold one per tensor */
    const char *name;       /* NUL-terminated (names never hold NUL); owned by the cairn__zip */
    uint64_t comp_size;     /* bytes in the file */
    uint64_t size;          /* bytes once inflated (== comp_size when stored) */
    uint64_t data_offset;   /* its first stored byte: the local header + 30 + name + extra */
    uint32_t crc;           /* CRC-32 of the uncompressed bytes */
    uint16_t name_len;      /* names are at most 65535 bytes */
    uint16_t method;        /* CAIRN__ZIP_STORED or CAIRN__ZIP_DEFLATED */
    uint16_t flags;         /* general purpose bits */
    uint16_t local_extra;   /* bytes of the local header's extra field */
} cairn__zip_member;

/* The file offset of m's local header. */
static inline uint64_t cairn__zip_header_offset(const cairn__zip_member *m)
{
    return m->data_offset - 30u - m->name_len - m->local_extra;
}

typedef struct cairn__zip {
    cairn__zip_member *members;         /* central directory order */
    const cairn__zip_member **by_name;  /* sorted by name (unsigned bytes, shorter first) */
    uint64_t count;
    char *names;                        /* every name, each followed by a NUL */
    uint64_t cd_offset, cd_size;
    int zip64;                          /* the end record needed its ZIP64 twin */
} cairn__zip;

/* Parses the end records and the central directory of f, and checks every
 * member's local header. `max_inflate` is cairn_open_opts.max_inflate after
 * defaults (UINT64_MAX = none). Member data is not read. On failure *z is
 * empty (cairn__zip_close is still safe). */
cairn_status cairn__zip_open(const cairn__source *f, uint64_t max_inflate, cairn__zip *z,
                             cairn_error *err);
void cairn__zip_close(cairn__zip *z);

/* The member named exactly name[0..len), or NULL. Binary search (a scan
 * after cairn__zip_drop_index). */
const cairn__zip_member *cairn__zip_find(const cairn__zip *z, const char *name, size_t len);
/* Frees the name index (8 bytes a member) of a reader done looking members
 * up by name: a file of many members keeps their records only. */
void cairn__zip_drop_index(cairn__zip *z);

/* Flags for cairn__zip_read. */
#define CAIRN__ZIP_CHECK 0x1u /* also check the whole member: its CRC-32 and, for deflated
                                 members, that the stream holds exactly the declared size */
#define CAIRN__ZIP_PEEK 0x2u  /* a stored member read with pread (cairn__source_read_cold),
                                 not the mapping: a small read of a header, one of many,
                                 or a copy whose pages in the mapping are not wanted */

/* Copies uncompressed bytes [skip, skip + len) of member m into dst (the
 * range must lie within m->size). Stored members are a plain copy; deflated
 * ones are inflated from their start, in memory bounded by the caller's
 * buffer plus zlib's state and 64 KiB, never past the declared size; without
 * CAIRN__ZIP_CHECK inflating stops at the end of the range (a header
 * peek). Thread-safe: no state outside the call. A CRC mismatch is
 * CAIRN_E_CHECKSUM; a stream that is not what the central directory says is
 * CAIRN_E_CORRUPT. */
cairn_status cairn__zip_read(const cairn__source *f, const cairn__zip_member *m, uint64_t skip,
                             void *dst, size_t len, unsigned flags, cairn_error *err);

/* Receives a member's bytes in order, a piece at a time (cairn__zip_stream). */
typedef cairn_status (*cairn__zip_put_fn)(void *ctx, const void *data, size_t len,
                                          cairn_error *err);
/* Hands all of member m's uncompressed bytes to `put` in pieces of at most
 * 64 KiB, checked as CAIRN__ZIP_CHECK checks them (CRC-32, and a deflated
 * stream's exact size): a member of any size costs zlib's state and one
 * piece. A failure of `put` stops the stream and is returned; a check that
 * fails comes after the last piece, so the caller drops what it got. */
cairn_status cairn__zip_stream(const cairn__source *f, const cairn__zip_member *m,
                               cairn__zip_put_fn put, void *ctx, cairn_error *err);
/* Checks a member's CRC-32 (and a deflated member's exact size) without
 * keeping its bytes. */
cairn_status cairn__zip_verify(const cairn__source *f, const cairn__zip_member *m, cairn_error *err);

/* A printable "PATH: member 'NAME'" for messages, into buf. */
const char *cairn__zip_where(const cairn__source *f, const cairn__zip_member *m, char *buf,
                             size_t size);

/* What a ZIP archive holds, by its member names (format detection). */
typedef enum cairn__zip_kind {
    CAIRN__ZIP_NPZ = 1,   /* no members, or some NAME.npy and no data.pkl */
    CAIRN__ZIP_TORCH = 2, /* a member data.pkl or .../data.pkl (torch.save) */
    CAIRN__ZIP_OTHER = 3
} cairn__zip_kind;

/* 1 when the first `n` bytes of an input start like a ZIP archive
 * ("PK\3\4", a local header, or "PK\5\6", the end record of an empty one). */
int cairn__zip_magic(const uint8_t *b, size_t n);

/* Opens the central directory (no limits: the format's reader applies them)
 * and classifies the archive by its member names: a member named data.pkl
 * or ending in "/data.pkl" makes it TORCH; else no members or any member
 * ending in ".npy" makes it NPZ; else OTHER. A malformed archive gives the
 * reader's error. */
cairn_status cairn__zip_sniff(const cairn__source *f, cairn__zip_kind *kind, cairn_error *err);

/* ------------------------------------------------------------------ writer */

/* One piece of a member's bytes (a member is the concatenation). */
typedef struct cairn__zip_piece {
    const void *data;
    uint64_t len;
} cairn__zip_piece;

typedef struct cairn__zip_entry cairn__zip_entry; /* what the central directory needs */

typedef struct cairn__zip_writer {
    cairn__sink *sink;
    cairn__zip_entry *entries;
    size_t count, cap;
    int force_zip64; /* ZIP64 fields everywhere (tests reach those paths with small files) */
    int level;       /* zlib level for deflated members */
} cairn__zip_writer;

void cairn__zipw_init(cairn__zip_writer *zw, cairn__sink *sink);
/* Appends one member made of `n` pieces. Stored members get a complete
 * local header (the CRC-32 is computed over the pieces first) and, when
 * `align` > 1, an extra field (id 0xD935, as Android's zipalign) that pads
 * the header so that member byte `align_at` lands on a multiple of `align`
 * in the file. Deflated members are compressed while streaming and followed
 * by a data descriptor (flag bit 3). ZIP64 fields are used where a size or
 * offset needs them. The caller checks that names are unique. */
cairn_status cairn__zipw_add(cairn__zip_writer *zw, const char *name, size_t name_len,
                             const cairn__zip_piece *pieces, size_t n, int deflate,
                             uint64_t align, uint64_t align_at, cairn_error *err);
/* Writes the central directory and the end records (ZIP64 ones when needed). */
cairn_status cairn__zipw_finish(cairn__zip_writer *zw, cairn_error *err);
void cairn__zipw_free(cairn__zip_writer *zw);

#endif /* CAIRN_ZIP_H */
