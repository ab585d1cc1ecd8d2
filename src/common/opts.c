/* opts.c -- the one reader of the caller's options structs (see opts.h). */
#include "common/opts.h"

cairn_status cairn__opts_copy(void *dst, size_t dst_size, const void *src, size_t min_size,
                              const char *type_name, cairn_error *err)
{
    if (!src)
        return CAIRN_OK;
    size_t have;
    memcpy(&have, src, sizeof have); /* struct_size is every options struct's first field */
    if (have < min_size)
        return cairn__fail(err, CAIRN_E_ARG, "%s.struct_size %zu is too small (at least %zu)",
                           type_name, have, min_size);
    memcpy(dst, src, have < dst_size ? have : dst_size);
    memcpy(dst, &dst_size, sizeof dst_size);
    return CAIRN_OK;
}
