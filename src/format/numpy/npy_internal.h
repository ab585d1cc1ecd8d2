/*
 * npy_internal.h -- the .npy header codec (docs/FORMAT.md §10), shared by the
 * .npy reader and writer (npy.c) and by .npz members (npz.c), so both apply
 * exactly the same rules.
 *
 * "npy bytes" below are the bytes of one .npy file: a whole input for npy.c,
 * one ZIP member for npz.c. Offsets in cairn__npy_header are relative to the
 * first npy byte; messages add cairn__npy_origin.base to them.
 */
#ifndef CAIRN_NPY_INTERNAL_H
#define CAIRN_NPY_INTERNAL_H

#include "common/internal.h"

#define CAIRN__NPY_MAGIC_LEN 6
#define CAIRN__NPY_PREAMBLE_MAX 12 /* magic, version, u32 header length */
/* Room for any header the writer produces: the preamble, a dict of 8 dims of
 * 20 digits and the fixed text (far below 512 bytes), and 64 bytes of padding. */
#define CAIRN__NPY_HEADER_BUF (CAIRN__NPY_PREAMBLE_MAX + 512 + 64)

/* Who the npy bytes belong to, for messages. `where` starts every message
 * (the file path, or "PATH: member 'NAME'"); `base` is added to every offset
 * (the file offset of the first npy byte, or 0 when offsets count bytes of an
 * inflated member and `where` says so). */
typedef struct cairn__npy_origin {
    const char *where;
    uint64_t base;
} cairn__npy_origin;

/* What a preamble and header dict say, once parsed and checked. */
typedef struct cairn__npy_header {
    uint32_t major, minor;
    uint64_t header_at, header_len; /* the dict text; the data starts right after it */
    cairn_dtype dtype;
    int big_endian;    /* '>' on a multi-byte type */
    int fortran_order; /* as written (see cairn__npy_fortran_matters) */
    uint32_t rank;
    uint64_t dims[CAIRN_MAX_RANK];
    char descr[16]; /* as written, for messages */
} cairn__npy_header;

/* 1 when `b` (at least CAIRN__NPY_MAGIC_LEN bytes) starts with "\x93NUMPY". */
int cairn__npy_is_magic(const uint8_t *b);

/* Parses the preamble. `b` holds the first min(size, CAIRN__NPY_PREAMBLE_MAX)
 * of the `size` npy bytes. Checks the magic (CAIRN_E_FORMAT), the version
 * (1.0, 2.0, 3.0), the v2/v3 header bound of 1 MiB (CAIRN_E_LIMIT) and that
 * the header fits in `size`; fills major, minor, header_at, header_len. */
cairn_status cairn__npy_preamble(const uint8_t *b, uint64_t size, const cairn__npy_origin *o,
                                 cairn__npy_header *h, cairn_error *err);

/* Parses the header dict: `text` holds h->header_len bytes (the preamble was
 * parsed into `h` first). Fills dtype, byte order, fortran_order and shape. */
cairn_status cairn__npy_parse_header(const char *text, const cairn__npy_origin *o,
                                     cairn__npy_header *h, cairn_error *err);

/* Element count and payload bytes of a parsed header, checked against the
 * `size` npy bytes: the shape product must not overflow and the payload
 * after the header must hold it (CAIRN_E_CORRUPT otherwise). Bytes past the
 * payload are allowed and ignored, as numpy ignores them. */
cairn_status cairn__npy_payload(const cairn__npy_header *h, uint64_t size,
                                const cairn__npy_origin *o, uint64_t *count, uint64_t *bytes,
                                cairn_error *err);

/* 1 when the stored layout differs from C order: fortran_order with more
 * than one dimension above 1 (otherwise both orders are the same bytes). */
int cairn__npy_fortran_matters(const cairn__npy_header *h);

/* 1 when NumPy has a descr for `dtype` (not BF16, not FP8). */
int cairn__npy_has_descr(cairn_dtype dtype);

/* Writes the preamble and header np.save (NumPy 1.24) writes for a
 * little-endian C-order array of `dtype` (which must have a descr) into
 * `buf` (CAIRN__NPY_HEADER_BUF bytes); returns its length, a multiple of 64:
 * the data follows it. */
size_t cairn__npy_header_write(uint8_t *buf, cairn_dtype dtype, uint32_t rank,
                               const uint64_t *dims);

#endif /* CAIRN_NPY_INTERNAL_H */
