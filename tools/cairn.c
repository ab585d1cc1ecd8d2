/* cairn.c -- the command-line tool: a thin client of libcairn's public API.
 * Exit codes: 0 ok, 1 bad or corrupt input (or, for diff, files that differ),
 * 2 usage error, 3 I/O error. This file holds main and the commands on single
 * archives; diff and ckpt have files of their own. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static const char main_help[] =
    "usage: cairn COMMAND [ARGS...]\n"
    "\n"
    "Save, inspect and convert machine-learning tensor archives (.cairn, .npy).\n"
    "\n"
    "commands:\n"
    "  pack OUT.cairn NAME=FILE.npy [NAME=FILE.npy ...] [--compress CODEC[:LEVEL]] [--shuffle]\n"
    "                         pack .npy files into one archive, optionally compressed\n"
    "  unpack IN DIR          write every tensor of IN as DIR/NAME.npy\n"
    "  ls FILE [--json]       list tensors: name, dtype, shape, stored bytes, codec, raw bytes, ratio\n"
    "  info FILE [--json]     format, version, tensor count, raw and stored bytes, signature\n"
    "  meta FILE              print the metadata tree as JSON\n"
    "  verify FILE|DIR [--pubkey PUB]  check every byte (checksums, structure), and with\n"
    "                         --pubkey the ed25519 signature of a file or a signed directory\n"
    "  keygen SECRET PUBLIC   create an ed25519 key pair (the secret file mode 0600)\n"
    "  sign FILE|DIR --key SECRET      sign an archive, or a directory through a manifest\n"
    "  cat FILE NAME          write one tensor's bytes (little-endian, C order) to stdout\n"
    "  show FILE NAME         dtype, shape, min/max/mean, NaN/Inf counts, first values\n"
    "  diff A B [--json]      compare tensors (names, dtypes, shapes, values) and metadata;\n"
    "                         exit 0 when identical, 1 when different\n"
    "  ckpt ls|best|verify|prune DIR   inspect and prune a checkpoint directory\n"
    "  convert IN OUT [--to FORMAT] [--compress CODEC[:LEVEL]] [--shuffle]\n"
    "                         between cairn, npy, safetensors, npz, gguf, torch,\n"
    "                         mxnet, hdf5\n"
    "\n"
    "Run 'cairn COMMAND --help' for a command's options.\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  bad or corrupt input (including a failed verify or a missing tensor);\n"
    "     for diff: the files differ\n"
    "  2  usage error\n"
    "  3  I/O error (cannot open, read, write, or out of memory)\n";

/* --------------------------------------------------------------- pack */

static const char pack_help[] =
    "usage: cairn pack OUT.cairn NAME=FILE.npy [NAME=FILE.npy ...] [--align N] [--no-sync]\n"
    "                  [--compress CODEC[:LEVEL]] [--shuffle] [--chunk-size N] [--threads N]\n"
    "\n"
    "Packs .npy files into one archive, each under NAME. The archive appears\n"
    "atomically: nothing is at OUT until every tensor is written and synced.\n"
    "  --align N        payload alignment in bytes (power of two, 8..65536; default 64)\n"
    "  --no-sync        skip fsync (faster; the rename is still atomic)\n"
    "  --compress C[:L] compress every tensor: zstd[:1-19] (default 3), lz4[:1-12]\n"
    "                   (1 fast, 2-12 HC), lz4hc, zlib[:1-9], bz2[:1-9], none. Tensors\n"
    "                   that do not get smaller are stored raw\n"
    "  --shuffle        byte-shuffle multi-byte elements before compressing (helps\n"
    "                   float weights: sign/exponent bytes are grouped)\n"
    "  --chunk-size N   raw bytes per independently compressed chunk (power of two,\n"
    "                   64K..16M; default 1M); reads decode only the chunks they need\n"
    "  --threads N      compression threads (default: one per CPU)\n";

