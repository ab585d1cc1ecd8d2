/* cmd_verify.c -- `cairn verify`: every byte of a file, and with --pubkey its signature. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char verify_help[] =
    "usage: cairn verify FILE [--pubkey PUBLIC_KEY_FILE] [--inert]\n"
    "       cairn verify DIR --pubkey PUBLIC_KEY_FILE\n"
    "\n"
    "Checks every byte: header, trailer, index, each tensor's checksum (each\n"
    "chunk of a compressed tensor decoded), payload overlaps and the metadata\n"
    "encoding. Exit 0 when sound; 1 with a message naming the first bad tensor\n"
    "or structure.\n"
    "With --pubkey, first checks the file's ed25519 signature (cairn sign): the\n"
    "message says whether the file is not signed, signed by another key, or\n"
    "changed since signing (and where). For a directory signed with 'cairn sign\n"
    "DIR', checks its manifest and names any missing, extra or changed file.\n"
    "--inert reads a pickle or joblib file as inert data (nothing in it is run)\n"
    "(a pickle carries no checksums: its structure and sizes are checked).\n";

/* The signature of a file or a signed directory, then every byte. */
static int verify_signed(const char *path, const char *pubkey_path)
{
    uint8_t pk[CAIRN_PUBLIC_KEY_BYTES], id[CAIRN_KEY_ID_BYTES];
    cairn_error err = {0};
    cairn_status st = cairn_key_load_public(pubkey_path, pk, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    cairn_key_id(pk, id);
    if (cli_is_dir(path)) {
        st = cairn_verify_dir(path, pk, &err);
        if (st != CAIRN_OK)
            return cli_report(st, &err);
        printf("%s: ok (every file matches the manifest signed by key id ", path);
        cli_print_key_id(id);
        puts(")");
        return EXIT_OK;
    }
    cairn_open_opts o = {.struct_size = sizeof o, .public_key = pk};
    cairn_file *f = NULL;
    int rc = cli_open_opts_env(&o);
    if (rc != EXIT_OK)
        return rc;
    st = cairn_file_open(path, &o, &f, &err);
    if (st == CAIRN_OK)
        st = cairn_file_verify(f, &err);
    uint64_t n = cairn_file_count(f);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s: ok (%" PRIu64 " tensors; signature by key id ", path, n);
    cli_print_key_id(id);
    puts(")");
    return EXIT_OK;
}

static int run(int argc, char **argv)
{
    const char *path = NULL, *pubkey = NULL;
    unsigned flags = 0;
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        int rc = EXIT_OK;
        if (!strcmp(argv[i], "--pubkey") && i + 1 < argc)
            pubkey = argv[++i];
        else
            rc = cli_other_arg("verify", argc, argv, &i, &flags, &path, &npos, 1);
        if (rc != EXIT_OK)
            return rc;
    }
    if (!path)
        return cli_usage_error("%s", "verify: needs FILE");
    if (pubkey)
        return verify_signed(path, pubkey);
    cairn_file *f;
    int rc = cli_open_input(path, flags, &f);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_status st = cairn_file_verify(f, &err);
    uint64_t n = cairn_file_count(f);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s: ok (%" PRIu64 " tensors)\n", path, n);
    return EXIT_OK;
}

const cli_command cli_cmd_verify = {
    "verify",
    "  verify FILE|DIR [--pubkey PUB]  check every byte (checksums, structure), and with\n"
    "                         --pubkey the ed25519 signature of a file or a signed directory\n",
    verify_help,
    run,
};
