/*
 * s3_xml.h -- the few tags of S3's XML answers, found by a strict, bounded
 * scan (no XML library for a handful of flat elements).
 *
 * S3 answers are flat: the elements read here (Key, Size, UploadId, Code,
 * IsTruncated, NextContinuationToken, ...) hold text only. The scan finds
 * "<Tag>" ... "</Tag>" inside a given span; their text may carry the five
 * predefined entities and numeric character references, nothing else. A '<'
 * inside a text, an unknown entity, a reference to NUL or an invalid code
 * point, or bad UTF-8 makes the answer malformed (the caller reports
 * CAIRN_E_CORRUPT). Nothing here allocates more than the text's length + 1.
 */
#ifndef CAIRN_IO_S3_XML_H
#define CAIRN_IO_S3_XML_H

#include <stddef.h>
#include <stdint.h>

typedef struct cairn__xml_span {
    const char *p;
    size_t len;
} cairn__xml_span;

/* Finds the first <tag>...</tag> at or after *pos within `in`. On success
 * returns 1, sets *inner to its content and moves *pos past the closing tag.
 * Returns 0 when there is none, -1 when an opening tag has no closing one. */
int cairn__xml_next(cairn__xml_span in, size_t *pos, const char *tag, cairn__xml_span *inner);

/* The decoded text of a leaf element's content (malloc'ed, NUL-terminated),
 * or NULL if it is malformed (see above) or an allocation failed. */
char *cairn__xml_text(cairn__xml_span inner);

/* The first <tag> in `in`, decoded (NULL if absent or malformed). */
char *cairn__xml_get(cairn__xml_span in, const char *tag);

/* A decimal unsigned integer without sign, spaces or leading '+'
 * (at most 20 digits, no overflow): 0 and *out on success, -1 otherwise. */
int cairn__xml_u64(cairn__xml_span inner, uint64_t *out);

/* Appends `s` escaped for XML text (&, <, >, ", ') to a caller's buffer
 * through the put callback. */
void cairn__xml_escape(const char *s, void (*put)(void *ctx, const char *p, size_t n), void *ctx);

#endif /* CAIRN_IO_S3_XML_H */
