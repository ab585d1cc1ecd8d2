/* commit.c -- the commit protocol of commit.h. */
#include "io/commit.h"
#include "io/remote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_TAG ".cairn-tmp-"
/* seconds a temporary must have been left untouched before a sweep takes it */
#define SWEEP_MIN_AGE 2

int cairn__commit_is_temp_name(const char *name)
{
    return name[0] == '.' && strstr(name, TEMP_TAG) != NULL;
}

/* dirname() and basename() of a copy of `path`; the caller frees both copies. */
static cairn_status split_path(const char *path, char **copy1, char **copy2, const char **dir,
                               const char **base, cairn_error *err)
{
    *copy1 = strdup(path);
    *copy2 = strdup(path);
    if (!*copy1 || !*copy2) {
        free(*copy1);
        free(*copy2);
        *copy1 = *copy2 = NULL;
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    }
    *dir = dirname(*copy1);
    *base = basename(*copy2);
    return CAIRN_OK;
}

/* An exclusive lock on the open file description: released by the kernel
 * when the writer's process dies, so a sweeper that can take it knows the
 * temporary is abandoned. */
static int lock_fd(int fd)
{
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    return fcntl(fd, F_OFD_SETLK, &l);
}

static char *temp_name(const char *dir, const char *base, const void *salt)
{
    size_t size = strlen(dir) + strlen(base) + 40;
    char *p = malloc(size);
    if (!p)
        return NULL;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)salt ^ (uint64_t)clock();
    snprintf(p, size, "%s/.%s" TEMP_TAG "%016llx", dir, base, (unsigned long long)r);
    return p;
}

/* A named temporary beside the target, locked while its writer lives:
 * t->fd and t->tmp_path. */
static cairn_status open_named(cairn__commit_file *t, const char *target, const char *dir,
                               const char *base, cairn_error *err)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        free(t->tmp_path);
        t->tmp_path = temp_name(dir, base, t);
        if (!t->tmp_path)
            return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", target);
        t->fd = open(t->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (t->fd >= 0) {
            (void)lock_fd(t->fd);
            return CAIRN_OK;
        }
        if (errno != EEXIST)
            break;
    }
    cairn_status st = cairn__fail(err, CAIRN_E_IO, "%s: cannot create a temporary file in %s: %s",
                                  target, dir, strerror(errno));
    free(t->tmp_path);
    t->tmp_path = NULL;
    return st;
}

cairn_status cairn__commit_begin(cairn__commit_file *t, const char *target, cairn_error *err)
{
    t->fd = -1;
    t->tmp_path = NULL;
    t->unnamed = 0;
    char *c1, *c2;
    const char *dir = NULL, *base = NULL;
    CAIRN_TRY(split_path(target, &c1, &c2, &dir, &base, err));
    cairn_status st = CAIRN_OK;
    /* Unnamed first: a writer killed at any instant then leaves nothing.
     * Read-write, so that it can be copied to a named temporary in the rare
     * system where it cannot be linked in (link_unnamed). */
    t->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
    t->unnamed = t->fd >= 0; /* locked only if it is ever given a temporary name */
    /* Whoever creates named temporaries in a directory sweeps it: stale ones
     * come only from writers that had named theirs. */
    if (t->fd < 0) {
        cairn__commit_sweep(dir);
        st = open_named(t, target, dir, base, err);
    }
    free(c1);
    free(c2);
    return st;
}

/* Links the unnamed file in as `name` (fails with EEXIST if it exists):
 * by its descriptor where the kernel lets this process (AT_EMPTY_PATH: from
 * Linux 6.10 for the file's opener, before only with CAP_DAC_READ_SEARCH;
 * refused at once with ENOENT), else through /proc/self/fd. */
static int link_unnamed(int fd, const char *name)
{
    if (linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != ENOENT)
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW);
}

