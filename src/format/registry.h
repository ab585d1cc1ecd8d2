/*
 * registry.h -- every format cairn reads or writes, one row each
 * (registry.c). The archive face takes from here the format names
 * (cairn_format_name), detection by content, the choice of writer by file
 * extension and the list the CLI prints; nothing else lists formats.
 *
 * Adding a format: a folder under src/format/ with its reader and/or writer
 * ops, one CAIRN_FORMAT_ value in include/cairn.h, one row in registry.c.
 */
#ifndef CAIRN_FORMAT_REGISTRY_H
#define CAIRN_FORMAT_REGISTRY_H

#include "format/format.h"

/* Detection by content: sets *ops to the reader when the input is of this
 * format (head: its first n <= 8 bytes), leaves it NULL otherwise. An error
 * means the input is this kind of container but malformed. */
typedef cairn_status (*cairn__probe_fn)(const cairn_file *f, const uint8_t *head, size_t n,
                                        const cairn__reader_ops **ops, cairn_error *err);

typedef struct cairn__format_row {
    cairn_format format;
    const char *name;       /* cairn_format_name() */
    const char *extensions; /* space-separated, lower case, the usual one first; NULL: none */
    const cairn__reader_ops *reader; /* NULL: not read */
    const cairn__writer_ops *writer; /* NULL: not written */
    cairn__probe_fn probe;  /* NULL: never detected by content */
    int probe_late;         /* probed after every other row and the composite archives
                               (a probe that accepts almost any bytes) */
    uint64_t alignment;     /* default payload alignment of its writer */
} cairn__format_row;

/* Content tests that need more than the first bytes, each in its format's
 * folder: 1 when the input starts with PROTO 2..5 or a compressed joblib
 * file's magic; when a ZIP input holds model.weights.h5 (Keras 3); when the
 * input starts with torch's legacy magic-number pickle. */
int cairn__pickle_sniff(const cairn_file *f);
int cairn__keras_sniff(const cairn_file *f);
int cairn__torch_legacy_sniff(const cairn_file *f);
/* 1 when the input is a cairn JSON document: '{', then the key "format"
 * with the value "cairn-json". */
int cairn__json_sniff(const cairn_file *f);

/* The rows in detection order; *count gets their number. */
const cairn__format_row *cairn__format_rows(size_t *count);
/* The row of a format code, or NULL. */
const cairn__format_row *cairn__format_row_of(cairn_format format);
/* The writable row whose extension ends `path` (case-insensitive), or NULL. */
const cairn__format_row *cairn__format_row_for_path(const char *path);

#endif
