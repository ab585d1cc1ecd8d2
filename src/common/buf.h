/*
 * buf.h -- a growable byte buffer for headers and manifests built in memory
 * before they are written (GGUF and safetensors headers, torch's data.pkl,
 * signature manifests).
 */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include "common/internal.h"

/* Appends never fail on their own: the first allocation failure sets `oom`
 * and later appends do nothing, so builders stay one line per piece and the
 * caller checks once at the end. Zero-initialize; free(p) when done. */
typedef struct cairn__buf {
    char *p;
    size_t len, cap;
    int oom;
} cairn__buf;

void cairn__buf_put(cairn__buf *b, const void *data, size_t n);

#endif /* CAIRN_BUF_H */