static int add_npy(cairn_writer *w, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return cli_usage_error("expected NAME=FILE.npy, got '%s'", spec);
    char *name = strndup(spec, (size_t)(eq - spec));
    cairn_file *in = NULL;
    int rc = name ? cli_open_input(eq + 1, 0, &in) : EXIT_IO;
    cairn_error err = {0};
    cairn_tensor_info t;
    cairn_status st = CAIRN_OK;
    void *buf = NULL;
    if (rc == EXIT_OK && cairn_file_count(in) != 1) {
        fprintf(stderr, "%s: %s: holds %" PRIu64 " tensors; pack takes single-tensor files\n",
                cli_prog, eq + 1, cairn_file_count(in));
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
                fprintf(stderr, "%s: %s: out of memory\n", cli_prog, eq + 1);
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
        rc = cli_report(st, &err);
    free(buf);
    free(name);
    cairn_file_close(in);
    return rc;
}

static int cmd_pack(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(pack_help, stdout), EXIT_OK;
    cairn_write_opts opts = {.struct_size = sizeof opts, .format = CAIRN_FORMAT_NATIVE};
    const char *out = NULL;
    int first_spec = 0, nspecs = 0, rc;
    char **specs = calloc((size_t)argc, sizeof *specs);
    if (!specs)
        return EXIT_IO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--align") && i + 1 < argc) {
            char *end;
            opts.alignment = strtoull(argv[++i], &end, 10);
            if (*end || !opts.alignment) {
                free(specs);
                return cli_usage_error("--align wants a number, got '%s'", argv[i]);
            }
        } else if (!strcmp(argv[i], "--no-sync")) {
            opts.flags |= CAIRN_WRITE_NO_SYNC;
        } else if ((rc = cli_compress_option(argc, argv, &i, &opts)) != 0) {
            if (rc < 0) {
                free(specs);
                return -1 - rc;
            }
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            free(specs);
            return cli_usage_error("pack: unknown option '%s'", argv[i]);
        } else if (!out) {
            out = argv[i];
        } else {
            specs[nspecs++] = argv[i];
        }
    }
    (void)first_spec;
    if (!out || nspecs == 0) {
        free(specs);
        return cli_usage_error("%s", "pack: needs OUT and at least one NAME=FILE.npy");
    }
    cairn_writer *w = NULL;
    cairn_error err = {0};
    cairn_status st = cairn_writer_open_path(out, &opts, &w, &err);
    if (st != CAIRN_OK) {
        free(specs);
        return cli_report(st, &err);
    }
    rc = EXIT_OK;
    for (int i = 0; i < nspecs && rc == EXIT_OK; i++)
        rc = add_npy(w, specs[i]);
    free(specs);
    if (rc != EXIT_OK) {
        cairn_writer_abort(w);
        return rc;
    }
    st = cairn_writer_commit(w, &err);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
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
        return cli_report(st, &err);
    cairn_dtype out_dtype = t.dtype;
    if (t.dtype == CAIRN_BF16 || t.dtype == CAIRN_F8_E4M3 || t.dtype == CAIRN_F8_E5M2) {
        out_dtype = t.dtype == CAIRN_BF16 ? CAIRN_U16 : CAIRN_U8;
        char shown[CLI_SAFE_MAX];
        fprintf(stderr, "%s: warning: tensor '%s' is %s, which NumPy cannot describe; written as "
                "%s bit patterns\n", cli_prog, cli_safe(t.name, t.name_len, shown, sizeof shown),
                cairn_dtype_name(t.dtype), cairn_dtype_name(out_dtype));
    }
    char fname[512], path[4096 + 600];
    safe_file_name(t.name, fname, sizeof fname);
    snprintf(path, sizeof path, "%s/%s.npy", dir, fname);
    void *buf = malloc(t.raw_size ? (size_t)t.raw_size : 1);
    if (!buf) {
        char shown[CLI_SAFE_MAX];
        fprintf(stderr, "%s: tensor '%s': out of memory\n", cli_prog,
                cli_safe(t.name, t.name_len, shown, sizeof shown));
        return EXIT_IO;
    }
    /* Same-width reinterpretation for BF16/FP8: read the stored bits as is. */
    st = cairn_tensor_read(in, i, t.dtype, buf, (size_t)t.raw_size, CAIRN_READ_VERIFY, &err);
    cairn_writer *w = NULL;
    cairn_write_opts opts = {.struct_size = sizeof opts, .format = CAIRN_FORMAT_NPY};
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
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

