/* h5_lib.h -- cairn's use of libhdf5 shared by the HDF5 reader and writer
 * (docs/FORMAT.md 17): the one lock every libhdf5 call holds, closing ids,
 * and the mapping between HDF5 types and cairn dtypes. */
#ifndef CAIRN_H5_LIB_H
#define CAIRN_H5_LIB_H

#include "common/internal.h"

#include <hdf5.h>

/* Where Debian's HDF5 filter plugins are (hdf5-plugin-lzf,
 * hdf5-filter-plugin, hdf5-filter-plugin-blosc-serial). */
#ifndef CAIRN_HDF5_PLUGIN_DIR
#define CAIRN_HDF5_PLUGIN_DIR "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins"
#endif

typedef struct cairn__h5_guard {
    H5E_auto2_t func;
    void *data;
} cairn__h5_guard;

/* Takes the lock and silences libhdf5's automatic error printing (a library
 * prints nothing); cairn__h5_leave restores the caller's printer. */
void cairn__h5_enter(cairn__h5_guard *g);
void cairn__h5_leave(const cairn__h5_guard *g);
/* Makes sure libhdf5 finds Debian's filter plugins (lock held). */
void cairn__h5_plugin_path(void);
/* Closes an id of any kind unless the call that made it failed (< 0). */
void cairn__h5_drop(hid_t id);
/* Closes a memory type when `owned` (the mapping made it). */
void cairn__h5_close_type(hid_t t, int owned);
/* The cairn dtype of a file type and the memory type that reads it as
 * little-endian elements of that dtype; *owned says whether *mem must be
 * closed. NULL, or why the type is not a tensor (then nothing is open). */
const char *cairn__h5_map_type(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned);
/* The same for h5py's bool only (an enum of FALSE = 0, TRUE = 1). */
const char *cairn__h5_map_enum(hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned);
/* cairn__h5_map_type for dataset ds, which also knows Keras' bfloat16. */
const char *cairn__h5_dataset_type(hid_t ds, hid_t ft, cairn_dtype *dt, hid_t *mem, int *owned);

#endif
