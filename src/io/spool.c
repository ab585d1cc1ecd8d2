/* spool.c -- the payload spool of spool.h (an unlinked file or a buffer). */
#include "io/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define COPY_CHUNK (1u << 20)

/* An unnamed file in `dir` (O_TMPFILE, else mkostemp + unlink), or -1 with
 * errno set. */
static int open_unnamed(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* file systems without O_TMPFILE */
    size_t size = strlen(dir) + 32;
    char *name = malloc(size);
    if (!name)
        return -1;
    snprintf(name, size, "%s/.cairn-spool-XXXXXX", dir);
    fd = mkostemp(name, O_CLOEXEC);
    if (fd >= 0)
        unlink(name);
    free(name);
    return fd;
}

/* $TMPDIR, else /tmp. */
static const char *tmp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp && *tmp ? tmp : "/tmp";
}

cairn_status cairn__spool_open(cairn__spool *s, const cairn__sink *w, cairn_error *err)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    if (w->file.fd < 0 && !w->backend)
        return CAIRN_OK;
    /* A remote sink has no directory of its own: its spool goes to TMPDIR,
     * so a large upload never holds its payloads in memory. */
    char *copy = strdup(w->backend ? tmp_dir() : w->path);
    if (!copy)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    const char *dir = w->backend ? copy : dirname(copy);
    s->fd = open_unnamed(dir);
    cairn_status st = CAIRN_OK;
    if (s->fd < 0)
        st = cairn__fail(err, CAIRN_E_IO, "%s: cannot create a payload spool file in %s: %s",
                         w->path, dir, strerror(errno));
    free(copy);
    return st;
}

cairn_status cairn__spool_open_tmp(cairn__spool *s, const char *what, cairn_error *err)
{
    memset(s, 0, sizeof *s);
    s->fd = open_unnamed(tmp_dir());
    if (s->fd < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot create a spool file in %s: %s", what,
                           tmp_dir(), strerror(errno));
    return CAIRN_OK;
}

static cairn_status grow(cairn__spool *s, const cairn__sink *w, size_t len, const char *name,
                         cairn_error *err)
{
    size_t cap = s->cap ? s->cap : 4096;
    while (cap - s->len < len) {
        if (cap > SIZE_MAX / 2)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': the payloads would exceed "
                               "the address space", w->path, name);
        cap *= 2;
    }
    uint8_t *p = realloc(s->mem, cap);
    if (!p)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: tensor '%s': cannot grow the payload buffer "
                           "to %zu bytes", w->path, name, cap);
    s->mem = p;
    s->cap = cap;
    return CAIRN_OK;
}

/* Appends to a file spool; -1 with errno set on failure (s->len counts
 * what was written). */
static int write_file(cairn__spool *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = write(s->fd, p, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
        s->len += (uint64_t)n;
    }
    return 0;
}

cairn_status cairn__spool_write(cairn__spool *s, const cairn__sink *w, const void *data,
                                size_t len, const char *name, cairn_error *err)
{
    if (s->fd < 0) {
        if (len > s->cap - s->len)
            CAIRN_TRY(grow(s, w, len, name, err));
        if (len)
            memcpy(s->mem + s->len, data, len);
        s->len += len;
        return CAIRN_OK;
    }
    if (write_file(s, data, len) < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: tensor '%s': write to the payload spool at "
                           "offset %llu failed: %s", w->path, name, (unsigned long long)s->len,
                           strerror(errno));
    return CAIRN_OK;
}

cairn_status cairn__spool_append(cairn__spool *s, const char *what, const void *data, size_t len,
                                 cairn_error *err)
{
    if (write_file(s, data, len) < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: write to the spool file at offset %llu failed: "
                           "%s", what, (unsigned long long)s->len, strerror(errno));
    return CAIRN_OK;
}

/* The fallback where copy_file_range cannot serve. */
static cairn_status copy_by_read(const cairn__spool *s, cairn__sink *w, uint64_t at,
                                 uint64_t len, cairn_error *err)
{
    uint8_t *buf = malloc(COPY_CHUNK);
    if (!buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", w->path);
    cairn_status st = CAIRN_OK;
    while (len > 0 && st == CAIRN_OK) {
        size_t want = len > COPY_CHUNK ? COPY_CHUNK : (size_t)len;
        ssize_t n = pread(s->fd, buf, want, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = cairn__fail(err, CAIRN_E_IO, "%s: read of the payload spool at offset %llu "
                             "failed: %s", w->path, (unsigned long long)at,
                             n < 0 ? strerror(errno) : "unexpected end");
            break;
        }
        st = cairn__sink_write(w, buf, (size_t)n, err);
        at += (uint64_t)n;
        len -= (uint64_t)n;
    }
    free(buf);
    return st;
}

cairn_status cairn__spool_copy(const cairn__spool *s, cairn__sink *w, uint64_t at, uint64_t len,
                               cairn_error *err)
{
    if (s->fd < 0)
        return len ? cairn__sink_write(w, s->mem + at, (size_t)len, err) : CAIRN_OK;
    CAIRN_TRY(cairn__sink_flush(w, err)); /* padding first: copy_file_range writes w->file.fd itself */
    while (len > 0) {
        loff_t in = (loff_t)at;
        size_t want = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = copy_file_range(s->fd, &in, w->file.fd, NULL, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                      errno == EOPNOTSUPP || errno == EBADF || errno == EPERM))
            return copy_by_read(s, w, at, len, err);
        if (n < 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: copy of the payload spool at offset %llu "
                               "to offset %llu failed: %s", w->path, (unsigned long long)at,
                               (unsigned long long)w->pos, strerror(errno));
        if (n == 0)
            return copy_by_read(s, w, at, len, err);
        at += (uint64_t)n;
        len -= (uint64_t)n;
        w->pos += (uint64_t)n;
    }
    return CAIRN_OK;
}

void cairn__spool_close(cairn__spool *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    free(s->mem);
    s->mem = NULL;
    s->cap = 0;
    s->len = 0;
}
