/* cmd_sign.c -- `cairn sign`: an ed25519 signature over a native file, or a
 * signed manifest for a directory (docs/FORMAT.md §8). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char sign_help[] =
    "usage: cairn sign FILE|DIR --key SECRET_KEY_FILE [--no-sync]\n"
    "\n"
    "FILE (a .cairn archive): checks every byte, then rewrites the file\n"
    "atomically (temporary file, fsync, rename) with an ed25519 signature over\n"
    "a BLAKE2b digest of all its bytes; tensors, index and metadata keep their\n"
    "bytes. A previous signature is replaced.\n"
    "DIR (e.g. a checkpoint directory): writes DIR/MANIFEST.cairn-sig, listing\n"
    "every file with its size and SHA-256, signed.\n"
    "Check with 'cairn verify FILE|DIR --pubkey PUBLIC_KEY_FILE'.\n";

static int run(int argc, char **argv)
{
    const char *path = NULL, *key = NULL;
    unsigned flags = 0;
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        int rc = EXIT_OK;
        if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else if (!strcmp(argv[i], "--no-sync"))
            flags |= CAIRN_WRITE_NO_SYNC;
        else
            rc = cli_other_arg("sign", argc, argv, &i, NULL, &path, &npos, 1);
        if (rc != EXIT_OK)
            return rc;
    }
    if (!path || !key)
        return cli_usage_error("%s", "sign: needs FILE or DIR and --key SECRET_KEY_FILE");
    uint8_t sk[CAIRN_SECRET_KEY_BYTES], id[CAIRN_KEY_ID_BYTES];
    cairn_error err = {0};
    cairn_status st = cairn_key_load_secret(key, sk, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    int dir = cli_is_dir(path);
    st = dir ? cairn_sign_dir(path, sk, flags, &err) : cairn_sign_file(path, sk, flags, &err);
    cairn_key_id(sk + 32, id);
    memset(sk, 0, sizeof sk);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s: signed%s with key id ", path, dir ? " (manifest MANIFEST.cairn-sig)" : "");
    cli_print_key_id(id);
    putchar('\n');
    return EXIT_OK;
}

const cli_command cli_cmd_sign = {
    "sign",
    "  sign FILE|DIR --key SECRET      sign an archive, or a directory through a manifest\n",
    sign_help,
    run,
};
