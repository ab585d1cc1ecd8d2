/* cairn.c -- the command-line tool: a thin client of libcairn's public API.
 * Exit codes: 0 ok, 1 bad or corrupt input (or, for diff, files that differ),
 * 2 usage error, 3 I/O error. */
#include <cairn.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "diff_meta.h"
#include "diff_values.h"

enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2, EXIT_IO = 3 };

static const char *prog = "cairn";

static int exit_code_for(cairn_status st)
{
    switch (st) {
    case CAIRN_OK: return EXIT_OK;
    case CAIRN_E_IO:
    case CAIRN_E_NOMEM: return EXIT_IO;
    case CAIRN_E_ARG: return EXIT_USAGE;
    default: return EXIT_BAD_INPUT;
    }
}

/* Prints the library's message for a failed call and returns the exit code. */
static int report(cairn_status st, const cairn_error *err)
{
    fprintf(stderr, "%s: %s\n", prog, err->message[0] ? err->message : cairn_strerror(st));
    return exit_code_for(st);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run '%s --help' for usage)\n", prog);
    return EXIT_USAGE;
}

static const char main_help[] =
    "usage: cairn COMMAND [ARGS...]\n"
    "\n"
    "Save, inspect and convert machine-learning tensor archives (.cairn, .npy).\n"
    "\n"
    "commands:\n"
    "  pack OUT.cairn NAME=FILE.npy [NAME=FILE.npy ...]   pack .npy files into one archive\n"
    "  unpack IN DIR          write every tensor of IN as DIR/NAME.npy\n"
    "  ls FILE [--json]       list tensors: name, dtype, shape, bytes, codec\n"
    "  info FILE [--json]     format, version, tensor count, total bytes, alignment\n"
    "  meta FILE              print the metadata tree as JSON\n"
    "  verify FILE            check every byte (checksums, structure)\n"
    "  cat FILE NAME          write one tensor's bytes (little-endian, C order) to stdout\n"
    "  show FILE NAME         dtype, shape, min/max/mean, NaN/Inf counts, first values\n"
    "  diff A B [--json]      compare tensors (names, dtypes, shapes, values) and metadata;\n"
    "                         exit 0 when identical, 1 when different\n"
    "\n"
    "Run 'cairn COMMAND --help' for a command's options.\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  bad or corrupt input (including a failed verify or a missing tensor);\n"
    "     for diff: the files differ\n"
    "  2  usage error\n"
    "  3  I/O error (cannot open, read, write, or out of memory)\n";

/* ------------------------------------------------------------- helpers */

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    return 0;
}

static int open_input(const char *path, unsigned flags, cairn_file **f)
{
    cairn_error err = {0};
    cairn_open_opts opts = {sizeof opts, flags, CAIRN_FORMAT_AUTO};
    cairn_status st = cairn_file_open(path, &opts, f, &err);
    return st == CAIRN_OK ? EXIT_OK : report(st, &err);
}

static void shape_text(const cairn_tensor_info *t, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < t->rank && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, "%s%" PRIu64, d ? ", " : "", t->dims[d]);
    if (o < size)
        snprintf(buf + o, size - o, "]");
}

static json_t *shape_json(const cairn_tensor_info *t)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < t->rank; d++)
        json_array_append_new(a, json_integer((json_int_t)t->dims[d]));
    return a;
}

static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    if (!s)
        return EXIT_IO;
    puts(s);
    free(s);
    return EXIT_OK;
}

static const char *codec_name(uint32_t codec) { return codec == CAIRN_CODEC_NONE ? "none" : "?"; }

/* --------------------------------------------------------------- pack */

static const char pack_help[] =
    "usage: cairn pack OUT.cairn NAME=FILE.npy [NAME=FILE.npy ...] [--align N] [--no-sync]\n"
    "\n"
    "Packs .npy files into one archive, each under NAME. The archive appears\n"
    "atomically: nothing is at OUT until every tensor is written and synced.\n"
    "  --align N   payload alignment in bytes (power of two, 8..65536; default 64)\n"
    "  --no-sync   skip fsync (faster; the rename is still atomic)\n";

static int add_npy(cairn_writer *w, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return usage_error("expected NAME=FILE.npy, got '%s'", spec);
    char *name = strndup(spec, (size_t)(eq - spec));
    cairn_file *in = NULL;
    int rc = name ? open_input(eq + 1, 0, &in) : EXIT_IO;
    cairn_error err = {0};
    cairn_tensor_info t;
    cairn_status st = CAIRN_OK;
    void *buf = NULL;
    if (rc == EXIT_OK && cairn_file_count(in) != 1) {
        fprintf(stderr, "%s: %s: holds %" PRIu64 " tensors; pack takes single-tensor files\n",
                prog, eq + 1, cairn_file_count(in));
        rc = EXIT_BAD_INPUT;
    }
    if (rc == EXIT_OK)
        st = cairn_tensor_info_at(in, 0, &t, &err);
    if (rc == EXIT_OK && st == CAIRN_OK) {
        const void *data = NULL;
        if (t.zero_copy) {
            st = cairn_tensor_data(in, 0, &data, &err);
        } else {
            buf = malloc(t.raw_size ? (size_t)t.raw_size : 1);
            if (!buf) {
                fprintf(stderr, "%s: %s: out of memory\n", prog, eq + 1);
                rc = EXIT_IO;
            } else {
                st = cairn_tensor_read(in, 0, t.dtype, buf, (size_t)t.raw_size, 0, &err);
                data = buf;
            }
        }
        if (rc == EXIT_OK && st == CAIRN_OK)
            st = cairn_writer_add(w, name, t.dtype, t.rank, t.dims, data, &err);
    }
    if (rc == EXIT_OK && st != CAIRN_OK)
        rc = report(st, &err);
    free(buf);
    free(name);
    cairn_file_close(in);
    return rc;
}

