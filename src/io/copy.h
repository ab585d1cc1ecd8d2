/*
 * copy.h -- copies of stored bytes into a caller's buffer that use more
 * than one core when the copy is large (slices that worker threads read at
 * once), and verified copies that hash each slice as it lands.
 */
#ifndef CAIRN_COPY_H
#define CAIRN_COPY_H

#include "io/source.h"
#include "common/hash.h"

/* Copies of fewer bytes than this stay on the calling thread. */
#define CAIRN__COPY_PARALLEL_MIN (4u << 20)

/* Copies `size` bytes at `offset` of f's source into dst, on up to
 * `threads` workers (cairn_open_opts.threads; 0 = CPUs) when size >=
 * CAIRN__COPY_PARALLEL_MIN. On failure the message is the failing slice's own. */
cairn_status cairn__copy_out(const cairn__source *f, unsigned threads, uint64_t offset,
                             uint8_t *dst, uint64_t size, cairn_error *err);

/* The same on the calling thread, feeding every byte copied, in order, to
 * `state` (which the caller created and digests): the bytes hashed are the
 * bytes in dst. */
cairn_status cairn__copy_out_hashed(const cairn__source *f, uint64_t offset, uint8_t *dst,
                                    uint64_t size, cairn__hasher *state, cairn_error *err);

#endif
