/* sink.c -- the file, memory and remote sinks of sink.h. */
#include "io/sink.h"
#include "io/remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void cairn__sink_init_memory(cairn__sink *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->file.fd = -1;
    s->path = path;
}

cairn_status cairn__sink_open_file(cairn__sink *s, const char *path, cairn_error *err)
{
    if (cairn__remote_is_url(path))
        return cairn__remote_sink_open(s, path, err);
    cairn__sink_init_memory(s, path);
    return cairn__commit_begin(&s->file, path, err);
}

/* write() until everything is out. */
static cairn_status write_fd(cairn__sink *s, const uint8_t *p, size_t len, cairn_error *err)
{
    uint64_t at = s->pos; /* for messages: where these bytes go */
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = write(s->file.fd, p, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: write at offset %llu failed: %s", s->path,
                               (unsigned long long)at, strerror(errno));
        p += n;
        len -= (size_t)n;
        at += (uint64_t)n;
    }
    return CAIRN_OK;
}

/* Small writes and padding are gathered and sent in one write(): a small
 * file, or an archive of many small tensors, costs a few system calls. */
enum { WBUF = 65536 };

cairn_status cairn__sink_flush(cairn__sink *s, cairn_error *err)
{
    if (s->file.fd < 0 || s->wlen == 0)
        return CAIRN_OK;
    uint64_t at = s->pos;
    s->pos -= s->wlen; /* write_fd names the offset the bytes go to */
    cairn_status st = write_fd(s, s->wbuf, s->wlen, err);
    s->pos = at;
    s->wlen = 0;
    return st;
}

/* Makes room for `len` more bytes in the memory sink (doubling). */
static cairn_status mem_reserve(cairn__sink *s, size_t len, cairn_error *err)
{
    if (len <= s->mem_cap - s->mem_len)
        return CAIRN_OK;
    size_t cap = s->mem_cap ? s->mem_cap : 4096;
    while (cap - s->mem_len < len) {
        if (cap > SIZE_MAX / 2)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: buffer would exceed the address space",
                               s->path);
        cap *= 2;
    }
    uint8_t *m = realloc(s->mem, cap);
    if (!m)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot grow the output buffer to %zu bytes",
                           s->path, cap);
    s->mem = m;
    s->mem_cap = cap;
    return CAIRN_OK;
}

cairn_status cairn__sink_write(cairn__sink *s, const void *data, size_t len, cairn_error *err)
{
    if (s->backend) {
        CAIRN_TRY(s->backend->write(s, data, len, err));
        s->pos += len;
        return CAIRN_OK;
    }
    if (s->file.fd < 0) {
        CAIRN_TRY(mem_reserve(s, len, err));
        if (len)
            memcpy(s->mem + s->mem_len, data, len);
        s->mem_len += len;
        s->pos += len;
        return CAIRN_OK;
    }
    if (len < WBUF && s->wcap < WBUF && s->wlen + len > s->wcap) {
        size_t cap = s->wcap ? s->wcap : 4096;
        while (cap < s->wlen + len && cap < WBUF)
            cap *= 2;
        uint8_t *b = realloc(s->wbuf, cap); /* without it, writes go straight out */
        if (b) {
            s->wbuf = b;
            s->wcap = cap;
        }
    }
    if (s->wbuf && len <= s->wcap - s->wlen) {
        if (len)
            memcpy(s->wbuf + s->wlen, data, len);
        s->wlen += len;
        s->pos += len;
        return CAIRN_OK;
    }
    CAIRN_TRY(cairn__sink_flush(s, err));
    if (s->wbuf && len < s->wcap) {
        memcpy(s->wbuf, data, len);
        s->wlen = len;
    } else {
        CAIRN_TRY(write_fd(s, data, len, err));
    }
    s->pos += len;
    return CAIRN_OK;
}

cairn_status cairn__sink_pad(cairn__sink *s, uint64_t alignment, cairn_error *err)
{
    static const uint8_t zeros[4096];
    uint64_t rem = s->pos & (alignment - 1);
    uint64_t pad = rem ? alignment - rem : 0;
    while (pad > 0) {
        size_t n = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        CAIRN_TRY(cairn__sink_write(s, zeros, n, err));
        pad -= n;
    }
    return CAIRN_OK;
}

/* pwrite() until everything is out; `what` ("", or " (tensor 'x')") names
 * the bytes in messages. */