static int cmd_pack(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(pack_help, stdout), EXIT_OK;
    cairn_write_opts opts = {sizeof opts, 0, CAIRN_FORMAT_NATIVE, 0};
    const char *out = NULL;
    int first_spec = 0, nspecs = 0;
    char **specs = calloc((size_t)argc, sizeof *specs);
    if (!specs)
        return EXIT_IO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--align") && i + 1 < argc) {
            char *end;
            opts.alignment = strtoull(argv[++i], &end, 10);
            if (*end || !opts.alignment) {
                free(specs);
                return usage_error("--align wants a number, got '%s'", argv[i]);
            }
        } else if (!strcmp(argv[i], "--no-sync")) {
            opts.flags |= CAIRN_WRITE_NO_SYNC;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            free(specs);
            return usage_error("pack: unknown option '%s'", argv[i]);
        } else if (!out) {
            out = argv[i];
        } else {
            specs[nspecs++] = argv[i];
        }
    }
    (void)first_spec;
    if (!out || nspecs == 0) {
        free(specs);
        return usage_error("%s", "pack: needs OUT and at least one NAME=FILE.npy");
    }
    cairn_writer *w = NULL;
    cairn_error err = {0};
    cairn_status st = cairn_writer_open_path(out, &opts, &w, &err);
    if (st != CAIRN_OK) {
        free(specs);
        return report(st, &err);
    }
    int rc = EXIT_OK;
    for (int i = 0; i < nspecs && rc == EXIT_OK; i++)
        rc = add_npy(w, specs[i]);
    free(specs);
    if (rc != EXIT_OK) {
        cairn_writer_abort(w);
        return rc;
    }
    st = cairn_writer_commit(w, &err);
    return st == CAIRN_OK ? EXIT_OK : report(st, &err);
}

/* ------------------------------------------------------------- unpack */

static const char unpack_help[] =
    "usage: cairn unpack IN DIR\n"
    "\n"
    "Writes every tensor of IN as DIR/NAME.npy (DIR is created if missing).\n"
    "Bytes a file name cannot hold safely ('/', '\\\\', '%', control bytes, a\n"
    "leading '.') are written as %XX. A name too long for a file name is cut\n"
    "and followed by '~' and 16 hex digits of its hash. BF16 and FP8 tensors,\n"
    "which NumPy cannot describe, are written as uint16 / uint8 bit patterns\n"
    "with a warning.\n";

static void safe_file_name(const char *name, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, len = strlen(name);
    for (size_t i = 0; i < len && o + 4 < size; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7F || c == '/' || c == '\\' || c == '%' || (i == 0 && c == '.')) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    if (o > 230) { /* NAME_MAX is 255 on Linux file systems; keep room for ".npy" */
        size_t cut = 200;
        while (cut > 0 && ((unsigned char)out[cut] & 0xC0) == 0x80)
            cut--; /* do not split a UTF-8 sequence */
        snprintf(out + cut, size - cut, "~%016llx",
                 (unsigned long long)XXH3_64bits(name, len));
    }
}

static int unpack_one(cairn_file *in, uint64_t i, const char *dir)
{
    cairn_error err = {0};
    cairn_tensor_info t;
    cairn_status st = cairn_tensor_info_at(in, i, &t, &err);
    if (st != CAIRN_OK)
        return report(st, &err);
    cairn_dtype out_dtype = t.dtype;
    if (t.dtype == CAIRN_BF16 || t.dtype == CAIRN_F8_E4M3 || t.dtype == CAIRN_F8_E5M2) {
        out_dtype = t.dtype == CAIRN_BF16 ? CAIRN_U16 : CAIRN_U8;
        fprintf(stderr, "%s: warning: tensor '%s' is %s, which NumPy cannot describe; written as "
                "%s bit patterns\n", prog, t.name, cairn_dtype_name(t.dtype),
                cairn_dtype_name(out_dtype));
    }
    char fname[512], path[4096 + 600];
    safe_file_name(t.name, fname, sizeof fname);
    snprintf(path, sizeof path, "%s/%s.npy", dir, fname);
    void *buf = malloc(t.raw_size ? (size_t)t.raw_size : 1);
    if (!buf) {
        fprintf(stderr, "%s: tensor '%s': out of memory\n", prog, t.name);
        return EXIT_IO;
    }
    /* Same-width reinterpretation for BF16/FP8: read the stored bits as is. */
    st = cairn_tensor_read(in, i, t.dtype, buf, (size_t)t.raw_size, CAIRN_READ_VERIFY, &err);
    cairn_writer *w = NULL;
    cairn_write_opts opts = {sizeof opts, 0, CAIRN_FORMAT_NPY, 0};
    if (st == CAIRN_OK)
        st = cairn_writer_open_path(path, &opts, &w, &err);
    if (st == CAIRN_OK)
        st = cairn_writer_add(w, "array", out_dtype, t.rank, t.dims, buf, &err);
    if (st == CAIRN_OK) {
        st = cairn_writer_commit(w, &err);
        w = NULL;
    }
    cairn_writer_abort(w);
    free(buf);
    return st == CAIRN_OK ? EXIT_OK : report(st, &err);
}

