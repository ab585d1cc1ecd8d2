/*
 * opts.h -- reading the caller's options structs (not installed).
 *
 * Every public options struct starts with `size_t struct_size` (sizeof the
 * struct as the caller's header had it), so fields can be appended later. A
 * caller built against an older header passes a shorter struct: the library
 * reads only the bytes the caller has and takes the default for every field
 * beyond them. A struct too short to hold its mandatory first fields is
 * refused with CAIRN_E_ARG.
 */
#ifndef CAIRN_OPTS_H
#define CAIRN_OPTS_H

#include "common/internal.h"

#include <stddef.h>

/* Bytes from the start of `type` to the end of `field`. */
#define CAIRN__OPT_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* Copies what the caller has of an options struct into `dst` (`dst_size`
 * bytes, already holding the defaults): nothing when `src` is NULL, else the
 * first min(src->struct_size, dst_size) bytes. dst's struct_size becomes
 * dst_size. Fails with CAIRN_E_ARG, naming `type_name`, when src's
 * struct_size is below `min_size` (the end of its mandatory fields). */
cairn_status cairn__opts_copy(void *dst, size_t dst_size, const void *src, size_t min_size,
                              const char *type_name, cairn_error *err);

/* The same for a struct type: CAIRN__OPTS_COPY(&o, opts, cairn_load_opts, flags, err)
 * makes `flags` the last mandatory field. */
#define CAIRN__OPTS_COPY(dst, src, type, last_mandatory, err)                                  \
    cairn__opts_copy((dst), sizeof(type), (src), CAIRN__OPT_END(type, last_mandatory), #type, \
                     (err))

#endif
