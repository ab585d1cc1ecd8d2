/* format.c -- helpers every format's reader may share (format.h). */
#include "format/format.h"

cairn_status cairn__find_by_name(const cairn_file *f, const cairn__nameset *names,
                                 cairn__name_fn name_at, const void *ctx, const char *name,
                                 size_t len, uint64_t *index, cairn_error *err)
{
    char shown[96];
    int64_t i = cairn__nameset_find(names, name, len, name_at, ctx);
    if (i >= 0) {
        *index = (uint64_t)i;
        return CAIRN_OK;
    }
    return cairn__fail(err, CAIRN_E_NOT_FOUND, "%s: no tensor '%s'", f->path,
                       cairn__printable(name, len, shown, sizeof shown));
}