static int cmd_unpack(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(unpack_help, stdout), EXIT_OK;
    if (argc != 3)
        return usage_error("%s", "unpack: needs IN and DIR");
    if (mkdir(argv[2], 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create directory: %s\n", prog, argv[2], strerror(errno));
        return EXIT_IO;
    }
    cairn_file *in;
    int rc = open_input(argv[1], 0, &in);
    for (uint64_t i = 0; rc == EXIT_OK && i < cairn_file_count(in); i++)
        rc = unpack_one(in, i, argv[2]);
    cairn_file_close(in);
    return rc;
}

/* ------------------------------------------------------------ ls, info */

static const char ls_help[] =
    "usage: cairn ls FILE [--json]\n"
    "\n"
    "Lists every tensor: name, dtype, shape, stored bytes, codec.\n";

static int cmd_ls(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(ls_help, stdout), EXIT_OK;
    int as_json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = 1;
        else if (!path)
            path = argv[i];
        else
            return usage_error("ls: unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return usage_error("%s", "ls: needs FILE");
    cairn_file *f;
    int rc = open_input(path, 0, &f);
    if (rc != EXIT_OK)
        return rc;
    json_t *list = as_json ? json_array() : NULL;
    cairn_error err = {0};
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        cairn_status st = cairn_tensor_info_at(f, i, &t, &err);
        if (st != CAIRN_OK) {
            json_decref(list);
            cairn_file_close(f);
            return report(st, &err);
        }
        if (as_json) {
            json_array_append_new(list, json_pack("{s:s%, s:s, s:o, s:I, s:I, s:s, s:I}",
                                                  "name", t.name, t.name_len, "dtype",
                                                  cairn_dtype_name(t.dtype), "shape", shape_json(&t),
                                                  "bytes", (json_int_t)t.raw_size, "stored_bytes",
                                                  (json_int_t)t.stored_size, "codec",
                                                  codec_name(t.codec), "offset",
                                                  (json_int_t)t.offset));
        } else {
            char shape[256];
            shape_text(&t, shape, sizeof shape);
            printf("%-40s %-8s %-24s %14" PRIu64 "  %s\n", t.name, cairn_dtype_name(t.dtype), shape,
                   t.stored_size, codec_name(t.codec));
        }
    }
    cairn_file_close(f);
    return as_json ? print_json(list) : EXIT_OK;
}

static const char info_help[] =
    "usage: cairn info FILE [--json]\n"
    "\n"
    "Prints the format, its version, the tensor count, total payload bytes and\n"
    "the largest tensor alignment.\n";

static int cmd_info(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(info_help, stdout), EXIT_OK;
    int as_json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = 1;
        else if (!path)
            path = argv[i];
        else
            return usage_error("info: unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return usage_error("%s", "info: needs FILE");
    cairn_file *f;
    int rc = open_input(path, 0, &f);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_file_info fi;
    cairn_status st = cairn_file_get_info(f, &fi, &err);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return report(st, &err);
    char version[32];
    snprintf(version, sizeof version, "%u.%u", fi.version_major, fi.version_minor);
    if (as_json)
        return print_json(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "format",
                                    cairn_format_name(fi.format), "version", version, "tensors",
                                    (json_int_t)fi.tensor_count, "total_bytes",
                                    (json_int_t)fi.payload_bytes, "file_bytes",
                                    (json_int_t)fi.file_size, "alignment",
                                    (json_int_t)fi.alignment, "metadata", fi.has_metadata));
    printf("format:      %s\nversion:     %s\ntensors:     %" PRIu64 "\ntotal bytes: %" PRIu64
           "\nfile bytes:  %" PRIu64 "\nalignment:   %" PRIu64 "\nmetadata:    %s\n",
           cairn_format_name(fi.format), version, fi.tensor_count, fi.payload_bytes, fi.file_size,
           fi.alignment, fi.has_metadata ? "yes" : "no");
    return EXIT_OK;
}

/* ------------------------------------------------------ meta, verify */

static const char meta_help[] =
    "usage: cairn meta FILE\n"
    "\n"
    "Prints the metadata tree as JSON. Values JSON cannot hold are tagged:\n"
    "{\"$float\": \"nan\"|\"inf\"|\"-inf\"|\"-0\"}, {\"$bytes\": BASE64}, {\"$tensor\": NAME}.\n";

static int cmd_meta(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(meta_help, stdout), EXIT_OK;
    if (argc != 2)
        return usage_error("%s", "meta: needs FILE");
    cairn_file *f;
    int rc = open_input(argv[1], 0, &f);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_value *tree = NULL;
    char *json = NULL;
    cairn_status st = cairn_file_read_metadata(f, &tree, &err);
    if (st == CAIRN_OK)
        st = cairn_value_to_json(tree, 2, &json, &err);
    if (st == CAIRN_OK)
        puts(json);
    cairn_free(json);
    cairn_value_free(tree);
    cairn_file_close(f);
    return st == CAIRN_OK ? EXIT_OK : report(st, &err);
}

static const char verify_help[] =
    "usage: cairn verify FILE\n"
    "\n"
    "Checks every byte: header, trailer, index, each tensor's checksum, payload\n"
    "overlaps and the metadata encoding. Exit 0 when sound; 1 with a message\n"
    "naming the first bad tensor or structure.\n";

static int cmd_verify(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(verify_help, stdout), EXIT_OK;
    if (argc != 2)
        return usage_error("%s", "verify: needs FILE");
    cairn_file *f;
    int rc = open_input(argv[1], 0, &f);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_status st = cairn_file_verify(f, &err);
    uint64_t n = cairn_file_count(f);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return report(st, &err);
    printf("%s: ok (%" PRIu64 " tensors)\n", argv[1], n);
    return EXIT_OK;
}

/* ---------------------------------------------------------- cat, show */

static const char cat_help[] =
    "usage: cairn cat FILE NAME\n"
    "\n"
    "Writes tensor NAME's elements to stdout: little-endian, C order, in its own\n"
    "dtype. Checksums are verified on the way.\n";

static int write_all(int fd, const void *data, size_t len)
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

/* Finds NAME in FILE and returns its bytes in its own dtype, zero-copy when
 * possible (*owned is then NULL). */
static int load_tensor(const char *path, const char *name, cairn_file **f, cairn_tensor_info *t,
                       const void **data, void **owned)
{
    cairn_error err = {0};
    uint64_t index;
    *owned = NULL;
    int rc = open_input(path, 0, f);
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
            return fprintf(stderr, "%s: %s: out of memory\n", prog, path), EXIT_IO;
        st = cairn_tensor_read(*f, index, t->dtype, *owned, (size_t)t->raw_size, CAIRN_READ_VERIFY,
                               &err);
        *data = *owned;
    }
    return st == CAIRN_OK ? EXIT_OK : report(st, &err);
}