static int rename_noreplace(const char *from, const char *to)
{
    int r = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
    if (r == 0 || (errno != EINVAL && errno != ENOSYS))
        return r;
    /* File systems without RENAME_NOREPLACE: link() fails if `to` exists
     * (files only; directories have no such fallback). */
    if (link(from, to) != 0)
        return -1;
    unlink(from);
    return 0;
}

/* Where the unnamed file cannot be linked in (no /proc, and AT_EMPTY_PATH
 * refused), its bytes go to a named temporary, which the caller
 * then renames; t then holds that file. */
static cairn_status name_by_copy(cairn__commit_file *t, const char *target, int sync,
                                 cairn_error *err)
{
    char *c1, *c2;
    const char *dir = NULL, *base = NULL;
    CAIRN_TRY(split_path(target, &c1, &c2, &dir, &base, err));
    cairn__commit_sweep(dir);
    int from = t->fd;
    t->fd = -1;
    t->unnamed = 0;
    cairn_status st = open_named(t, target, dir, base, err);
    free(c1);
    free(c2);
    enum { BUF = 1 << 18 };
    char *buf = st == CAIRN_OK ? malloc(BUF) : NULL;
    if (st == CAIRN_OK && !buf)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", target);
    for (off_t at = 0; st == CAIRN_OK;) {
        ssize_t n = pread(from, buf, BUF, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            break;
        ssize_t w = n > 0 ? write(t->fd, buf, (size_t)n) : -1;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) /* a short write is resumed from the next offset */
            st = cairn__fail(err, CAIRN_E_IO, "%s: copy to %s failed: %s", target, t->tmp_path,
                             strerror(errno));
        else
            at += w;
    }
    free(buf);
    if (st == CAIRN_OK && sync && fsync(t->fd) != 0)
        st = cairn__fail(err, CAIRN_E_IO, "%s: fsync failed: %s", target, strerror(errno));
    close(from);
    return st;
}

cairn_status cairn__commit_publish(cairn__commit_file *t, const char *target, unsigned flags,
                                   cairn_error *err)
{
    int sync = !(flags & CAIRN__COMMIT_NO_SYNC);
    cairn_status st = CAIRN_OK;
    if (sync && fsync(t->fd) != 0) {
        st = cairn__fail(err, CAIRN_E_IO, "%s: fsync failed: %s", target, strerror(errno));
        goto fail;
    }
    /* A new target: the unnamed file is linked in under its name in one
     * step (linkat never replaces, so a target that exists is EEXIST). */
    int linked = t->unnamed && link_unnamed(t->fd, target) == 0;
    if (!linked && t->unnamed && errno == ENOENT && access("/proc/self/fd", X_OK) != 0 &&
        (st = name_by_copy(t, target, sync, err)) != CAIRN_OK)
        goto fail;
    if (!linked && t->unnamed && ((flags & CAIRN__COMMIT_NO_REPLACE) || errno != EEXIST)) {
        st = cairn__fail(err, errno == EEXIST ? CAIRN_E_EXISTS : CAIRN_E_IO,
                         "%s: cannot create: %s", target, strerror(errno));
        goto fail;
    }
    if (!linked) {
        if (t->unnamed) {
            /* linkat cannot replace: name it beside the target, then rename. */
            char *c1, *c2;
            const char *dir = NULL, *base = NULL;
            if ((st = split_path(target, &c1, &c2, &dir, &base, err)) != CAIRN_OK)
                goto fail;
            cairn__commit_sweep(dir);
            (void)lock_fd(t->fd); /* before it has a name a sweeper could see */
            for (int attempt = 0; attempt < 16; attempt++) {
                free(t->tmp_path);
                t->tmp_path = temp_name(dir, base, t);
                if (!t->tmp_path || link_unnamed(t->fd, t->tmp_path) == 0 || errno != EEXIST)
                    break;
            }
            free(c1);
            free(c2);
            if (!t->tmp_path || access(t->tmp_path, F_OK) != 0) {
                st = cairn__fail(err, CAIRN_E_IO, "%s: cannot name the new file: %s", target,
                                 t->tmp_path ? strerror(errno) : "out of memory");
                goto fail;
            }
            t->unnamed = 0;
        }
        int r = (flags & CAIRN__COMMIT_NO_REPLACE) ? rename_noreplace(t->tmp_path, target)
                                                    : rename(t->tmp_path, target);
        if (r != 0) {
            st = cairn__fail(err, errno == EEXIST ? CAIRN_E_EXISTS : CAIRN_E_IO,
                             "%s: rename from %s failed: %s", target, t->tmp_path,
                             strerror(errno));
            goto fail;
        }
        free(t->tmp_path);
        t->tmp_path = NULL;
    }
    int fd = t->fd;
    t->fd = -1;
    if (close(fd) != 0 && st == CAIRN_OK)
        st = cairn__fail(err, CAIRN_E_IO, "%s: close failed: %s", target, strerror(errno));
    if (st == CAIRN_OK && sync)
        st = cairn__commit_sync_parent(target, err);
    return st;
fail:
    cairn__commit_discard(t);
    return st;
}

