/*
 * hash.h -- XXH3-64 of payload bytes, as fast as this CPU allows.
 *
 * Debian's libxxhash is built for baseline x86-64 (SSE2, about 10 GB/s
 * here); the same library's header compiled inline for AVX2 runs about 3x
 * faster (20 ms per GiB from cache) and for AVX-512 faster again (13.5 ms),
 * which is the difference between verifying at read() speed and doubling
 * the cost of a read. The result is the same XXH3-64 from every build
 * (tests/test_hash.c checks each one this CPU can run against the library).
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

/* One build of XXH3-64 (state_new returns a reset XXH3_state_t, or NULL). */
typedef struct cairn__xxh3_build {
    const char *name;
    uint64_t (*hash)(const void *data, size_t len);
    void *(*state_new)(void);
    void (*update)(void *state, const void *data, size_t len);
    uint64_t (*digest)(const void *state);
    void (*state_free)(void *state);
} cairn__xxh3_build;

/* Every build this CPU can run, fastest first, NULL-terminated; the first
 * is the one cairn__hash and the hashers use. */
const cairn__xxh3_build *const *cairn__xxh3_builds(void);

#endif
