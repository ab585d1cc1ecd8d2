/* source.c -- local and memory sources of source.h; remote back ends plug
 * in through cairn__source_backend. */
#include "io/source.h"
#include "io/open_read.h"
#include "io/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

cairn_status cairn__source_open_file(cairn__source *s, const char *path, int no_mmap,
                                     cairn__source_kind *kind, cairn_error *err)
{
    if (cairn__remote_is_url(path)) {
        *kind = CAIRN__SOURCE_FILE;
        return cairn__remote_source_open(s, path, err);
    }
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->path = path;
    int fd;
    struct stat st;
    CAIRN_TRY(cairn__open_read(path, 0, CAIRN__OPEN_DIR_OK, &fd, &st, err));
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        *kind = CAIRN__SOURCE_DIRECTORY;
        return CAIRN_OK;
    }
    *kind = CAIRN__SOURCE_FILE;
    s->fd = fd;
    s->size = (uint64_t)st.st_size;
    if (!no_mmap && st.st_size > 0 && (uint64_t)st.st_size <= CAIRN__SOURCE_SMALL) {
        /* Aligned as a mapping would be, as far as the file's own offsets
         * go: an offset that is a multiple of A (any power of two up to the
         * file's size) is then an A-aligned address, as zero-copy views
         * promise. */
        size_t align = 4096;
        while (align < (size_t)st.st_size)
            align *= 2;
        void *copy = NULL;
        if (posix_memalign(&copy, align, (size_t)st.st_size) != 0)
            copy = NULL;
        if (copy) {
            cairn_status rs = cairn__source_read(s, 0, copy, (size_t)st.st_size, err);
            if (rs != CAIRN_OK) {
                free(copy);
                cairn__source_close(s);
                return rs;
            }
            s->base = copy;
            s->owned = 1;
            return CAIRN_OK;
        }
    }
    if (!no_mmap && !s->base && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) { /* on failure, fall back to pread */
            s->base = m;
            s->mapped = 1;
        }
    }
    return CAIRN_OK;
}

void cairn__source_init_memory(cairn__source *s, const char *path, const void *data,
                               uint64_t size)
{
    static const uint8_t empty[1] = {0};
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->path = path;
    s->base = data ? data : empty;
    s->size = size;
}

void cairn__source_close(cairn__source *s)
{
    if (s->backend && s->backend->close)
        s->backend->close(s);
    s->backend = NULL;
    if (s->mapped)
        munmap((void *)s->base, (size_t)s->size);
    if (s->owned)
        free((void *)s->base);
    s->mapped = 0;
    s->owned = 0;
    s->base = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* [offset, offset + len) from the descriptor (the range is checked). */
static cairn_status read_fd(const cairn__source *s, uint64_t offset, void *dst, size_t len,
                            cairn_error *err)
{
    uint8_t *p = dst;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = pread(s->fd, p, chunk, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: read at offset %llu: %s", s->path,
                               (unsigned long long)offset, strerror(errno));
        if (n == 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: file shrank while open (read at offset %llu "
                               "hit its end)", s->path, (unsigned long long)offset);
        p += n;
        offset += (uint64_t)n;
        len -= (size_t)n;
    }
    return CAIRN_OK;
}

cairn_status cairn__source_read(const cairn__source *s, uint64_t offset, void *dst, size_t len,
                                cairn_error *err)
{
    uint64_t end;
    if (cairn__add_overflow(offset, len, &end) || end > s->size)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: read of %zu bytes at offset %llu runs past "
                           "the end of the input (%llu bytes)", s->path, len,
                           (unsigned long long)offset, (unsigned long long)s->size);
    if (len == 0) /* an empty tensor may come with a NULL dst */
        return CAIRN_OK;
    /* Large copies from a file go through pread even when it is mapped: the
     * kernel copies from the page cache directly, where touching the mapping
     * would take a page fault per 4 KiB. */
    if (s->base && (s->fd < 0 || s->owned || len < (64u << 10))) {
        memcpy(dst, s->base + offset, len);
        return CAIRN_OK;
    }
    if (s->backend)
        return s->backend->read(s, offset, dst, len, err);
    return read_fd(s, offset, dst, len, err);
}

void cairn__source_forget(const cairn__source *s, uint64_t offset, uint64_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t end;
    if (!s->mapped || page <= 0 || cairn__add_overflow(offset, len, &end) || end > s->size)
        return;
    uint64_t from = (offset + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    uint64_t to = end / (uint64_t)page * (uint64_t)page;
    if (from < to) /* a read-only shared mapping: the page cache keeps the bytes */
        (void)madvise((uint8_t *)(uintptr_t)s->base + from, (size_t)(to - from), MADV_DONTNEED);
}

cairn_status cairn__source_read_cold(const cairn__source *s, uint64_t offset, void *dst,
                                     size_t len, cairn_error *err)
{
    uint64_t end;
    if (s->fd < 0 || s->owned || s->backend || len == 0 ||
        cairn__add_overflow(offset, len, &end) || end > s->size)
        return cairn__source_read(s, offset, dst, len, err);
    return read_fd(s, offset, dst, len, err);
}
