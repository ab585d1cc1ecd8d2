/*
 * testutil.h -- a minimal harness for ctest programs: each test file is one
 * executable; CHECK failures print file:line and the failed expression and
 * make main return 1. Exit code 77 means "skipped" (ctest SKIP_RETURN_CODE).
 */
#ifndef CAIRN_TESTUTIL_H
#define CAIRN_TESTUTIL_H

#include <cairn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tu_failures;
static int tu_checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        tu_checks++;                                                                 \
        if (!(cond)) {                                                               \
            tu_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Checks a cairn_status against an expected one and prints the error detail. */
#define CHECK_ST(expr, expected)                                                        \
    do {                                                                                \
        tu_checks++;                                                                    \
        int tu_st_ = (int)(expr);                                                       \
        if (tu_st_ != (int)(expected)) {                                                \
            tu_failures++;                                                              \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d\n", __FILE__, __LINE__, \
                    #expr, tu_st_, (int)(expected));                                    \
        }                                                                               \
    } while (0)

#define CHECK_OK(expr) CHECK_ST(expr, 0)

#define TEST_MAIN_END()                                                         \
    do {                                                                        \
        fprintf(stderr, "%d checks, %d failed\n", tu_checks, tu_failures);     \
        return tu_failures ? 1 : 0;                                             \
    } while (0)

/* A fresh scratch directory for this test program (under CAIRN_TEST_TMP or /tmp). */
static inline const char *tu_tmpdir(const char *test_name)
{
    static char dir[4096];
    const char *base = getenv("CAIRN_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0777);
    snprintf(dir, sizeof dir, "%s/%s-%d", base, test_name, (int)getpid());
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        perror(dir);
        exit(1);
    }
    return dir;
}

/* A deterministic pseudo-random generator for test data (splitmix64). */
static inline uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Small file and data helpers shared by the format tests. */

static inline int tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = n ? fwrite(data, 1, n, fp) : 0;
    return (fclose(fp) == 0 && w == n) ? 0 : -1;
}

static inline uint8_t *tu_read_whole(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    *n = 0;
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && len > 0 && fread(buf, 1, (size_t)len, fp) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *n = buf ? (size_t)len : 0;
    return buf;
}

static inline uint64_t tu_elem_count(uint32_t rank, const uint64_t *dims)
{
    uint64_t c = 1;
    for (uint32_t d = 0; d < rank; d++)
        c *= dims[d];
    return c;
}

static inline void tu_fill(uint8_t *p, size_t n, cairn_dtype dtype, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)tu_rand(&seed);
    if (dtype == CAIRN_BOOL)
        for (size_t i = 0; i < n; i++)
            p[i] &= 1;
}

#endif
