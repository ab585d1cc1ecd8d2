/* test_read_parallel.c -- reads of 4 MiB or more are split into 1 MiB slices
 * across worker threads, verified reads hash each slice as it lands
 * (src/copy.c): every slice lands in its place for every
 * thread count and size around the slice boundaries, from a mapping, from
 * pread and from memory, with and without CAIRN_READ_VERIFY; one flipped
 * byte in any slice fails the verified read; a slice that fails (the file
 * shrank under a pread reader) fails the whole read with its message. */
#include "testutil.h"

#include <fcntl.h>

#define MIB (1u << 20)

/* Sizes around the parallel threshold and the slice boundaries. */
static const size_t sizes[] = {4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 5 * MIB + 4093, 9 * MIB};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static uint8_t *pattern(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(tu_rand(&seed) >> 56);
    return p;
}

static void write_archive(const char *path, uint8_t **data)
{
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path, NULL, &w, &err));
    for (size_t i = 0; i < NSIZES; i++) {
        char name[32];
        uint64_t dim = sizes[i];
        snprintf(name, sizeof name, "t%zu", i);
        CHECK_OK(cairn_writer_add(w, name, CAIRN_U8, 1, &dim, data[i], &err));
    }
    CHECK_OK(cairn_writer_commit(w, &err));
}

static void check_reads(const cairn_file *f, uint8_t **data, const char *how)
{
    cairn_error err;
    for (unsigned flags = 0; flags <= CAIRN_READ_VERIFY; flags += CAIRN_READ_VERIFY)
        for (size_t i = 0; i < NSIZES; i++) {
            uint8_t *got = malloc(sizes[i]);
            memset(got, 0xA5, sizes[i]);
            CHECK_OK(cairn_tensor_read(f, i, CAIRN_U8, got, sizes[i], flags, &err));
            if (memcmp(got, data[i], sizes[i]) != 0) {
                fprintf(stderr, "%s%s: tensor %zu (%zu bytes) differs\n", how,
                        flags ? " verify" : "", i, sizes[i]);
                CHECK(0);
            }
            free(got);
        }
}

/* A byte flipped in the first, a middle and the last slice of the largest
 * tensor: the verified read fails, pipelined or not. */
static void flipped_byte_fails(const char *path)
{
    size_t size;
    uint8_t *bytes = tu_read_whole(path, &size);
    cairn_file *f;
    cairn_error err;
    cairn_tensor_info info;
    CHECK_OK(cairn_file_open_memory(bytes, size, NULL, &f, &err));
    CHECK_OK(cairn_tensor_info_at(f, NSIZES - 1, &info, &err));
    cairn_file_close(f);
    const uint64_t where[] = {0, 4 * MIB + 5, info.stored_size - 1};
    uint8_t *got = malloc(info.raw_size);
    for (size_t w = 0; w < 3; w++)
        for (unsigned threads = 1; threads <= 2; threads++) {
            bytes[info.offset + where[w]] ^= 0x10;
            cairn_open_opts o = {.struct_size = sizeof o, .threads = threads};
            CHECK_OK(cairn_file_open_memory(bytes, size, &o, &f, &err));
            CHECK_ST(cairn_tensor_read(f, NSIZES - 1, CAIRN_U8, got, (size_t)info.raw_size,
                                       CAIRN_READ_VERIFY, &err), CAIRN_E_CHECKSUM);
            CHECK(strstr(err.message, "checksum mismatch") != NULL);
            cairn_file_close(f);
            bytes[info.offset + where[w]] ^= 0x10;
        }
    free(got);
    free(bytes);
}

static void reads_every_way(const char *path, uint8_t **data)
{
    static const unsigned threads[] = {0, 1, 2, 3, 7};
    cairn_error err;
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++)
        for (int nommap = 0; nommap < 2; nommap++) {
            cairn_open_opts o = {.struct_size = sizeof o, .threads = threads[t],
                                 .flags = nommap ? CAIRN_OPEN_NO_MMAP : 0};
            cairn_file *f;
            char how[64];
            snprintf(how, sizeof how, "threads=%u%s", threads[t], nommap ? " pread" : " mmap");
            CHECK_OK(cairn_file_open(path, &o, &f, &err));
            check_reads(f, data, how);
            cairn_file_close(f);
        }
    size_t size;
    uint8_t *bytes = tu_read_whole(path, &size);
    cairn_file *f;
    CHECK_OK(cairn_file_open_memory(bytes, size, NULL, &f, &err));
    check_reads(f, data, "memory");
    cairn_file_close(f);
    free(bytes);
}

/* A pread reader whose file loses its tail: the slices past the new end
 * fail, and the read reports it instead of returning stale bytes. */
static void shrunk_file_fails(const char *path)
{
    cairn_open_opts o = {.struct_size = sizeof o, .threads = 4, .flags = CAIRN_OPEN_NO_MMAP};
    cairn_file *f;
    cairn_error err;
    CHECK_OK(cairn_file_open(path, &o, &f, &err));
    cairn_tensor_info info;
    CHECK_OK(cairn_tensor_info_at(f, NSIZES - 1, &info, &err));
    CHECK(truncate(path, (off_t)(info.offset + 2 * MIB + 17)) == 0);
    uint8_t *got = malloc(info.raw_size);
    for (unsigned flags = 0; flags <= CAIRN_READ_VERIFY; flags += CAIRN_READ_VERIFY) {
        CHECK_ST(cairn_tensor_read(f, NSIZES - 1, CAIRN_U8, got, (size_t)info.raw_size, flags,
                                   &err), CAIRN_E_IO);
        CHECK(strstr(err.message, "shrank") != NULL);
        CHECK(strstr(err.message, path) != NULL);
    }
    free(got);
    cairn_file_close(f);
}

int main(void)
{
    const char *dir = tu_tmpdir("read_parallel");
    char path[4200];
    snprintf(path, sizeof path, "%s/big.cairn", dir);
    uint8_t *data[NSIZES];
    for (size_t i = 0; i < NSIZES; i++)
        data[i] = pattern(sizes[i], 1000 + i);
    write_archive(path, data);
    reads_every_way(path, data);
    flipped_byte_fails(path);
    shrunk_file_fails(path);
    for (size_t i = 0; i < NSIZES; i++)
        free(data[i]);
    unlink(path);
    rmdir(dir);
    TEST_MAIN_END();
}
