/* cmd_unpack.c -- `cairn unpack`: every tensor of a file as DIR/NAME.npy. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

static const char unpack_help[] =
    "usage: cairn unpack IN DIR [--inert]\n"
    "\n"
    "--inert reads a pickle or joblib file as inert data (nothing in it is run).\n"

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

static int run(int argc, char **argv)
{
    unsigned flags = 0;
    const char *pos[2];
    int rc = cli_positional_args("unpack", argc, argv, &flags, pos, 2, "IN and DIR");
    if (rc != EXIT_OK)
        return rc;
    if (mkdir(pos[1], 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create directory: %s\n", cli_prog, pos[1], strerror(errno));
        return EXIT_IO;
    }
    cairn_file *in;
    rc = cli_open_input(pos[0], flags, &in);
    for (uint64_t i = 0; rc == EXIT_OK && i < cairn_file_count(in); i++)
        rc = unpack_one(in, i, pos[1]);
    cairn_file_close(in);
    return rc;
}

const cli_command cli_cmd_unpack = {
    "unpack",
    "  unpack IN DIR          write every tensor of IN as DIR/NAME.npy\n",
    unpack_help,
    run,
};
