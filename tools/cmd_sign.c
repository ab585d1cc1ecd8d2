/* cmd_sign.c -- `cairn keygen`, `cairn sign` and `cairn verify --pubkey`:
 * ed25519 signatures over native files and checkpoint directories
 * (docs/FORMAT.md §8). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char keygen_help[] =
    "usage: cairn keygen SECRET_KEY_FILE PUBLIC_KEY_FILE\n"
    "\n"
    "Creates an ed25519 key pair. The secret key file is created with mode 0600;\n"
    "neither file may exist already (an existing key is never overwritten:\n"
    "remove it first if that is what you want). Give the public key file to\n"
    "whoever verifies; keep the secret key file secret.\n";

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

static void print_key_id(const uint8_t *id)
{
    for (int i = 0; i < CAIRN_KEY_ID_BYTES; i++)
        printf("%02x", id[i]);
}

int cmd_keygen(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(keygen_help, stdout), EXIT_OK;
    if (argc != 3)
        return cli_usage_error("%s", "keygen: needs SECRET_KEY_FILE and PUBLIC_KEY_FILE");
    cairn_error err = {0};
    cairn_status st = cairn_keygen(argv[1], argv[2], &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    uint8_t pk[CAIRN_PUBLIC_KEY_BYTES], id[CAIRN_KEY_ID_BYTES];
    st = cairn_key_load_public(argv[2], pk, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    cairn_key_id(pk, id);
    printf("secret key: %s (mode 0600)\npublic key: %s\nkey id:     ", argv[1], argv[2]);
    print_key_id(id);
    putchar('\n');
    return EXIT_OK;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int cmd_sign(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(sign_help, stdout), EXIT_OK;
    const char *path = NULL, *key = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--key") && i + 1 < argc)
            key = argv[++i];
        else if (!strcmp(argv[i], "--no-sync"))
            flags |= CAIRN_WRITE_NO_SYNC;
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            return cli_usage_error("sign: unknown option '%s'", argv[i]);
        else if (!path)
            path = argv[i];
        else
            return cli_usage_error("sign: unexpected argument '%s'", argv[i]);
    }
    if (!path || !key)
        return cli_usage_error("%s", "sign: needs FILE or DIR and --key SECRET_KEY_FILE");
    uint8_t sk[CAIRN_SECRET_KEY_BYTES], id[CAIRN_KEY_ID_BYTES];
    cairn_error err = {0};
    cairn_status st = cairn_key_load_secret(key, sk, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    int dir = is_dir(path);
    st = dir ? cairn_sign_dir(path, sk, flags, &err) : cairn_sign_file(path, sk, flags, &err);
    cairn_key_id(sk + 32, id);
    memset(sk, 0, sizeof sk);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s: signed%s with key id ", path, dir ? " (manifest MANIFEST.cairn-sig)" : "");
    print_key_id(id);
    putchar('\n');
    return EXIT_OK;
}

int cmd_verify_signed(const char *path, const char *pubkey_path)
{
    uint8_t pk[CAIRN_PUBLIC_KEY_BYTES], id[CAIRN_KEY_ID_BYTES];
    cairn_error err = {0};
    cairn_status st = cairn_key_load_public(pubkey_path, pk, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    cairn_key_id(pk, id);
    if (is_dir(path)) {
        st = cairn_verify_dir(path, pk, &err);
        if (st != CAIRN_OK)
            return cli_report(st, &err);
        printf("%s: ok (every file matches the manifest signed by key id ", path);
        print_key_id(id);
        puts(")");
        return EXIT_OK;
    }
    cairn_open_opts o = {.struct_size = sizeof o, .public_key = pk};
    cairn_file *f = NULL;
    st = cairn_file_open(path, &o, &f, &err);
    if (st == CAIRN_OK)
        st = cairn_file_verify(f, &err);
    uint64_t n = cairn_file_count(f);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s: ok (%" PRIu64 " tensors; signature by key id ", path, n);
    print_key_id(id);
    puts(")");
    return EXIT_OK;
}
