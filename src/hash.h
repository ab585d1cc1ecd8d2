/*
 * hash.h -- XXH3-64 of payload bytes, as fast as this CPU allows.
 *
 * Debian's libxxhash is built for baseline x86-64 (SSE2, about 10 GB/s
 * here); the same library's header, compiled inline for AVX2, runs about 3x
 * faster, which is the difference between verifying at read() speed and
 * doubling the cost of a read. The result is the same XXH3-64 either way
 * (tests/test_hash.c checks both paths against the library).
 */
#ifndef CAIRN_HASH_H
#define CAIRN_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t cairn__hash(const void *data, size_t len);

/* Streaming: a NULL return means out of memory. */
typedef struct cairn__hasher cairn__hasher;
cairn__hasher *cairn__hasher_new(void);
void cairn__hasher_update(cairn__hasher *h, const void *data, size_t len);
uint64_t cairn__hasher_digest(const cairn__hasher *h);
void cairn__hasher_free(cairn__hasher *h);

/* The AVX2 build of the same functions (src/hash_avx2.c); call only when
 * the CPU has AVX2. */
uint64_t cairn__hash_avx2(const void *data, size_t len);
void *cairn__hasher_avx2_new(void);
void cairn__hasher_avx2_update(void *state, const void *data, size_t len);
uint64_t cairn__hasher_avx2_digest(const void *state);
void cairn__hasher_avx2_free(void *state);

#endif
