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
#include <sys/wait.h>
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

/* "<dir>/<name>" in one of four rotating static buffers (so up to four can be
 * in use at once, e.g. as the arguments of one call). */
static inline char *tu_path(const char *dir, const char *name)
{
    static char buf[4][4400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Removes the scratch directory `dir` (rm -rf) when every check so far passed,
 * counting the removal as a check; a failed run leaves it for inspection. */
static inline void tu_remove_tmpdir_if_passed(const char *dir)
{
    if (tu_failures != 0)
        return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_checks++;
    if (system(cmd) != 0) {
        tu_failures++;
        fprintf(stderr, "could not remove the scratch directory %s\n", dir);
    }
}

/* Writes one tensor named "weights" (dtype, rank, dims, data) to `path` with
 * the path writer and the options `file_opts`, a check for each step. */
static inline void tu_write_weights(const char *path, const cairn_write_opts *file_opts,
                                    cairn_dtype dtype, uint32_t rank, const uint64_t *dims,
                                    const void *data)
{
    int failures = tu_failures;
    cairn_error err = {0};
    cairn_writer *w = NULL;
    CHECK_OK(cairn_writer_open_path(path, file_opts, &w, &err));
    CHECK_OK(cairn_writer_add(w, "weights", dtype, rank, dims, data, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    if (tu_failures != failures)
        fprintf(stderr, "  writing %s: %s\n", path, err.message);
}

/* Saves the same tensor "weights" with the memory writer and `mem_opts`, and
 * checks that its bytes are those of the file at `path`: a memory save gives
 * what a file save gives. Returns the bytes (cairn_free them), length in *len. */
static inline void *tu_memory_save_matches(const char *path, const cairn_write_opts *mem_opts,
                                           cairn_dtype dtype, uint32_t rank,
                                           const uint64_t *dims, const void *data, size_t *len)
{
    int failures = tu_failures;
    cairn_error err = {0};
    cairn_writer *w = NULL;
    void *mem = NULL;
    size_t file_len = 0;
    *len = 0;
    CHECK_OK(cairn_writer_open_memory(mem_opts, &w, &err));
    CHECK_OK(cairn_writer_add(w, "weights", dtype, rank, dims, data, &err));
    CHECK_OK(cairn_writer_commit_memory(w, &mem, len, &err));
    uint8_t *file = tu_read_whole(path, &file_len);
    CHECK(file && mem && *len == file_len && memcmp(mem, file, *len) == 0);
    free(file);
    if (tu_failures != failures)
        fprintf(stderr, "  saving %s to memory: %s\n", path, err.message);
    return mem;
}

/* ------------------------------------------ commands and Python at test time */

/* The Python that runs the cross-check scripts: $CAIRN_PYTHON, else
 * /usr/bin/python3. */
static inline const char *tu_python(void)
{
    const char *py = getenv("CAIRN_PYTHON");
    return py && *py ? py : "/usr/bin/python3";
}

/* Runs a shell command with system(); its exit status, or -1 when it could
 * not run or did not exit normally (e.g. killed by a signal). */
static inline int tu_system(const char *cmd)
{
    int rc = system(cmd);
    return rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Whether tu_python() can `import <modules>` ("numpy", "numpy, h5py"); when
 * it cannot, says so on stderr: "<modules> unavailable (<python>): <skipped>
 * skipped", so the log names what went unchecked. */
static inline int tu_python_imports(const char *modules, const char *skipped)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import %s' >/dev/null 2>&1", tu_python(), modules);
    if (tu_system(cmd) == 0)
        return 1;
    fprintf(stderr, "%s unavailable (%s): %s skipped\n", modules, tu_python(), skipped);
    return 0;
}

/* Runs tu_python() on the script file `script_path` with the arguments arg1
 * and arg2 (each left out when NULL); the exit status, as tu_system gives it. */
static inline int tu_run_python(const char *script_path, const char *arg1, const char *arg2)
{
    char cmd[16384];
    int n = snprintf(cmd, sizeof cmd, "'%s' '%s'", tu_python(), script_path);
    if (arg1)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", arg1);
    if (arg2)
        snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", arg2);
    return tu_system(cmd);
}

/* Writes the Python source `script` to <dir>/script.py and runs it as
 * tu_run_python does; -1 when the script cannot be written. */
static inline int tu_run_python_text(const char *dir, const char *script, const char *arg1,
                                     const char *arg2)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/script.py", dir);
    if (tu_write_file(path, script, strlen(script)) != 0)
        return -1;
    return tu_run_python(path, arg1, arg2);
}

/* The path of `name` in the tests/ folder of the source tree: under
 * $CAIRN_SOURCE_DIR when ctest runs us, else next to this header. One static
 * buffer. */
static inline const char *tu_tests_file(const char *name)
{
    static char path[4400];
    const char *src = getenv("CAIRN_SOURCE_DIR");
    const char *here = __FILE__, *slash = strrchr(here, '/');
    if (src && *src)
        snprintf(path, sizeof path, "%s/tests/%s", src, name);
    else
        snprintf(path, sizeof path, "%.*s%s", slash ? (int)(slash + 1 - here) : 0, here, name);
    return path;
}

/* The SHA-256 of data as 64 lowercase hex digits (and a NUL) in `out`, by
 * sha256sum(1) over the scratch file <dir>/sha.bin; 0 on success. */
static inline int tu_sha256_hex(const char *dir, const uint8_t *data, size_t n, char out[65])
{
    char path[4200], cmd[4400];
    snprintf(path, sizeof path, "%s/sha.bin", dir);
    if (tu_write_file(path, data, n) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int ok = fscanf(p, "%64s", out) == 1;
    return (pclose(p) == 0 && ok) ? 0 : -1;
}

/* Calls fn(ctx, line) on every line (with its newline, at most 4095 bytes) of
 * the text file at `path`, e.g. a manifest a Python script wrote; returns the
 * sum of what fn returned (1 for each line it counts), or -1 when the file
 * cannot be opened. */
static inline int tu_each_line(const char *path, int (*fn)(void *ctx, char *line), void *ctx)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char line[4096];
    int counted = 0;
    while (fgets(line, sizeof line, fp))
        counted += fn(ctx, line);
    fclose(fp);
    return counted;
}

#endif
