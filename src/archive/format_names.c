/* format_names.c -- the public queries of format names and extensions
 * (cairn.h), answered from the registry's rows (format/registry.h). */
#include "archive/archive.h"

#include <strings.h>

const char *cairn_format_name(cairn_format format)
{
    if (format == CAIRN_FORMAT_AUTO)
        return "auto";
    const cairn__format_row *row = cairn__format_row_of(format);
    return row ? row->name : NULL;
}

cairn_format cairn_format_from_name(const char *name)
{
    if (!name)
        return CAIRN_FORMAT_AUTO;
    if (!strcasecmp(name, "native"))
        return CAIRN_FORMAT_NATIVE;
    size_t count;
    const cairn__format_row *row = cairn__format_rows(&count);
    for (size_t i = 0; i < count; i++)
        if (!strcasecmp(row[i].name, name))
            return row[i].format;
    return CAIRN_FORMAT_AUTO;
}

const char *cairn_format_extensions(cairn_format format)
{
    const cairn__format_row *row = cairn__format_row_of(format);
    return row && row->writer ? row->extensions : NULL;
}