static int cmd_cat(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(cat_help, stdout), EXIT_OK;
    if (argc != 3)
        return usage_error("%s", "cat: needs FILE and NAME");
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    int rc = load_tensor(argv[1], argv[2], &f, &t, &data, &owned);
    if (rc == EXIT_OK && write_all(STDOUT_FILENO, data, (size_t)t.raw_size) != 0) {
        fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
        rc = EXIT_IO;
    }
    free(owned);
    cairn_file_close(f);
    return rc;
}

static const char show_help[] =
    "usage: cairn show FILE NAME [--count N]\n"
    "\n"
    "Prints tensor NAME's dtype, shape, min/max/mean (over finite values),\n"
    "NaN and Inf counts, and its first N values (default 10). Complex tensors\n"
    "show statistics of their real and imaginary parts together.\n";

static int is_float(cairn_dtype d)
{
    return d == CAIRN_F64 || d == CAIRN_F32 || d == CAIRN_F16 || d == CAIRN_BF16 ||
           d == CAIRN_F8_E4M3 || d == CAIRN_F8_E5M2 || d == CAIRN_C64 || d == CAIRN_C128;
}

static int is_unsigned(cairn_dtype d)
{
    return d == CAIRN_U8 || d == CAIRN_U16 || d == CAIRN_U32 || d == CAIRN_U64 || d == CAIRN_BOOL;
}

typedef struct stats {
    uint64_t n_finite, n_nan, n_inf;
    double min, max, sum;
} stats;

static void add_value(stats *s, double v)
{
    if (isnan(v)) {
        s->n_nan++;
    } else if (isinf(v)) {
        s->n_inf++;
    } else {
        if (!s->n_finite || v < s->min)
            s->min = v;
        if (!s->n_finite || v > s->max)
            s->max = v;
        s->sum += v;
        s->n_finite++;
    }
}

