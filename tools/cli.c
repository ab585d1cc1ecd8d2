/* cli.c -- helpers shared by the commands of the `cairn` tool. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_prog = "cairn";

int cli_exit_code(cairn_status st)
{
    switch (st) {
    case CAIRN_OK: return EXIT_OK;
    case CAIRN_E_IO:
    case CAIRN_E_NOMEM: return EXIT_IO;
    case CAIRN_E_ARG: return EXIT_USAGE;
    default: return EXIT_BAD_INPUT;
    }
}

int cli_report(cairn_status st, const cairn_error *err)
{
    fprintf(stderr, "%s: %s\n", cli_prog, err->message[0] ? err->message : cairn_strerror(st));
    return cli_exit_code(st);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run '%s --help' for usage)\n", cli_prog);
    return EXIT_USAGE;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

int cli_open_input(const char *path, unsigned flags, cairn_file **f)
{
    cairn_error err = {0};
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = flags, .format = CAIRN_FORMAT_AUTO};
    cairn_status st = cairn_file_open(path, &opts, f, &err);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

void cli_shape_text(const cairn_tensor_info *t, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < t->rank && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, "%s%" PRIu64, d ? ", " : "", t->dims[d]);
    if (o < size)
        snprintf(buf + o, size - o, "]");
}

json_t *cli_shape_json(const cairn_tensor_info *t)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < t->rank; d++)
        json_array_append_new(a, json_integer((json_int_t)t->dims[d]));
    return a;
}

int cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    if (!s)
        return EXIT_IO;
    puts(s);
    free(s);
    return EXIT_OK;
}

const char *cli_codec_name(uint32_t codec) { return codec == CAIRN_CODEC_NONE ? "none" : "?"; }
