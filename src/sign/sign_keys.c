/* sign_keys.c -- ed25519 key pairs and their files (docs/FORMAT.md §8.3):
 *
 *   secret key file (mode 0600)        public key file
 *   cairn-ed25519-secret-v1\n          cairn-ed25519-public-v1\n
 *   <128 hex digits>\n                 <64 hex digits>\n
 *
 * The secret key is libsodium's 64 bytes: the 32-byte seed, then the public
 * key. Text, so a key can be copied through a terminal or a secret store. */
#include "sign/sign_internal.h"
#include "io/open_read.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char secret_magic[] = "cairn-ed25519-secret-v1\n";
static const char public_magic[] = "cairn-ed25519-public-v1\n";
#define KEY_FILE_MAX 4096

static cairn_status write_all(int fd, const char *path, const char *data, size_t len,
                              cairn_error *err)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cairn__fail(err, CAIRN_E_IO, "%s: write failed: %s", path, strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return fsync(fd) == 0 ? CAIRN_OK
                          : cairn__fail(err, CAIRN_E_IO, "%s: fsync failed: %s", path,
                                        strerror(errno));
}

static void sync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the key files themselves are already synced */
        close(fd);
    }
    free(copy);
}

/* Creates `path` with O_EXCL: an existing file is never replaced. */
static cairn_status create_excl(const char *path, mode_t mode, const char *what, int *fd,
                                cairn_error *err)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (*fd >= 0)
        return CAIRN_OK;
    if (errno == EEXIST)
        return cairn__fail(err, CAIRN_E_EXISTS, "%s: a file already exists; refusing to overwrite "
                           "it with a new %s (remove it first if that is what you want)", path,
                           what);
    return cairn__fail(err, CAIRN_E_IO, "%s: cannot create %s: %s", path, what, strerror(errno));
}

cairn_status cairn_keygen(const char *secret_path, const char *public_path, cairn_error *err)
{
    if (!secret_path || !public_path)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_keygen: NULL path");
    CAIRN_TRY(cairn__sodium_ready(secret_path, err));
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    char text[sizeof secret_magic + 2 * sizeof sk + 2];
    int sfd = -1, pfd = -1;
    cairn_status st = create_excl(secret_path, 0600, "secret key", &sfd, err);
    if (st == CAIRN_OK && (st = create_excl(public_path, 0644, "public key", &pfd, err)) != CAIRN_OK) {
        close(sfd);
        unlink(secret_path); /* ours, just created and still empty */
        return st;
    }
    if (st != CAIRN_OK)
        return st;
    /* The umask can only take bits away; make the secret exactly 0600. */
    if (fchmod(sfd, 0600) != 0)
        st = cairn__fail(err, CAIRN_E_IO, "%s: chmod 0600 failed: %s", secret_path, strerror(errno));
    crypto_sign_keypair(pk, sk);
    if (st == CAIRN_OK) {
        memcpy(text, secret_magic, sizeof secret_magic - 1);
        cairn__hex(sk, sizeof sk, text + sizeof secret_magic - 1);
        strcat(text, "\n");
        st = write_all(sfd, secret_path, text, strlen(text), err);
    }
    if (st == CAIRN_OK) {
        memcpy(text, public_magic, sizeof public_magic - 1);
        cairn__hex(pk, sizeof pk, text + sizeof public_magic - 1);
        strcat(text, "\n");
        st = write_all(pfd, public_path, text, strlen(text), err);
    }
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(text, sizeof text);
    close(sfd);
    close(pfd);
    if (st != CAIRN_OK) {
        unlink(secret_path);
        unlink(public_path);
        return st;
    }
    sync_parent(secret_path);
    sync_parent(public_path);
    return CAIRN_OK;
}

/* cairn_key_load_secret/_public: reads a key file: the magic line, then
 * exactly 2n hex digits, then an optional newline. */
static cairn_status load_key(const char *path, const char *magic, uint8_t *out, size_t n,
                             int secret, cairn_error *err)
{
    if (!path || !out)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_key_load_%s: NULL argument",
                           secret ? "secret" : "public");
    CAIRN_TRY(cairn__sodium_ready(path, err));
    int fd;
    struct stat sb;
    CAIRN_TRY(cairn__open_read(path, 0, 0, &fd, &sb, err));
    if (secret && (sb.st_mode & 077)) {
        close(fd);
        return cairn__fail(err, CAIRN_E_ARG, "%s: secret key file is accessible by others (mode "
                           "%04o); chmod 600 it", path, (unsigned)(sb.st_mode & 07777));
    }
    char buf[KEY_FILE_MAX + 1];
    ssize_t len = read(fd, buf, KEY_FILE_MAX);
    close(fd);
    if (len < 0)
        return cairn__fail(err, CAIRN_E_IO, "%s: read failed: %s", path, strerror(errno));
    size_t mlen = strlen(magic);
    cairn_status st = CAIRN_OK;
    if ((size_t)len < mlen || memcmp(buf, magic, mlen) != 0) {
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line 1 is not '%.*s' (is this a cairn %s key "
                         "file?)", path, (int)mlen - 1, magic, secret ? "secret" : "public");
    } else {
        size_t hex_len = (size_t)len - mlen;
        if (hex_len > 0 && buf[mlen + hex_len - 1] == '\n')
            hex_len--;
        size_t got = 0;
        const char *end = NULL;
        if (hex_len != 2 * n ||
            sodium_hex2bin(out, n, buf + mlen, hex_len, NULL, &got, &end) != 0 || got != n)
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line 2 is not %zu hex digits", path, 2 * n);
    }
    sodium_memzero(buf, sizeof buf);
    return st;
}

cairn_status cairn_key_load_secret(const char *path, uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                                   cairn_error *err)
{
    CAIRN_TRY(load_key(path, secret_magic, secret_key, CAIRN_SECRET_KEY_BYTES, 1, err));
    /* The public half must be the one the seed gives: a damaged key would
     * otherwise sign with a key id nobody can verify. */
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, secret_key);
    int same = sodium_memcmp(sk, secret_key, sizeof sk) == 0;
    sodium_memzero(sk, sizeof sk);
    if (!same) {
        sodium_memzero(secret_key, CAIRN_SECRET_KEY_BYTES);
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: the public half of the secret key does not "
                           "match its seed (damaged key file)", path);
    }
    return CAIRN_OK;
}

cairn_status cairn_key_load_public(const char *path, uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                   cairn_error *err)
{
    return load_key(path, public_magic, public_key, CAIRN_PUBLIC_KEY_BYTES, 0, err);
}