static int cmd_show(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(show_help, stdout), EXIT_OK;
    long shown = 10;
    const char *pos[2] = {0};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            char *end;
            shown = strtol(argv[++i], &end, 10);
            if (*end || shown < 0)
                return usage_error("--count wants a non-negative number, got '%s'", argv[i]);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return usage_error("show: unexpected argument '%s'", argv[i]);
        }
    }
    if (npos != 2)
        return usage_error("%s", "show: needs FILE and NAME");
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    int rc = load_tensor(pos[0], pos[1], &f, &t, &data, &owned);
    if (rc != EXIT_OK) {
        cairn_file_close(f);
        return rc;
    }
    char shape[256];
    shape_text(&t, shape, sizeof shape);
    printf("name:   %s\ndtype:  %s\nshape:  %s\ncount:  %" PRIu64 "\n", t.name,
           cairn_dtype_name(t.dtype), shape, t.count);
    /* Convert in slices to F64 (floats), I64 or U64 (integers): memory stays
     * bounded however large the tensor is. */
    int fl = is_float(t.dtype), uns = is_unsigned(t.dtype);
    int cplx = t.dtype == CAIRN_C64 || t.dtype == CAIRN_C128;
    cairn_dtype wide = fl ? (cplx ? CAIRN_C128 : CAIRN_F64) : uns ? CAIRN_U64 : CAIRN_I64;
    size_t in_size = cairn_dtype_size(t.dtype), comps = cplx ? 2 : 1;
    enum { SLICE = 65536 };
    double *vals = malloc(SLICE * 2 * sizeof(double));
    stats s = {0};
    cairn_error err = {0};
    printf("first:  [");
    for (uint64_t i = 0; vals && i < t.count;) {
        size_t n = t.count - i < SLICE ? (size_t)(t.count - i) : SLICE;
        cairn_status st = cairn_convert(t.dtype, (const char *)data + i * in_size, wide, vals, n,
                                        &err);
        if (st != CAIRN_OK) {
            rc = report(st, &err);
            break;
        }
        for (size_t k = 0; k < n * comps; k++) {
            double v;
            if (fl) {
                v = vals[k];
            } else if (uns) {
                uint64_t u;
                memcpy(&u, &vals[k], 8);
                v = (double)u;
            } else {
                int64_t x;
                memcpy(&x, &vals[k], 8);
                v = (double)x;
            }
            add_value(&s, v);
            uint64_t elem = i + k / comps;
            if ((long)elem < shown) {
                if (cplx && k % 2 == 0)
                    printf("%s(%.8g", elem ? ", " : "", v);
                else if (cplx)
                    printf("%+.8gj)", v);
                else if (fl)
                    printf("%s%.8g", elem ? ", " : "", v);
                else if (uns)
                    { uint64_t u; memcpy(&u, &vals[k], 8); printf("%s%" PRIu64, elem ? ", " : "", u); }
                else
                    { int64_t x; memcpy(&x, &vals[k], 8); printf("%s%" PRId64, elem ? ", " : "", x); }
            }
        }
        i += n;
    }
    printf("%s]\n", (long)t.count > shown ? ", ..." : "");
    free(vals);
    if (s.n_finite)
        printf("min:    %.8g\nmax:    %.8g\nmean:   %.8g\n", s.min, s.max, s.sum / (double)s.n_finite);
    else
        printf("min:    -\nmax:    -\nmean:   -\n");
    printf("nan:    %" PRIu64 "\ninf:    %" PRIu64 "\n", s.n_nan, s.n_inf);
    free(owned);
    cairn_file_close(f);
    return rc;
}

/* ----------------------------------------------------------------- diff */

static const char diff_help[] =
    "usage: cairn diff A B [--atol X] [--rtol X] [--tensors-only] [--json]\n"
    "\n"
    "Compares two files of any format cairn opens: tensors by name (file order\n"
    "and alignment do not matter), then the metadata trees. Prints one line per\n"
    "difference, grouped in this order and sorted by name within each group:\n"
    "  only in A: NAME (DTYPE [SHAPE])\n"
    "  only in B: NAME (DTYPE [SHAPE])\n"
    "  dtype/shape: NAME: DTYPE [SHAPE] vs DTYPE [SHAPE]\n"
    "  values: NAME: K of N elements differ, max abs X, max rel Y[, M with NaN]\n"
    "  metadata: only in A: PATH: VALUE\n"
    "  metadata: only in B: PATH: VALUE\n"
    "  metadata: PATH: VALUE vs VALUE\n"
    "then \"identical\" or \"N differences\" (\"1 difference\"). Exit 0 when\n"
    "identical, 1 when not (or on bad input), 2 usage error, 3 I/O error.\n"
    "\n"
    "Without tolerances elements compare bit for bit: -0.0 differs from 0.0 and\n"
    "two NaNs are equal only when their bits are. Giving --atol or --rtol (even\n"
    "0) compares numerically, like numpy.isclose(a, b, rtol, atol, equal_nan=True):\n"
    "equal when |a-b| <= atol + rtol*|b|, so -0.0 == 0.0, NaN == NaN, and Inf\n"
    "equals only the same Inf. Integer differences are exact.\n"
    "Max abs is the largest |a-b| and max rel the largest |a-b|/|b| over every\n"
    "element pair without a NaN; where b == 0 and a != 0 the relative\n"
    "difference is inf. 'M with NaN' counts differing elements with a NaN on\n"
    "either side. Tensors whose dtype or shape changed are not compared by\n"
    "value. Metadata paths read config.lr, history[3].loss, [\"odd key\"];\n"
    "maps compare as key sets, floats bit for bit (tolerances do not apply).\n"
    "  --atol X         absolute tolerance (default 0)\n"
    "  --rtol X         relative tolerance (default 0)\n"
    "  --tensors-only   skip the metadata comparison\n"
    "  --json           print the report as one JSON object instead\n";

typedef enum tensor_change { ONLY_A, ONLY_B, DTYPE_SHAPE, VALUES } tensor_change;

typedef struct indexed_info {
    uint64_t index;
    cairn_tensor_info t;
} indexed_info;

/* One differing tensor. The infos point into the sorted lists and their
 * names are borrowed from the open files. */
typedef struct tensor_diff {
    tensor_change kind;
    const indexed_info *a, *b; /* NULL on the side that lacks the tensor */
    diff_stats stats;          /* VALUES only */
} tensor_diff;

typedef struct diff_opts {
    const char *path[2];
    diff_tolerance tol;
    int tensors_only, as_json;
} diff_opts;