void cairn__commit_discard(cairn__commit_file *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    if (t->tmp_path)
        unlink(t->tmp_path);
    free(t->tmp_path);
    t->tmp_path = NULL;
}

cairn_status cairn__commit_sync_dir(const char *dir, cairn_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cairn_status st = CAIRN_OK;
    if (fd < 0 || fsync(fd) != 0)
        st = cairn__fail(err, CAIRN_E_IO, "%s: fsync of the directory failed: %s", dir,
                         strerror(errno));
    if (fd >= 0)
        close(fd);
    return st;
}

cairn_status cairn__commit_sync_parent(const char *path, cairn_error *err)
{
    char *copy = strdup(path);
    if (!copy)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    cairn_status st = cairn__commit_sync_dir(dirname(copy), err);
    free(copy);
    return st;
}

cairn_status cairn__commit_rename(const char *from, const char *to, unsigned flags,
                                  cairn_error *err)
{
    int r = (flags & CAIRN__COMMIT_NO_REPLACE) ? rename_noreplace(from, to) : rename(from, to);
    if (r != 0)
        return cairn__fail(err, errno == EEXIST || errno == ENOTEMPTY ? CAIRN_E_EXISTS : CAIRN_E_IO,
                           "%s: rename from %s failed: %s", to, from, strerror(errno));
    return (flags & CAIRN__COMMIT_NO_SYNC) ? CAIRN_OK : cairn__commit_sync_parent(to, err);
}

cairn_status cairn__commit_small_file(const char *target, const void *data, size_t len,
                                      unsigned flags, cairn_error *err)
{
    if (cairn__remote_is_url(target)) { /* one upload, whole at commit */
        cairn__sink s;
        CAIRN_TRY(cairn__remote_sink_open(&s, target, err));
        cairn_status st = cairn__sink_write(&s, data, len, err);
        if (st != CAIRN_OK) {
            cairn__sink_discard(&s);
            return st;
        }
        return cairn__sink_commit(&s, flags, err);
    }
    cairn__commit_file t;
    CAIRN_TRY(cairn__commit_begin(&t, target, err));
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(t.fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cairn_status st = cairn__fail(err, CAIRN_E_IO, "%s: write failed: %s", target,
                                          strerror(errno));
            cairn__commit_discard(&t);
            return st;
        }
        p += n;
        len -= (size_t)n;
    }
    return cairn__commit_publish(&t, target, flags, err);
}

size_t cairn__commit_sweep(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!cairn__commit_is_temp_name(e->d_name))
            continue;
        /* O_NONBLOCK: the name is anyone's; never hang on a FIFO. */
        int fd = openat(dfd, e->d_name, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        /* A lock we can take means its writer is gone. The age test covers
         * the instant between a writer's open and its lock (and files of
         * older cairn versions, which held no lock). */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            time(NULL) - st.st_mtime > SWEEP_MIN_AGE && lock_fd(fd) == 0 &&
            unlinkat(dfd, e->d_name, 0) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}