static int cmd_unpack(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(unpack_help, stdout), EXIT_OK;
    if (argc != 3)
        return cli_usage_error("%s", "unpack: needs IN and DIR");
    if (mkdir(argv[2], 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create directory: %s\n", cli_prog, argv[2], strerror(errno));
        return EXIT_IO;
    }
    cairn_file *in;
    int rc = cli_open_input(argv[1], 0, &in);
    for (uint64_t i = 0; rc == EXIT_OK && i < cairn_file_count(in); i++)
        rc = unpack_one(in, i, argv[2]);
    cairn_file_close(in);
    return rc;
}

/* ------------------------------------------------------------ ls, info */

/* Parses "FILE [--json] [--inert]" and opens FILE (--inert: pickles as data). */
static int open_file_json_args(const char *cmd, int argc, char **argv, cairn_file **f,
                               int *as_json)
{
    const char *path = NULL;
    unsigned flags = 0;
    *as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            *as_json = 1;
        else if (!strcmp(argv[i], "--inert"))
            flags |= CAIRN_OPEN_INERT;
        else if (!path)
            path = argv[i];
        else
            return cli_usage_error("%s: unexpected argument '%s'", cmd, argv[i]);
    }
    if (!path)
        return cli_usage_error("%s: needs FILE", cmd);
    return cli_open_input(path, flags, f);
}

static const char ls_help[] =
    "usage: cairn ls FILE [--json] [--inert]\n"
    "\n"
    "--inert reads a pickle or joblib file as inert data (nothing in it is run).\n"
    "Lists every tensor: name, dtype, shape, stored bytes, codec (CODEC:LEVEL and\n"
    "+shuffle for compressed tensors, else none), raw bytes and the ratio raw /\n"
    "stored.\n";

static int cmd_ls(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(ls_help, stdout), EXIT_OK;
    int as_json;
    cairn_file *f;
    int rc = open_file_json_args("ls", argc, argv, &f, &as_json);
    if (rc != EXIT_OK)
        return rc;
    json_t *list = as_json ? json_array() : NULL;
    cairn_error err = {0};
    cli_warn_not_carried(f);
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        cairn_status st = cairn_tensor_info_at(f, i, &t, &err);
        if (st != CAIRN_OK) {
            json_decref(list);
            cairn_file_close(f);
            return cli_report(st, &err);
        }
        if (as_json) {
            json_t *o = json_pack("{s:s%, s:s, s:o, s:I, s:I, s:s, s:I}", "name", t.name,
                                  t.name_len, "dtype", cairn_dtype_name(t.dtype), "shape",
                                  cli_shape_json(&t), "bytes", (json_int_t)t.raw_size,
                                  "stored_bytes", (json_int_t)t.stored_size, "codec",
                                  cli_codec_name(t.codec), "offset", (json_int_t)t.offset);
            json_object_set_new(o, "raw_bytes", json_integer((json_int_t)t.raw_size));
            json_object_set_new(o, "ratio", json_real(cli_ratio(t.raw_size, t.stored_size)));
            if (t.codec != CAIRN_CODEC_NONE) {
                json_object_set_new(o, "level", json_integer(t.level));
                json_object_set_new(o, "filter", json_string(t.filter == CAIRN_FILTER_SHUFFLE
                                                                 ? "shuffle" : "none"));
                json_object_set_new(o, "chunk_size", json_integer((json_int_t)t.chunk_size));
                json_object_set_new(o, "chunks", json_integer((json_int_t)t.chunk_count));
            }
            json_array_append_new(list, o);
        } else {
            char shape[256], codec[48], shown[CLI_SAFE_MAX];
            cli_shape_text(&t, shape, sizeof shape);
            cli_codec_text(&t, codec, sizeof codec);
            printf("%-40s %-8s %-24s %14" PRIu64 "  %-16s %14" PRIu64 "  %6.2fx\n",
                   cli_safe(t.name, t.name_len, shown, sizeof shown),
                   cairn_dtype_name(t.dtype), shape, t.stored_size, codec, t.raw_size,
                   cli_ratio(t.raw_size, t.stored_size));
        }
    }
    cairn_file_close(f);
    return as_json ? cli_print_json(list) : EXIT_OK;
}

static const char info_help[] =
    "usage: cairn info FILE [--json]\n"
    "\n"
    "Prints the format, its version, the tensor count, total stored (payload)\n"
    "and raw bytes with their ratio, how many tensors are compressed, the\n"
    "largest tensor alignment, and whether the file is signed (by which key id;\n"
    "'cairn verify FILE --pubkey PUB' checks the signature).\n";

