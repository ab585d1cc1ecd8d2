/* test_hash.c -- every build of XXH3 this CPU can run (AVX-512, AVX2, the
 * library) and the dispatcher give exactly the library's XXH3-64, one-shot
 * and streamed in uneven pieces, at every length around the algorithm's
 * internal boundaries. */
#include "testutil.h"

#include "common/hash.h"
#include <xxhash.h>

/* The build's streaming digest of p[0..len) fed in random pieces. */
static uint64_t streamed(const cairn__xxh3_build *b, const uint8_t *p, size_t len, uint64_t *rng)
{
    void *state = b->state_new();
    if (!state)
        return 0;
    for (size_t done = 0; done < len;) {
        size_t n = (size_t)(tu_rand(rng) % 5000) + 1;
        if (n > len - done)
            n = len - done;
        b->update(state, p + done, n);
        done += n;
    }
    uint64_t h = b->digest(state);
    b->state_free(state);
    return h;
}

int main(void)
{
    enum { MAX = 1 << 20 };
    uint8_t *buf = malloc(MAX + 64);
    uint64_t rng = 7;
    for (size_t i = 0; i < MAX + 64; i++)
        buf[i] = (uint8_t)tu_rand(&rng);
    const cairn__xxh3_build *const *builds = cairn__xxh3_builds();
    int bad = 0;
    /* every length up to 2 KiB (all the short-input paths), then strides */
    for (size_t len = 0; len <= MAX; len += len < 2048 ? 1 : 4093) {
        const uint8_t *p = buf + (len % 61); /* unaligned starts too */
        uint64_t want = XXH3_64bits(p, len);
        bad += cairn__hash(p, len) != want;
        for (size_t b = 0; builds[b]; b++) {
            bad += builds[b]->hash(p, len) != want;
            if (len % 97 == 0 || len > 2048)
                bad += streamed(builds[b], p, len, &rng) != want;
        }
        if (len % 97 == 0 || len > 2048) {
            cairn__hasher *h = cairn__hasher_new();
            cairn__hasher_update(h, p, len / 3);
            cairn__hasher_update(h, p + len / 3, len - len / 3);
            bad += cairn__hasher_digest(h) != want;
            cairn__hasher_free(h);
        }
    }
    CHECK(bad == 0);
    CHECK(cairn__hash("", 0) == UINT64_C(0x2D06800538D394C2)); /* FORMAT.md's empty checksum */
    CHECK(builds[0] != NULL && !strcmp(builds[0]->name, cairn__xxh3_builds()[0]->name));
    for (size_t b = 0; builds[b]; b++)
        fprintf(stderr, "checked build %s%s\n", builds[b]->name, b ? "" : " (in use)");
    free(buf);
    TEST_MAIN_END();
}