static cairn_status pwrite_all(cairn__sink *s, uint64_t offset, const uint8_t *p, size_t len,
                               const char *what, cairn_error *err)
{
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = pwrite(s->file.fd, p, chunk, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: write at offset %llu%s failed: %s", s->path,
                               (unsigned long long)offset, what,
                               n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return CAIRN_OK;
}

/* Bytes at [offset, offset+len) of what is already there: memory, back end
 * or file. */
static cairn_status overwrite(cairn__sink *s, uint64_t offset, const void *data, size_t len,
                              const char *what, cairn_error *err)
{
    if (s->backend)
        return s->backend->pwrite(s, offset, data, len, err);
    if (s->file.fd < 0) {
        if (len)
            memcpy(s->mem + offset, data, len);
        return CAIRN_OK;
    }
    CAIRN_TRY(cairn__sink_flush(s, err)); /* the bytes may still be in wbuf */
    return pwrite_all(s, offset, data, len, what, err);
}

cairn_status cairn__sink_patch(cairn__sink *s, uint64_t offset, const void *data, size_t len,
                               cairn_error *err)
{
    if (offset > s->pos || len > s->pos - offset)
        return cairn__fail(err, CAIRN_E_STATE, "%s: patch of %zu bytes at offset %llu is past the "
                           "%llu bytes written", s->path, len, (unsigned long long)offset,
                           (unsigned long long)s->pos);
    return overwrite(s, offset, data, len, "", err);
}

cairn_status cairn__sink_extend(cairn__sink *s, uint64_t size, cairn_error *err)
{
    if (size < s->pos)
        return cairn__fail(err, CAIRN_E_STATE, "%s: cannot shrink the output from %llu to %llu "
                           "bytes", s->path, (unsigned long long)s->pos,
                           (unsigned long long)size);
    if (s->backend) {
        CAIRN_TRY(s->backend->extend(s, size, err));
        s->pos = size;
        return CAIRN_OK;
    }
    if (s->file.fd < 0) {
        if (size > SIZE_MAX)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: %llu bytes do not fit in memory", s->path,
                               (unsigned long long)size);
        size_t more = (size_t)(size - s->pos);
        if (more > s->mem_cap - s->mem_len) { /* exactly: the size is final */
            uint8_t *m = realloc(s->mem, s->mem_len + more);
            if (!m)
                return cairn__fail(err, CAIRN_E_NOMEM, "%s: cannot grow the output buffer to "
                                   "%llu bytes", s->path, (unsigned long long)size);
            s->mem = m;
            s->mem_cap = s->mem_len + more;
        }
        memset(s->mem + s->mem_len, 0, more);
        s->mem_len += more;
        s->pos = size;
        return CAIRN_OK;
    }
    /* A hole reads as zeros and costs no writes: the payloads fill it. */
    CAIRN_TRY(cairn__sink_flush(s, err));
    if (size > (uint64_t)INT64_MAX)
        errno = EFBIG;
    else if (ftruncate(s->file.fd, (off_t)size) == 0 &&
             lseek(s->file.fd, (off_t)size, SEEK_SET) >= 0) {
        s->pos = size;
        return CAIRN_OK;
    }
    return cairn__fail(err, CAIRN_E_IO, "%s: cannot extend the temporary file to %llu bytes: %s",
                       s->path, (unsigned long long)size, strerror(errno));
}

cairn_status cairn__sink_place(cairn__sink *s, uint64_t offset, const void *data, size_t len,
                               const char *name, cairn_error *err)
{
    if (offset > s->pos || len > s->pos - offset)
        return cairn__fail(err, CAIRN_E_STATE, "%s: tensor '%s': %zu bytes at offset %llu fall "
                           "outside the %llu bytes laid out", s->path, name, len,
                           (unsigned long long)offset, (unsigned long long)s->pos);
    char what[96], shown[64];
    snprintf(what, sizeof what, " (tensor '%s')",
             cairn__printable(name, strlen(name), shown, sizeof shown));
    return overwrite(s, offset, data, len, what, err);
}

cairn_status cairn__sink_commit(cairn__sink *s, unsigned flags, cairn_error *err)
{
    cairn_status st;
    if (s->backend) {
        st = s->backend->commit(s, flags, err);
        s->backend = NULL;
        return st;
    }
    if (s->file.fd < 0)
        return cairn__fail(err, CAIRN_E_STATE, "%s: a memory output has no file to commit",
                           s->path);
    st = cairn__sink_flush(s, err);
    free(s->wbuf);
    s->wbuf = NULL;
    s->wcap = 0;
    if (st != CAIRN_OK) {
        cairn__commit_discard(&s->file);
        return st;
    }
    return cairn__commit_publish(&s->file, s->path, flags, err);
}

cairn_status cairn__sink_take_memory(cairn__sink *s, void **data, size_t *size, cairn_error *err)
{
    if (!cairn__sink_is_memory(s))
        return cairn__fail(err, CAIRN_E_STATE, "%s: not a memory output", s->path);
    *data = s->mem ? s->mem : malloc(1);
    *size = s->mem_len;
    if (!*data)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", s->path);
    s->mem = NULL;
    s->mem_len = s->mem_cap = 0;
    return CAIRN_OK;
}

void cairn__sink_discard(cairn__sink *s)
{
    if (s->backend && s->backend->discard)
        s->backend->discard(s);
    s->backend = NULL;
    cairn__commit_discard(&s->file);
    free(s->wbuf);
    s->wbuf = NULL;
    s->wcap = 0;
    s->wlen = 0;
    free(s->mem);
    s->mem = NULL;
    s->mem_len = s->mem_cap = 0;
}
