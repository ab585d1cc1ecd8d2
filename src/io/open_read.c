/* open_read.c -- open for reading, type checked before anything can block
 * (open_read.h). */
#include "io/open_read.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char *kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

cairn_status cairn__open_read(const char *path, int oflags, unsigned flags, int *fd,
                              struct stat *st, cairn_error *err)
{
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | oflags);
    if (*fd < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    cairn_status status = CAIRN_OK;
    int fl;
    if (fstat(*fd, st) != 0)
        status = cairn__fail(err, CAIRN_E_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st->st_mode) && !(S_ISDIR(st->st_mode) && (flags & CAIRN__OPEN_DIR_OK)))
        status = cairn__fail(err, CAIRN_E_IO, "%s: %s, not a regular file; cairn reads only "
                             "regular files", path, kind(st->st_mode));
    else if ((fl = fcntl(*fd, F_GETFL)) < 0 || fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
        status = cairn__fail(err, CAIRN_E_IO, "%s: cannot clear O_NONBLOCK: %s", path,
                             strerror(errno));
    if (status != CAIRN_OK) {
        close(*fd);
        *fd = -1;
    }
    return status;
}
