/* cmd_pack.c -- `cairn pack`: .npy files into one native archive. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char pack_help[] =
    "usage: cairn pack OUT.cairn NAME=FILE.npy [NAME=FILE.npy ...] [--align N] [--no-sync]\n"
    "                  [--compress CODEC[:LEVEL]] [--shuffle] [--chunk-size N] [--threads N]\n"
    "                  [--inert]\n"
    "\n"
    "Packs .npy files into one archive, each under NAME. The archive appears\n"
    "atomically: nothing is at OUT until every tensor is written and synced.\n"
    "Each FILE may be of any format holding one tensor (--inert: a pickle or\n"
    "joblib file read as inert data).\n"
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

static int add_npy(cairn_writer *w, const char *spec, unsigned open_flags)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return cli_usage_error("expected NAME=FILE.npy, got '%s'", spec);
    char *name = strndup(spec, (size_t)(eq - spec));
    cairn_file *in = NULL;
    int rc = name ? cli_open_input(eq + 1, open_flags, &in) : EXIT_IO;
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

static int run(int argc, char **argv)
{
    cairn_write_opts opts = {.struct_size = sizeof opts, .format = CAIRN_FORMAT_NATIVE};
    unsigned open_flags = 0;
    int npos = 0, rc = EXIT_OK;
    /* pos[0] is OUT, the rest NAME=FILE specs. */
    const char **pos = calloc((size_t)argc, sizeof *pos);
    if (!pos)
        return EXIT_IO;
    for (int i = 1; i < argc && rc == EXIT_OK; i++) {
        int opt;
        if (!strcmp(argv[i], "--align") && i + 1 < argc) {
            char *end;
            opts.alignment = strtoull(argv[++i], &end, 10);
            if (*end || !opts.alignment)
                rc = cli_usage_error("--align wants a number, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--no-sync")) {
            opts.flags |= CAIRN_WRITE_NO_SYNC;
        } else if ((opt = cli_compress_option(argc, argv, &i, &opts)) != 0) {
            rc = opt < 0 ? -1 - opt : EXIT_OK;
        } else {
            rc = cli_other_arg("pack", argc, argv, &i, &open_flags, pos, &npos, argc);
        }
    }
    if (rc == EXIT_OK && npos < 2)
        rc = cli_usage_error("%s", "pack: needs OUT and at least one NAME=FILE.npy");
    if (rc != EXIT_OK) {
        free(pos);
        return rc;
    }
    cairn_writer *w = NULL;
    cairn_error err = {0};
    cairn_status st = cairn_writer_open_path(pos[0], &opts, &w, &err);
    if (st != CAIRN_OK) {
        free(pos);
        return cli_report(st, &err);
    }
    for (int i = 1; i < npos && rc == EXIT_OK; i++)
        rc = add_npy(w, pos[i], open_flags);
    free(pos);
    if (rc != EXIT_OK) {
        cairn_writer_abort(w);
        return rc;
    }
    st = cairn_writer_commit(w, &err);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

const cli_command cli_cmd_pack = {
    "pack",
    "  pack OUT.cairn NAME=FILE.npy [NAME=FILE.npy ...] [--compress CODEC[:LEVEL]] [--shuffle]\n"
    "                         pack .npy files into one archive, optionally compressed\n",
    pack_help,
    run,
};
