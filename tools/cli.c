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
    case CAIRN_E_BUSY:
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

const char *cli_codec_name(uint32_t codec)
{
    const char *n = cairn_codec_name(codec);
    return n ? n : "unknown";
}

void cli_codec_text(const cairn_tensor_info *t, char *buf, size_t size)
{
    if (t->codec == CAIRN_CODEC_NONE)
        snprintf(buf, size, "none");
    else if (!cairn_codec_name(t->codec))
        snprintf(buf, size, "codec%u", t->codec);
    else
        snprintf(buf, size, "%s:%d%s", cairn_codec_name(t->codec), t->level,
                 t->filter == CAIRN_FILTER_SHUFFLE ? "+shuffle" : "");
}

double cli_ratio(uint64_t raw, uint64_t stored)
{
    return stored ? (double)raw / (double)stored : 1.0;
}

int cli_parse_compress(const char *spec, cairn_write_opts *o)
{
    cairn_error err = {0};
    uint32_t codec;
    int32_t level;
    if (cairn_codec_parse(spec, &codec, &level, &err) != CAIRN_OK)
        return cli_usage_error("--compress: %s", err.message);
    o->codec = codec;
    o->level = level;
    return EXIT_OK;
}

int cli_parse_size(const char *opt, const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text)
        return cli_usage_error("%s wants a size, got '%s'", opt, text);
    if (!strcmp(end, "K") || !strcmp(end, "k") || !strcmp(end, "KiB"))
        v <<= 10;
    else if (!strcmp(end, "M") || !strcmp(end, "MiB"))
        v <<= 20;
    else if (*end)
        return cli_usage_error("%s wants a size (bytes, or with K or M), got '%s'", opt, text);
    *out = v;
    return EXIT_OK;
}

/* Options shared by pack and convert: --compress, --shuffle, --chunk-size,
 * --threads. Returns 1 when argv[*i] was one of them (advancing *i past its
 * value), 0 when not, or -1 - exit code on a usage error. */
int cli_compress_option(int argc, char **argv, int *i, cairn_write_opts *o)
{
    const char *a = argv[*i];
    int rc = EXIT_OK;
    if (!strcmp(a, "--compress") && *i + 1 < argc) {
        rc = cli_parse_compress(argv[++*i], o);
    } else if (!strcmp(a, "--shuffle")) {
        o->filter = CAIRN_FILTER_SHUFFLE;
    } else if (!strcmp(a, "--chunk-size") && *i + 1 < argc) {
        rc = cli_parse_size("--chunk-size", argv[++*i], &o->chunk_size);
    } else if (!strcmp(a, "--threads") && *i + 1 < argc) {
        char *end;
        unsigned long v = strtoul(argv[++*i], &end, 10);
        if (*end || v > 64)
            rc = cli_usage_error("--threads wants 0 to 64, got '%s'", argv[*i]);
        o->threads = (unsigned)v;
    } else {
        return 0;
    }
    return rc == EXIT_OK ? 1 : -1 - rc;
}