/* Byte order of names, the order of the native index. */
static int name_cmp(const cairn_tensor_info *a, const cairn_tensor_info *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    return c ? c : (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

static int indexed_cmp(const void *x, const void *y)
{
    return name_cmp(&((const indexed_info *)x)->t, &((const indexed_info *)y)->t);
}

/* Every tensor's info, sorted by name: not every format stores tensors in
 * name order, and the files may hold them in different orders. */
static int sorted_infos(cairn_file *f, indexed_info **out, uint64_t *n)
{
    cairn_error err = {0};
    *n = cairn_file_count(f);
    *out = malloc((size_t)(*n ? *n : 1) * sizeof **out);
    if (!*out)
        return fprintf(stderr, "%s: %s: out of memory\n", prog, cairn_file_path(f)), EXIT_IO;
    for (uint64_t i = 0; i < *n; i++) {
        (*out)[i].index = i;
        cairn_status st = cairn_tensor_info_at(f, i, &(*out)[i].t, &err);
        if (st != CAIRN_OK)
            return report(st, &err);
    }
    qsort(*out, (size_t)*n, sizeof **out, indexed_cmp);
    return EXIT_OK;
}

/* Compares one tensor present in both files; adds an entry if it differs. */
static int diff_pair(cairn_file *const f[2], const indexed_info *a, const indexed_info *b,
                     const diff_tolerance *tol, tensor_diff *out, size_t *nout)
{
    if (!diff_same_dtype_shape(&a->t, &b->t)) {
        out[(*nout)++] = (tensor_diff){DTYPE_SHAPE, a, b, {0}};
        return EXIT_OK;
    }
    cairn_error err = {0};
    diff_stats s;
    cairn_status st = diff_values(f[0], a->index, &a->t, f[1], b->index, &b->t, tol, &s, &err);
    if (st != CAIRN_OK)
        return report(st, &err);
    if (s.differing)
        out[(*nout)++] = (tensor_diff){VALUES, a, b, s};
    return EXIT_OK;
}

/* Walks both sorted lists together; `out` has room for na + nb entries. */
static int diff_tensors(cairn_file *const f[2], const indexed_info *ia, uint64_t na,
                        const indexed_info *ib, uint64_t nb, const diff_tolerance *tol,
                        tensor_diff *out, size_t *nout)
{
    uint64_t i = 0, j = 0;
    int rc = EXIT_OK;
    *nout = 0;
    while (rc == EXIT_OK && (i < na || j < nb)) {
        int c = i == na ? 1 : j == nb ? -1 : name_cmp(&ia[i].t, &ib[j].t);
        if (c < 0)
            out[(*nout)++] = (tensor_diff){ONLY_A, &ia[i++], NULL, {0}};
        else if (c > 0)
            out[(*nout)++] = (tensor_diff){ONLY_B, NULL, &ib[j++], {0}};
        else
            rc = diff_pair(f, &ia[i++], &ib[j++], tol, out, nout);
    }
    return rc;
}

/* Tensor names as they are, but control bytes as \xNN: one line per entry. */
static void put_name(const cairn_tensor_info *t)
{
    for (size_t i = 0; i < t->name_len; i++) {
        unsigned char c = (unsigned char)t->name[i];
        if (c < 0x20 || c == 0x7F)
            printf("\\x%02X", c);
        else
            putchar(c);
    }
}

static void put_dtype_shape(const cairn_tensor_info *t)
{
    char shape[256];
    shape_text(t, shape, sizeof shape);
    printf("%s %s", cairn_dtype_name(t->dtype), shape);
}

static void real_text(double v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "nan");
    else if (isinf(v))
        snprintf(buf, size, "inf");
    else
        snprintf(buf, size, "%.6g", v);
}

static void print_values_line(const tensor_diff *d)
{
    const diff_stats *s = &d->stats;
    char abs_text[32], rel_text[32];
    if (s->is_integer)
        snprintf(abs_text, sizeof abs_text, "%" PRIu64, s->max_abs_int);
    else
        real_text(s->max_abs, abs_text, sizeof abs_text);
    real_text(s->max_rel, rel_text, sizeof rel_text);
    printf("values: ");
    put_name(&d->a->t);
    printf(": %" PRIu64 " of %" PRIu64 " elements differ, max abs %s, max rel %s", s->differing,
           s->count, abs_text, rel_text);
    if (s->nan_mismatch)
        printf(", %" PRIu64 " with NaN", s->nan_mismatch);
    putchar('\n');
}

static void print_tensor_diff(const tensor_diff *d)
{
    switch (d->kind) {
    case ONLY_A:
    case ONLY_B: {
        const cairn_tensor_info *t = d->kind == ONLY_A ? &d->a->t : &d->b->t;
        printf("only in %c: ", d->kind == ONLY_A ? 'A' : 'B');
        put_name(t);
        printf(" (");
        put_dtype_shape(t);
        printf(")\n");
        break;
    }
    case DTYPE_SHAPE:
        printf("dtype/shape: ");
        put_name(&d->a->t);
        printf(": ");
        put_dtype_shape(&d->a->t);
        printf(" vs ");
        put_dtype_shape(&d->b->t);
        putchar('\n');
        break;
    case VALUES: print_values_line(d); break;
    }
}

static int print_meta_line(void *ctx, diff_meta_kind kind, const char *path, const cairn_value *a,
                           const cairn_value *b)
{
    char va[512], vb[512];
    if (kind == DIFF_META_ONLY_A || kind == DIFF_META_ONLY_B) {
        diff_meta_render(kind == DIFF_META_ONLY_A ? a : b, va, sizeof va);
        printf("metadata: only in %c: %s: %s\n", kind == DIFF_META_ONLY_A ? 'A' : 'B', path, va);
    } else {
        diff_meta_render(a, va, sizeof va);
        diff_meta_render(b, vb, sizeof vb);
        printf("metadata: %s: %s vs %s\n", path, va, vb);
    }
    return 0;
}

/* ------------------------------------------------------- diff --json */

static json_t *tensor_json(const cairn_tensor_info *t)
{
    return json_pack("{s:s%, s:s, s:o}", "name", t->name, t->name_len, "dtype",
                     cairn_dtype_name(t->dtype), "shape", shape_json(t));
}

/* A JSON number, or a string for what JSON numbers cannot carry ("inf",
 * "nan", integers above 2^63-1 written exactly). */
static json_t *number_json(double v)
{
    char text[32];
    if (isfinite(v))
        return json_real(v);
    real_text(v, text, sizeof text);
    return json_string(text);
}

static json_t *max_abs_json(const diff_stats *s)
{
    char text[32];
    if (!s->is_integer)
        return number_json(s->max_abs);
    if (s->max_abs_int <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)s->max_abs_int);
    snprintf(text, sizeof text, "%" PRIu64, s->max_abs_int);
    return json_string(text);
}

