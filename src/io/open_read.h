/*
 * open_read.h -- opening a path for reading without ever blocking on what
 * it names: a FIFO waits for a writer and some devices for their hardware
 * at open(), so the type is checked on a descriptor opened O_NONBLOCK
 * (no window between the check and the open), and only a regular file (or
 * a directory, when the caller takes one) goes on, with O_NONBLOCK cleared.
 */
#ifndef CAIRN_OPEN_READ_H
#define CAIRN_OPEN_READ_H

#include "common/internal.h"

#include <sys/stat.h>

#define CAIRN__OPEN_DIR_OK 0x1u /* a directory is returned too (its type is in st) */

/* Opens `path` read-only (O_CLOEXEC, plus `oflags`, e.g. O_NOFOLLOW) into
 * *fd and fills *st. Anything but a regular file (or a directory with
 * CAIRN__OPEN_DIR_OK) is refused with CAIRN_E_IO naming its kind, as is a
 * failed open; *fd is then -1. */
cairn_status cairn__open_read(const char *path, int oflags, unsigned flags, int *fd,
                              struct stat *st, cairn_error *err);

#endif
