/*
 * commit.h -- the one commit protocol (docs/FORMAT.md §9, docs/CHECKPOINTS.md):
 * a new file is written under no name or a temporary name in the target's
 * directory, fsync'ed, given its final name in one step, and the directory
 * is fsync'ed. After a crash at any instant the target holds either its old
 * contents or the new ones, never a mix.
 *
 * Temporary files are unnamed where the file system allows (O_TMPFILE), so
 * a writer killed at any instant leaves nothing behind; elsewhere they are
 * DIR/.BASE.cairn-tmp-<16 hex digits>, held under an open-file-description
 * lock for the writer's life, and cairn__commit_sweep removes those whose
 * writer is gone. The writer, the checkpoint manager, signing and sharded
 * saves all commit through here.
 */
#ifndef CAIRN_IO_COMMIT_H
#define CAIRN_IO_COMMIT_H

#include "common/internal.h"

enum {
    CAIRN__COMMIT_NO_SYNC = 1u << 0,    /* skip fsync of file and directory (still atomic) */
    CAIRN__COMMIT_NO_REPLACE = 1u << 1  /* fail with CAIRN_E_EXISTS if the target exists */
};

/* A file being written for `target`. */
typedef struct cairn__commit_file {
    int fd;          /* open for writing, or -1 */
    char *tmp_path;  /* the temporary name, or NULL while the file is unnamed */
    int unnamed;     /* O_TMPFILE: linked in at publish */
} cairn__commit_file;

/* Creates the temporary file for `target` in target's directory (mode 0666
 * less the umask) and removes stale temporaries of dead writers there
 * first (best effort). On failure t->fd is -1. */
cairn_status cairn__commit_begin(cairn__commit_file *t, const char *target, cairn_error *err);
/* fsync (unless NO_SYNC), name the file `target` (replacing it atomically,
 * or, with NO_REPLACE, only if it does not exist), fsync the directory.
 * Closes the file in every case; on failure the temporary is removed. */
cairn_status cairn__commit_publish(cairn__commit_file *t, const char *target, unsigned flags,
                                   cairn_error *err);
/* Closes and removes an unpublished file. Safe twice and after publish. */
void cairn__commit_discard(cairn__commit_file *t);

/* Renames `from` to `to` (files or directories) atomically, with NO_REPLACE
 * never replacing an existing `to` (CAIRN_E_EXISTS), then fsyncs the
 * directory of `to` unless NO_SYNC. */
cairn_status cairn__commit_rename(const char *from, const char *to, unsigned flags,
                                  cairn_error *err);
/* fsyncs the directory that holds `path`. */
cairn_status cairn__commit_sync_parent(const char *path, cairn_error *err);
/* fsyncs directory `dir` itself. */
cairn_status cairn__commit_sync_dir(const char *dir, cairn_error *err);
/* Writes `len` bytes as the whole new contents of `target` through the
 * protocol above (small files: indexes, manifests, keys); an object URL
 * (io/remote.h) gets them in one upload that appears whole. */
cairn_status cairn__commit_small_file(const char *target, const void *data, size_t len,
                                      unsigned flags, cairn_error *err);
/* Removes DIR/.*.cairn-tmp-* files whose writer is gone (no lock held on
 * them). Returns how many were removed. Best effort, never fails. */
size_t cairn__commit_sweep(const char *dir);

/* 1 if `name` (a directory entry) is a commit temporary. */
int cairn__commit_is_temp_name(const char *name);

#endif