static json_t *tensor_diff_json(const tensor_diff *d)
{
    const diff_stats *s = &d->stats;
    switch (d->kind) {
    case ONLY_A: return tensor_json(&d->a->t);
    case ONLY_B: return tensor_json(&d->b->t);
    case DTYPE_SHAPE:
        return json_pack("{s:s%, s:{s:s, s:o}, s:{s:s, s:o}}", "name", d->a->t.name,
                         d->a->t.name_len, "a", "dtype", cairn_dtype_name(d->a->t.dtype), "shape",
                         shape_json(&d->a->t), "b", "dtype", cairn_dtype_name(d->b->t.dtype),
                         "shape", shape_json(&d->b->t));
    case VALUES:
        return json_pack("{s:s%, s:s, s:o, s:I, s:I, s:I, s:o, s:o}", "name", d->a->t.name,
                         d->a->t.name_len, "dtype", cairn_dtype_name(d->a->t.dtype), "shape",
                         shape_json(&d->a->t), "count", (json_int_t)s->count, "differing",
                         (json_int_t)s->differing, "nan_mismatches", (json_int_t)s->nan_mismatch,
                         "max_abs", max_abs_json(s), "max_rel", number_json(s->max_rel));
    }
    return NULL;
}

/* A metadata node as the JSON `cairn meta` prints (tagged floats, bytes,
 * tensor references). */
static json_t *value_json(const cairn_value *v)
{
    char *text = NULL;
    if (cairn_value_to_json(v, 0, &text, NULL) != CAIRN_OK)
        return NULL;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    cairn_free(text);
    return j;
}

static int meta_json_entry(void *ctx, diff_meta_kind kind, const char *path, const cairn_value *a,
                           const cairn_value *b)
{
    static const char *const change[] = {"only_in_a", "only_in_b", "changed"};
    json_t *e = json_pack("{s:s, s:s}", "path", path, "change", change[kind]);
    if (!e)
        return -1;
    if ((a && json_object_set_new(e, "a", value_json(a)) != 0) ||
        (b && json_object_set_new(e, "b", value_json(b)) != 0)) {
        json_decref(e);
        return -1;
    }
    return json_array_append_new(ctx, e) != 0 ? -1 : 0; /* frees e on failure */
}

static json_t *diff_report_json(const diff_opts *o, const tensor_diff *d, size_t n,
                                json_t *meta, uint64_t total)
{
    static const char *const group[] = {"only_in_a", "only_in_b", "dtype_shape", "values"};
    json_t *r = json_pack("{s:s, s:s, s:b, s:I, s:s, s:f, s:f}", "a", o->path[0], "b", o->path[1],
                          "identical", total == 0, "differences", (json_int_t)total, "mode",
                          o->tol.numeric ? "numeric" : "bitwise", "atol", o->tol.atol, "rtol",
                          o->tol.rtol);
    for (int g = 0; r && g < 4; g++) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++)
            if ((int)d[i].kind == g && json_array_append_new(list, tensor_diff_json(&d[i])) != 0)
                list = (json_decref(list), NULL);
        if (!list || json_object_set_new(r, group[g], list) != 0)
            r = (json_decref(r), NULL);
    }
    if (r && json_object_set(r, "metadata", meta) != 0)
        r = (json_decref(r), NULL);
    return r;
}

/* -------------------------------------------------------- diff main */

static int parse_tolerance(const char *opt, const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || v < 0)
        return usage_error("diff: %s wants a finite number >= 0, got '%s'", opt, text);
    *out = v;
    return EXIT_OK;
}

