/* joblib_codec.h -- joblib.dump's compressed files (compress=...): which
 * compressor a file's first bytes name (joblib's own magic numbers,
 * joblib/compressor.py), and decompressing one whole stream into memory,
 * bounded by max_inflate and the pickle machine's 64 MiB (docs/FORMAT.md,
 * "Pickle and joblib as inert data"). */
#ifndef CAIRN_JOBLIB_CODEC_H
#define CAIRN_JOBLIB_CODEC_H

#include "common/internal.h"

typedef enum cairn__joblib_codec {
    CAIRN__JOBLIB_NONE = 0, /* not compressed (or nothing joblib writes) */
    CAIRN__JOBLIB_ZLIB,     /* zlib or gzip: 78 xx (header checksum) or 1f 8b */
    CAIRN__JOBLIB_BZ2,      /* "BZh" */
    CAIRN__JOBLIB_LZ4,      /* an LZ4 frame: 04 22 4d 18 */
    CAIRN__JOBLIB_XZ,       /* fd "7zXZ" 00 */
    CAIRN__JOBLIB_LZMA      /* legacy .lzma ("alone"): 5d 00, as joblib checks */
} cairn__joblib_codec;

/* How many first bytes cairn__joblib_detect looks at, at most. */
#define CAIRN__JOBLIB_MAGIC_MAX 6

/* The compressor the first n bytes name, CAIRN__JOBLIB_NONE for none. */
cairn__joblib_codec cairn__joblib_detect(const uint8_t *h, size_t n);

/* Decompresses `in` (one stream of `codec`) into a new buffer (*out, to
 * free) of *out_len bytes. CAIRN_E_LIMIT past the output limit (or lzma's
 * memory limit), CAIRN_E_CORRUPT for a corrupt or truncated stream, each
 * naming `path`, the compressor and the input offset. */
cairn_status cairn__joblib_unpack(const char *path, uint64_t max_inflate,
                                  cairn__joblib_codec codec,
                                  const uint8_t *in, size_t in_len, uint8_t **out,
                                  size_t *out_len, cairn_error *err);

#endif
