/* test_hash.c -- the AVX2 build of XXH3 and the dispatcher give exactly the
 * library's XXH3-64, one-shot and streamed in uneven pieces, at every
 * length around the algorithm's internal boundaries. */
#include "testutil.h"

#include "hash.h"
#include <xxhash.h>

int main(void)
{
    enum { MAX = 1 << 20 };
    uint8_t *buf = malloc(MAX + 64);
    uint64_t rng = 7;
    for (size_t i = 0; i < MAX + 64; i++)
        buf[i] = (uint8_t)tu_rand(&rng);
    int have_avx2 = __builtin_cpu_supports("avx2");
    int bad = 0;
    /* every length up to 2 KiB (all the short-input paths), then strides */
    for (size_t len = 0; len <= MAX; len += len < 2048 ? 1 : 4093) {
        const uint8_t *p = buf + (len % 61); /* unaligned starts too */
        uint64_t want = XXH3_64bits(p, len);
        bad += cairn__hash(p, len) != want;
        if (have_avx2)
            bad += cairn__hash_avx2(p, len) != want;
        if (len % 97 == 0 || len > 2048) {
            cairn__hasher *h = cairn__hasher_new();
            for (size_t done = 0; done < len;) {
                size_t n = (size_t)(tu_rand(&rng) % 5000) + 1;
                if (n > len - done)
                    n = len - done;
                cairn__hasher_update(h, p + done, n);
                done += n;
            }
            bad += cairn__hasher_digest(h) != want;
            cairn__hasher_free(h);
        }
    }
    CHECK(bad == 0);
    CHECK(cairn__hash("", 0) == UINT64_C(0x2D06800538D394C2)); /* FORMAT.md's empty checksum */
    fprintf(stderr, "avx2 %s\n", have_avx2 ? "checked" : "not on this CPU");
    free(buf);
    TEST_MAIN_END();
}