static int parse_diff_args(int argc, char **argv, diff_opts *o)
{
    int npos = 0, rc = EXIT_OK;
    for (int i = 1; i < argc && rc == EXIT_OK; i++) {
        if (!strcmp(argv[i], "--json")) {
            o->as_json = 1;
        } else if (!strcmp(argv[i], "--tensors-only")) {
            o->tensors_only = 1;
        } else if (!strcmp(argv[i], "--atol") || !strcmp(argv[i], "--rtol")) {
            if (i + 1 == argc)
                return usage_error("diff: %s wants a number", argv[i]);
            o->tol.numeric = 1;
            rc = parse_tolerance(argv[i], argv[i + 1],
                                 !strcmp(argv[i], "--atol") ? &o->tol.atol : &o->tol.rtol);
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return usage_error("diff: unknown option '%s'", argv[i]);
        } else if (npos < 2) {
            o->path[npos++] = argv[i];
        } else {
            return usage_error("diff: unexpected argument '%s'", argv[i]);
        }
    }
    if (rc == EXIT_OK && npos != 2)
        return usage_error("%s", "diff: needs A and B");
    return rc;
}

/* Reads both metadata trees (NULL when --tensors-only). */
static int read_trees(cairn_file *const f[2], int skip, cairn_value *tree[2])
{
    cairn_error err = {0};
    for (int s = 0; s < 2 && !skip; s++) {
        cairn_status st = cairn_file_read_metadata(f[s], &tree[s], &err);
        if (st != CAIRN_OK)
            return report(st, &err);
    }
    return EXIT_OK;
}

/* Prints the report; *total receives the number of differences. */
static int print_diff(const diff_opts *o, const tensor_diff *d, size_t n, cairn_value *const tree[2],
                      uint64_t *total)
{
    uint64_t nmeta = 0;
    json_t *meta = o->as_json ? json_array() : NULL;
    int mrc = 0;
    if (!o->as_json)
        for (int g = ONLY_A; g <= VALUES; g++)
            for (size_t i = 0; i < n; i++)
                if ((int)d[i].kind == g)
                    print_tensor_diff(&d[i]);
    if (tree[0] && (!o->as_json || meta))
        mrc = diff_meta(tree[0], tree[1], o->as_json ? meta_json_entry : print_meta_line, meta,
                        &nmeta);
    *total = n + nmeta;
    if (mrc != 0 || (o->as_json && !meta)) {
        json_decref(meta);
        return fprintf(stderr, "%s: diff: out of memory\n", prog), EXIT_IO;
    }
    if (!o->as_json) {
        if (*total)
            printf("%" PRIu64 " difference%s\n", *total, *total == 1 ? "" : "s");
        else
            printf("identical\n");
        return EXIT_OK;
    }
    json_t *r = diff_report_json(o, d, n, meta, *total);
    json_decref(meta);
    return r ? print_json(r) : (fprintf(stderr, "%s: diff: out of memory\n", prog), EXIT_IO);
}

static int cmd_diff(int argc, char **argv)
{
    if (wants_help(argc, argv))
        return fputs(diff_help, stdout), EXIT_OK;
    diff_opts o = {{NULL, NULL}, {0, 0, 0}, 0, 0};
    int rc = parse_diff_args(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc;
    cairn_file *f[2] = {NULL, NULL};
    indexed_info *infos[2] = {NULL, NULL};
    uint64_t count[2] = {0, 0};
    cairn_value *tree[2] = {NULL, NULL};
    tensor_diff *d = NULL;
    size_t n = 0;
    uint64_t total = 0;
    for (int s = 0; s < 2 && rc == EXIT_OK; s++)
        rc = open_input(o.path[s], 0, &f[s]);
    for (int s = 0; s < 2 && rc == EXIT_OK; s++)
        rc = sorted_infos(f[s], &infos[s], &count[s]);
    if (rc == EXIT_OK)
        rc = read_trees(f, o.tensors_only, tree);
    if (rc == EXIT_OK && !(d = malloc((size_t)(count[0] + count[1] + 1) * sizeof *d)))
        rc = (fprintf(stderr, "%s: diff: out of memory\n", prog), EXIT_IO);
    if (rc == EXIT_OK)
        rc = diff_tensors(f, infos[0], count[0], infos[1], count[1], &o.tol, d, &n);
    if (rc == EXIT_OK)
        rc = print_diff(&o, d, n, tree, &total);
    free(d);
    for (int s = 0; s < 2; s++) {
        cairn_value_free(tree[s]);
        free(infos[s]);
        cairn_file_close(f[s]);
    }
    return rc != EXIT_OK ? rc : total ? EXIT_BAD_INPUT : EXIT_OK;
}

/* ----------------------------------------------------------------- main */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"pack", cmd_pack}, {"unpack", cmd_unpack}, {"ls", cmd_ls},     {"info", cmd_info},
    {"meta", cmd_meta}, {"verify", cmd_verify}, {"cat", cmd_cat}, {"show", cmd_show},
    {"diff", cmd_diff},
};

int main(int argc, char **argv)
{
    if (argc < 2)
        return fputs(main_help, stderr), EXIT_USAGE;
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return fputs(main_help, stdout), EXIT_OK;
    if (!strcmp(argv[1], "--version"))
        return printf("cairn %s (format %d.%d)\n", cairn_version(), CAIRN_FORMAT_MAJOR,
                      CAIRN_FORMAT_MINOR), EXIT_OK;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", argv[1]);
}
