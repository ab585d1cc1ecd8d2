/* h5_reader.h -- the HDF5 reader's state and the parts its files share
 * (h5_open.c opens and walks, h5_tree.c builds the metadata tree,
 * h5_keras.c knows Keras, h5_load.c reads datasets). */
#ifndef CAIRN_H5_READER_H
#define CAIRN_H5_READER_H

#include "format/format.h"
#include "format/hdf5/h5_lib.h"
#include "common/nameset.h"
#include "container/zip.h"
#include "io/spool.h"

#define H5_MAX_ATTR_ELEMS (1u << 20) /* attributes larger than this are left out */
/* A dataset may hold at most max(max_inflate, this x the bytes libhdf5
 * stores for it) bytes of data: the ZIP reader's ratio (docs/FORMAT.md
 * 12.3), for fill values and filters alike. */
#define H5_RATIO_LIMIT CAIRN__ZIP_RATIO_LIMIT

typedef struct h5_skip {
    char *path;
    const char *why; /* static text */
} h5_skip;

/* A file image libhdf5 reads in place (cairn__h5_open_file); it must outlive the file
 * (libhdf5 calls back with it until H5Fclose). */
typedef struct h5_image {
    void *buf;
    size_t size;
} h5_image;

typedef struct h5_reader {
    cairn__tensor_table table; /* first: the generic ops read it (format.h) */
    hid_t file;
    h5_image image; /* an image's callback data, for the file's lifetime */
    uint8_t *owned_image; /* a remote file's image: freed after the file */
    /* A .keras archive's weights, inflated to an unnamed temporary file
     * (fd -1 otherwise), and that file mapped when /proc cannot reopen it. */
    cairn__spool weights;
    void *mapped;
    size_t mapped_size;
    /* The tensors in walk order, kept compactly (a record is the path and
     * the shape: no libhdf5 id stays open, and the path is the name), and
     * the table's order over them when Keras' differs (NULL: walk order). */
    cairn__packed tensors;
    size_t *order;
    H5_index_t walk_index; /* the walk's order (creation or name), for the tree's walk */
    h5_skip *skipped;
    size_t nskipped, skipcap;
    char **strings; /* string datasets, carried in the tree under their paths */
    size_t nstrings, strcap;
    cairn__nameset index;
    uint64_t payload;
    cairn_value *keras; /* a .keras archive: {"config", "metadata"} from its JSON members */
    cairn_status st; /* the first failure inside a libhdf5 callback */
    cairn_error *err;
    const cairn_file *f;
} h5_reader;
CAIRN__TABLE_FIRST(h5_reader);

/* The name of the tensor at table position `pos` (< the tensor count). */
const char *cairn__h5_name(const h5_reader *r, uint64_t pos, size_t *len);
/* r->order made the identity (the walk's order) if it is not there yet. */
cairn_status cairn__h5_order(h5_reader *r);
/* CAIRN_E_NOMEM naming the file, kept as the walk's first failure. */
cairn_status cairn__h5_nomem(h5_reader *r);
/* 1 when `raw` bytes of data are more than max_inflate and more than
 * H5_RATIO_LIMIT times the bytes libhdf5 stores for dataset ds. */
int cairn__h5_over_ratio(const cairn_file *f, hid_t ds, uint64_t raw);
/* "/proc/self/fd/FD" in buf when the process can reopen descriptor fd
 * that way, else NULL. */
const char *cairn__h5_fd_path(int fd, char *buf, size_t size);
/* Opens the file at `path` read-only, or `image` (size bytes, read in
 * place, kept by the caller until H5Fclose) when not NULL; -1 if libhdf5
 * cannot. */
hid_t cairn__h5_open_file(const cairn_file *f, h5_reader *r, const char *path, int stdio,
                          const void *image, size_t size);
/* The metadata tree (docs/FORMAT.md 17.2). */
cairn_status cairn__h5_build_tree(h5_reader *r, cairn_value **out);
/* Keras' legacy order of the tensors, from the tree's attributes. */
cairn_status cairn__h5_keras_order(h5_reader *r, const cairn_value *tree);
/* Opens a .keras archive's weights member and reads its JSON members. */
cairn_status cairn__h5_open_keras(const cairn_file *f, h5_reader *r);
/* Keras 3's order: the tensors by path, runs of digits compared as numbers. */
cairn_status cairn__h5_natural_order(h5_reader *r);
/* The reader's load, load_range and verify_tensor ops. */
cairn_status cairn__h5_load(const cairn_file *f, uint64_t index, void *dst, cairn_error *err);
cairn_status cairn__h5_load_range(const cairn_file *f, uint64_t index, uint64_t lo, uint64_t hi,
                                  void *dst, cairn_error *err);
cairn_status cairn__h5_verify_tensor(const cairn_file *f, uint64_t index, cairn_error *err);

#endif