static int cmd_info(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(info_help, stdout), EXIT_OK;
    int as_json;
    cairn_file *f;
    int rc = open_file_json_args("info", argc, argv, &f, &as_json);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_file_info fi;
    cairn_status st = cairn_file_get_info(f, &fi, &err);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    char version[32], key_id[2 * CAIRN_KEY_ID_BYTES + 1] = "";
    snprintf(version, sizeof version, "%u.%u", fi.version_major, fi.version_minor);
    for (int k = 0; fi.is_signed && k < CAIRN_KEY_ID_BYTES; k++)
        snprintf(key_id + 2 * k, 3, "%02x", fi.key_id[k]);
    /* Formats without compression report no raw total: it is the stored one. */
    uint64_t raw = fi.raw_bytes ? fi.raw_bytes : fi.payload_bytes;
    double ratio = cli_ratio(raw, fi.payload_bytes);
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "format",
                              cairn_format_name(fi.format), "version", version, "tensors",
                              (json_int_t)fi.tensor_count, "total_bytes",
                              (json_int_t)fi.payload_bytes, "file_bytes", (json_int_t)fi.file_size,
                              "alignment", (json_int_t)fi.alignment, "metadata", fi.has_metadata);
        json_object_set_new(o, "stored_bytes", json_integer((json_int_t)fi.payload_bytes));
        json_object_set_new(o, "raw_bytes", json_integer((json_int_t)raw));
        json_object_set_new(o, "ratio", json_real(ratio));
        json_object_set_new(o, "compressed_tensors", json_integer((json_int_t)fi.compressed_tensors));
        json_object_set_new(o, "signed", json_boolean(fi.is_signed));
        if (fi.is_signed)
            json_object_set_new(o, "key_id", json_string(key_id));
        return cli_print_json(o);
    }
    printf("format:      %s\nversion:     %s\ntensors:     %" PRIu64 "\ntotal bytes: %" PRIu64
           "\nfile bytes:  %" PRIu64 "\nalignment:   %" PRIu64 "\nmetadata:    %s\n",
           cairn_format_name(fi.format), version, fi.tensor_count, fi.payload_bytes, fi.file_size,
           fi.alignment, fi.has_metadata ? "yes" : "no");
    printf("raw bytes:   %" PRIu64 "\nratio:       %.2fx (raw / total)\ncompressed:  %" PRIu64
           " of %" PRIu64 " tensors\nsigned:      %s%s%s\n", raw, ratio, fi.compressed_tensors,
           fi.tensor_count, fi.is_signed ? "yes, key id " : "no", key_id,
           fi.is_signed ? " (not checked here: use verify --pubkey)" : "");
    return EXIT_OK;
}

/* ------------------------------------------------------ meta, verify */

static const char meta_help[] =
    "usage: cairn meta FILE [--inert]\n"
    "\n"
    "--inert reads a pickle or joblib file as inert data: objects become\n"
    "{\"$class\": \"module.name\", \"args\": [...], \"state\": ...}; nothing is run.\n"
    "Prints the metadata tree as JSON. Values JSON cannot hold are tagged:\n"
    "{\"$float\": \"nan\"|\"inf\"|\"-inf\"|\"-0\"}, {\"$bytes\": BASE64}, {\"$tensor\": NAME}.\n";

