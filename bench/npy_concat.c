/* npy_concat.c -- the baseline for `cairn pack`: mmap each input and write() it whole to one output. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const char *path)
{
    fprintf(stderr, "npy_concat: %s: %s: %s\n", path, what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *p, size_t len, const char *path)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write", path);
        p += n;
        len -= (size_t)n;
    }
}

/* The same access pattern as `cairn pack` (which maps each .npy and hands
 * the mapped payload to the writer), minus parsing, hashing and the index. */
static void append_file(int out, const char *out_path, const char *in_path)
{
    int fd = open(in_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die("open", in_path);
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            die("mmap", in_path);
        write_all(out, m, (size_t)st.st_size, out_path);
        munmap(m, (size_t)st.st_size);
    }
    close(fd);
}

int main(int argc, char **argv)
{
    int sync = 0, first = 1;
    if (argc > 1 && !strcmp(argv[1], "--sync"))
        sync = 1, first = 2;
    if (argc - first < 2) {
        fputs("usage: npy_concat [--sync] OUT IN [IN ...]\n"
              "  --sync   fsync OUT before exiting (compare with `cairn pack` without --no-sync)\n",
              stderr);
        return 2;
    }
    const char *out_path = argv[first];
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        die("create", out_path);
    for (int i = first + 1; i < argc; i++)
        append_file(out, out_path, argv[i]);
    if (sync && fsync(out) != 0)
        die("fsync", out_path);
    if (close(out) != 0)
        die("close", out_path);
    return 0;
}
