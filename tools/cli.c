/* cli.c -- helpers shared by the commands of the `cairn` tool. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

const char *const cli_prog = "cairn";

int cli_exit_code(cairn_status st)
{
    switch (st) {
    case CAIRN_OK: return EXIT_OK;
    case CAIRN_E_IO:
    case CAIRN_E_AUTH:
    case CAIRN_E_BUSY:
    case CAIRN_E_NOMEM: return EXIT_IO;
    case CAIRN_E_ARG: return EXIT_USAGE;
    default: return EXIT_BAD_INPUT;
    }
}

int cli_report(cairn_status st, const cairn_error *err)
{
    char shown[4 * sizeof err->message + 8];
    const char *m = err->message[0] ? err->message : cairn_strerror(st);
    fprintf(stderr, "%s: %s\n", cli_prog, cli_safe(m, strlen(m), shown, sizeof shown));
    /* The library names its option; a CLI user raises it from the environment. */
    if (strstr(m, "max_inflate"))
        fprintf(stderr, "%s: (for the cairn command: CAIRN_MAX_INFLATE=SIZE, e.g. 4G, if the file is trusted)\n",
                cli_prog);
    return cli_exit_code(st);
}

/* The length of the UTF-8 sequence at s (at most n bytes) when it is valid
 * and not a C1 control (U+0080..U+009F, which terminals may obey), else 0. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (!len || len > n || s[0] > 0xF4)
        return 0;
    uint32_t cp = s[0] & (0x3F >> (len - 1));
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0xA0, 0x800, 0x10000}; /* 0x80..0x9F: C1 */
    return cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : len;
}