static int cmd_meta(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(meta_help, stdout), EXIT_OK;
    unsigned flags = argc == 3 && !strcmp(argv[2], "--inert") ? CAIRN_OPEN_INERT : 0;
    if (argc != 2 && !flags)
        return cli_usage_error("%s", "meta: needs FILE [--inert]");
    cairn_file *f;
    int rc = cli_open_input(argv[1], flags, &f);
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
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

static const char verify_help[] =
    "usage: cairn verify FILE [--pubkey PUBLIC_KEY_FILE]\n"
    "       cairn verify DIR --pubkey PUBLIC_KEY_FILE\n"
    "\n"
    "Checks every byte: header, trailer, index, each tensor's checksum (each\n"
    "chunk of a compressed tensor decoded), payload overlaps and the metadata\n"
    "encoding. Exit 0 when sound; 1 with a message naming the first bad tensor\n"
    "or structure.\n"
    "With --pubkey, first checks the file's ed25519 signature (cairn sign): the\n"
    "message says whether the file is not signed, signed by another key, or\n"
    "changed since signing (and where). For a directory signed with 'cairn sign\n"
    "DIR', checks its manifest and names any missing, extra or changed file.\n";

static int cmd_verify(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(verify_help, stdout), EXIT_OK;
    const char *path = NULL, *pubkey = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pubkey") && i + 1 < argc)
            pubkey = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return cli_usage_error("verify: unknown option '%s'", argv[i]);
        else if (!path)
            path = argv[i];
        else
            return cli_usage_error("verify: unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return cli_usage_error("%s", "verify: needs FILE");
    if (pubkey)
        return cmd_verify_signed(path, pubkey);
    argv[1] = (char *)path;
    cairn_file *f;
    int rc = cli_open_input(argv[1], 0, &f);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_status st = cairn_file_verify(f, &err);
    uint64_t n = cairn_file_count(f);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s: ok (%" PRIu64 " tensors)\n", argv[1], n);
    return EXIT_OK;
}

/* ---------------------------------------------------------- cat, show */

static const char cat_help[] =
    "usage: cairn cat FILE NAME [--inert]\n"
    "\n"
    "Writes tensor NAME's elements to stdout: little-endian, C order, in its own\n"
    "dtype. Checksums are verified on the way. --inert reads a pickle or joblib\n"
    "file as inert data (NAME is a path such as state.coef_; nothing is run).\n";

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
 * possible (*owned is then NULL). On failure *owned is NULL (freed here). */
static int load_tensor(const char *path, const char *name, unsigned flags, cairn_file **f,
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
    free(*owned);
    *owned = NULL;
    return cli_report(st, &err);
}

static int cmd_cat(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(cat_help, stdout), EXIT_OK;
    unsigned flags = argc == 4 && !strcmp(argv[3], "--inert") ? CAIRN_OPEN_INERT : 0;
    if (argc != 3 && !flags)
        return cli_usage_error("%s", "cat: needs FILE and NAME [--inert]");
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    int rc = load_tensor(argv[1], argv[2], flags, &f, &t, &data, &owned);
    if (rc == EXIT_OK && write_all(STDOUT_FILENO, data, (size_t)t.raw_size) != 0) {
        fprintf(stderr, "%s: writing to stdout: %s\n", cli_prog, strerror(errno));
        rc = EXIT_IO;
    }
    free(owned);
    cairn_file_close(f);
    return rc;
}

static const char show_help[] =
    "usage: cairn show FILE NAME [--count N] [--inert]\n"
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
    if (cli_wants_help(argc, argv))
        return fputs(show_help, stdout), EXIT_OK;
    long shown = 10;
    const char *pos[2] = {0};
    int npos = 0;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--inert")) {
            flags |= CAIRN_OPEN_INERT;
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            char *end;
            shown = strtol(argv[++i], &end, 10);
            if (*end || shown < 0)
                return cli_usage_error("--count wants a non-negative number, got '%s'", argv[i]);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return cli_usage_error("show: unexpected argument '%s'", argv[i]);
        }
    }
    if (npos != 2)
        return cli_usage_error("%s", "show: needs FILE and NAME");
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    int rc = load_tensor(pos[0], pos[1], flags, &f, &t, &data, &owned);
    if (rc != EXIT_OK) {
        cairn_file_close(f);
        return rc;
    }
    char shape[256], safe_name[CLI_SAFE_MAX];
    cli_shape_text(&t, shape, sizeof shape);
    printf("name:   %s\ndtype:  %s\nshape:  %s\ncount:  %" PRIu64 "\n",
           cli_safe(t.name, t.name_len, safe_name, sizeof safe_name), cairn_dtype_name(t.dtype), shape,
           t.count);
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
            rc = cli_report(st, &err);
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

/* ----------------------------------------------------------------- main */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"pack", cmd_pack}, {"unpack", cmd_unpack}, {"ls", cmd_ls},     {"info", cmd_info},
    {"meta", cmd_meta}, {"verify", cmd_verify}, {"cat", cmd_cat}, {"show", cmd_show},
    {"diff", cmd_diff},
    {"ckpt", cmd_ckpt},
    {"convert", cmd_convert},
    {"keygen", cmd_keygen},
    {"sign", cmd_sign},
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
    return cli_usage_error("unknown command '%s'", argv[1]);
}
