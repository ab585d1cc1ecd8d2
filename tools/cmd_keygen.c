/* cmd_keygen.c -- `cairn keygen`: an ed25519 key pair for cairn sign. */
#include "cli.h"

#include <stdio.h>

static const char keygen_help[] =
    "usage: cairn keygen SECRET_KEY_FILE PUBLIC_KEY_FILE\n"
    "\n"
    "Creates an ed25519 key pair. The secret key file is created with mode 0600;\n"
    "neither file may exist already (an existing key is never overwritten:\n"
    "remove it first if that is what you want). Give the public key file to\n"
    "whoever verifies; keep the secret key file secret.\n";

static int run(int argc, char **argv)
{
    const char *pos[2];
    int rc = cli_positional_args("keygen", argc, argv, NULL, pos, 2,
                                 "SECRET_KEY_FILE and PUBLIC_KEY_FILE");
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_status st = cairn_keygen(pos[0], pos[1], &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    uint8_t pk[CAIRN_PUBLIC_KEY_BYTES], id[CAIRN_KEY_ID_BYTES];
    st = cairn_key_load_public(pos[1], pk, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    cairn_key_id(pk, id);
    printf("secret key: %s (mode 0600)\npublic key: %s\nkey id:     ", pos[0], pos[1]);
    cli_print_key_id(id);
    putchar('\n');
    return EXIT_OK;
}

const cli_command cli_cmd_keygen = {
    "keygen",
    "  keygen SECRET PUBLIC   create an ed25519 key pair (the secret file mode 0600)\n",
    keygen_help,
    run,
};