const char *cli_safe(const char *s, size_t len, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    if (size < 8)
        return size ? (buf[0] = '\0', buf) : buf;
    for (size_t i = 0; i < len;) {
        size_t n = u[i] >= 0x80 ? utf8_printable(u + i, len - i) : 1;
        int esc = u[i] < 0x20 || u[i] == 0x7F || u[i] == '\\' || n == 0;
        size_t need = esc ? 4 : n;
        if (o + need + 4 > size) { /* room for "..." and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (esc) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[u[i] >> 4];
            buf[o++] = hex[u[i] & 15];
            i++;
        } else {
            memcpy(buf + o, u + i, n);
            o += n;
            i += n;
        }
    }
    buf[o] = '\0';
    return buf;
}

void cli_warn_not_carried(const cairn_file *f)
{
    cairn_file_info fi;
    cairn_error err;
    cairn_value *tree = NULL;
    if (cairn_file_get_info(f, &fi, &err) != CAIRN_OK || fi.format != CAIRN_FORMAT_HDF5 ||
        cairn_file_read_metadata(f, &tree, &err) != CAIRN_OK)
        return;
    const cairn_value *left = cairn_value_get(tree, "hdf5.skipped");
    size_t n = cairn_value_count(left);
    char shown[CLI_SAFE_MAX];
    const char *path = cairn_file_path(f);
    if (n)
        fprintf(stderr, "%s: warning: %s: %zu HDF5 object%s neither tensors nor metadata, left "
                "out:", cli_prog, cli_safe(path, strlen(path), shown, sizeof shown), n,
                n == 1 ? " is" : "s are");
    for (size_t i = 0; i < n && i < 20; i++) {
        const cairn_value *e = cairn_value_at(left, i);
        const void *p = "", *why = "";
        size_t plen = 0, wlen = 0;
        cairn_value_get_data(cairn_value_get(e, "path"), &p, &plen);
        cairn_value_get_data(cairn_value_get(e, "why"), &why, &wlen);
        fprintf(stderr, "%s '%s' (%.*s)", i ? "," : "", cli_safe(p, plen, shown, sizeof shown),
                (int)wlen, (const char *)why);
    }
    if (n)
        fprintf(stderr, "%s\n", n > 20 ? ", ..." : "");
    cairn_value_free(tree);
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

/* CAIRN_MAX_INFLATE sets the open's inflate budget (cairn_open_opts.max_inflate)
 * for every command: how a user reads a trusted archive whose members compress
 * better than the default allows, without a flag on each command. */
int cli_open_opts_env(cairn_open_opts *opts)
{
    const char *s = getenv("CAIRN_MAX_INFLATE");
    return s && *s ? cli_parse_size("CAIRN_MAX_INFLATE", s, &opts->max_inflate) : EXIT_OK;
}

int cli_open_input(const char *path, unsigned flags, cairn_file **f)
{
    cairn_error err = {0};
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = flags, .format = CAIRN_FORMAT_AUTO};
    int rc = cli_open_opts_env(&opts);
    if (rc != EXIT_OK)
        return rc;
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
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    unsigned shift = 0;
    if (end == text || text[0] == '-' || errno == ERANGE)
        return cli_usage_error("%s wants a size, got '%s'", opt, text);
    if (!strcmp(end, "K") || !strcmp(end, "k") || !strcmp(end, "KiB"))
        shift = 10;
    else if (!strcmp(end, "M") || !strcmp(end, "MiB"))
        shift = 20;
    else if (!strcmp(end, "G") || !strcmp(end, "GiB"))
        shift = 30;
    else if (*end)
        return cli_usage_error("%s wants a size (bytes, or with K, M or G), got '%s'", opt, text);
    if (shift && v > (UINT64_MAX >> shift))
        return cli_usage_error("%s: size '%s' is too large", opt, text);
    *out = (uint64_t)v << shift;
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

int cli_other_arg(const char *cmd, int argc, char **argv, int *i, unsigned *open_flags,
                  const char **pos, int *npos, int max)
{
    const char *a = argv[*i];
    if (open_flags && !strcmp(a, "--inert")) {
        *open_flags |= CAIRN_OPEN_INERT;
        return EXIT_OK;
    }
    int rest = !strcmp(a, "--");
    if (!rest && a[0] == '-' && a[1] == '-')
        return cli_usage_error("%s: unknown option '%s'", cmd, a);
    for (int k = rest ? *i + 1 : *i; k < (rest ? argc : *i + 1); k++) {
        if (*npos == max)
            return cli_usage_error("%s: unexpected argument '%s'", cmd, argv[k]);
        pos[(*npos)++] = argv[k];
    }
    if (rest)
        *i = argc;
    return EXIT_OK;
}

int cli_positional_args(const char *cmd, int argc, char **argv, unsigned *open_flags,
                        const char **pos, int n, const char *what)
{
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        int rc = cli_other_arg(cmd, argc, argv, &i, open_flags, pos, &npos, n);
        if (rc != EXIT_OK)
            return rc;
    }
    return npos == n ? EXIT_OK : cli_usage_error("%s: needs %s", cmd, what);
}

/* Parses "FILE [--json] [--inert]" and opens FILE (--inert: pickles as data). */
int cli_open_file_args(const char *cmd, int argc, char **argv, cairn_file **f, int *as_json)
{
    const char *path = NULL;
    unsigned flags = 0;
    int npos = 0;
    *as_json = 0;
    for (int i = 1; i < argc; i++) {
        int rc = EXIT_OK;
        if (!strcmp(argv[i], "--json"))
            *as_json = 1;
        else
            rc = cli_other_arg(cmd, argc, argv, &i, &flags, &path, &npos, 1);
        if (rc != EXIT_OK)
            return rc;
    }
    if (!path)
        return cli_usage_error("%s: needs FILE", cmd);
    return cli_open_input(path, flags, f);
}

/* Finds NAME in FILE and returns its bytes in its own dtype, zero-copy when
 * possible (*owned is then NULL). */
int cli_load_tensor(const char *path, const char *name, unsigned flags, cairn_file **f,
                    cairn_tensor_info *t, const void **data, void **owned)
{
    cairn_error err = {0};
    uint64_t index;
    *owned = NULL;
    int rc = cli_open_input(path, flags, f);
    if (rc != EXIT_OK)
        return rc;
    cairn_status st = cairn_tensor_find(*f, name, &index, t, &err);
    if (st == CAIRN_OK && t->zero_copy) {
        st = cairn_tensor_verify(*f, index, &err);
        if (st == CAIRN_OK)
            st = cairn_tensor_data(*f, index, data, &err);
    } else if (st == CAIRN_OK) {
        *owned = malloc(t->raw_size ? (size_t)t->raw_size : 1);
        if (!*owned)
            return fprintf(stderr, "%s: %s: out of memory\n", cli_prog, path), EXIT_IO;
        st = cairn_tensor_read(*f, index, t->dtype, *owned, (size_t)t->raw_size, CAIRN_READ_VERIFY,
                               &err);
        *data = *owned;
    }
    if (st == CAIRN_OK)
        return EXIT_OK;
    free(*owned); /* on failure *owned is NULL (freed here) */
    *owned = NULL;
    return cli_report(st, &err);
}

int cli_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void cli_print_key_id(const uint8_t *id)
{
    for (int i = 0; i < CAIRN_KEY_ID_BYTES; i++)
        printf("%02x", id[i]);
}

int cli_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The C.UTF-8 character classes, made once (the tool is single-threaded);
 * (locale_t)0 when the C library has none. */
static locale_t utf8_locale(void)
{
    static int tried;
    static locale_t loc;
    if (!tried) {
        tried = 1;
        loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    return loc;
}

size_t cli_text_width(const char *name, size_t len)
{
    locale_t loc = utf8_locale();
    size_t width = 0;
    if (!loc) { /* no UTF-8 classes: one column per code point */
        for (size_t i = 0; i < len; i++)
            width += ((unsigned char)name[i] & 0xC0) != 0x80;
        return width;
    }
    locale_t old = uselocale(loc);
    mbstate_t state;
    memset(&state, 0, sizeof state);
    while (len > 0) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, name, len, &state);
        int w = 1;
        if (n == (size_t)-1 || n == (size_t)-2) { /* not UTF-8: one byte, one column */
            memset(&state, 0, sizeof state);
            n = 1;
        } else {
            if (n == 0) /* an embedded NUL */
                n = 1;
            w = wcwidth(wc);
            if (w < 0)
                w = 1;
        }
        width += (size_t)w;
        name += n;
        len -= n;
    }
    uselocale(old);
    return width;
}

void cli_print_padded(const char *name, size_t len, size_t width)
{
    char shown[CLI_SAFE_MAX]; /* control characters escaped, then padded as shown */
    const char *s = cli_safe(name, len, shown, sizeof shown);
    size_t n = strlen(s), w = cli_text_width(s, n);
    fwrite(s, 1, n, stdout);
    for (; w < width; w++)
        putchar(' ');
}
