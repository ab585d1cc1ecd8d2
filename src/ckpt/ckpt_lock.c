/* ckpt_lock.c -- one writer per checkpoint series (directory + prefix).
 *
 * The lock is an open-file-description lock (F_OFD_SETLK) on
 * DIR/.<prefix>ckpt.cairn-lock, or flock() where the kernel or the file
 * system lacks OFD locks. Both belong to the open file, not to a process
 * table entry that could go stale: the kernel drops them when the last
 * descriptor closes, so a killed writer never leaves the series locked and a
 * lock file left on disk blocks nobody. The file's content ("pid N") only
 * names the holder for the error message of the next writer (F_OFD_GETLK
 * cannot: it reports l_pid = -1 for OFD locks); it is never trusted for
 * anything else. The file is never removed: unlinking a lock file lets a
 * third process lock a new inode while the second still holds the old one.
 */
#include "ckpt/ckpt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

/* 0: locked; 1: another open file holds it; -1: this file system has
 * neither lock (errno says why). */
static int try_lock(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES)
        return 1;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    return errno == EWOULDBLOCK ? 1 : -1;
}

/* The holder's PID as its lock file states it; 0 if unknown (the holder
 * may not have written it yet, or wrote something else). */
static long holder_pid(int fd)
{
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 4)
        return 0;
    buf[n] = '\0';
    long pid = 0;
    return sscanf(buf, "pid %ld", &pid) == 1 && pid > 0 ? pid : 0;
}

cairn_status cairn__ckpt_lock(cairn_ckpt *m, cairn_error *err)
{
    m->lock_fd = -1;
    size_t n = strlen(m->dir) + strlen(m->prefix) + 32;
    char *path = malloc(n);
    if (!path)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", m->dir);
    snprintf(path, n, "%s/.%sckpt.cairn-lock", m->dir, m->prefix);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        cairn_status st = cairn__fail(err, CAIRN_E_IO, "%s: cannot open the lock file %s: %s",
                                      m->dir, path, strerror(errno));
        free(path);
        return st;
    }
    int r = try_lock(fd);
    if (r == 1) {
        long pid = holder_pid(fd);
        char who[48] = "another process";
        if (pid)
            snprintf(who, sizeof who, "process %ld", pid);
        cairn_status st = cairn__fail(err, CAIRN_E_BUSY, "%s: checkpoints %sckpt-*.cairn are "
                                      "being written by %s (lock %s); one writer per directory "
                                      "and prefix (readers are not blocked)",
                                      m->dir, m->prefix, who, path);
        close(fd);
        free(path);
        return st;
    }
    free(path);
    if (r < 0) {
        /* No lock on this file system (some network file systems): go on
         * without it; commits still never replace a file. */
        close(fd);
        return CAIRN_OK;
    }
    char text[32];
    int len = snprintf(text, sizeof text, "pid %ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)len, 0) < 0) {
        /* best effort: the name of the holder is only for messages */
    }
    m->lock_fd = fd;
    return CAIRN_OK;
}

void cairn__ckpt_unlock(cairn_ckpt *m)
{
    if (m->lock_fd < 0)
        return;
    /* Still holding the lock: no one can be reading a PID from it. */
    if (ftruncate(m->lock_fd, 0) != 0) {
        /* a stale PID in an unlocked file misleads nobody: it is not read
         * unless the lock is held */
    }
    close(m->lock_fd);
    m->lock_fd = -1;
}
