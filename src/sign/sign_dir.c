/* sign_dir.c -- signing a directory (a checkpoint directory) through one
 * manifest of per-file SHA-256 digests (docs/FORMAT.md §8.4):
 *
 *   cairn-manifest-v1\n
 *   key-id <16 hex digits>\n
 *   file <64 hex digits: SHA-256> <size in bytes> <name>\n     one per file, sorted by name
 *   signature <128 hex digits>\n
 *
 * The ed25519 signature covers every byte before the "signature" line, so
 * the list itself (names, sizes, digests, key id) cannot change unnoticed;
 * the first line keeps it apart from a file signature's message. */
#include "common/buf.h"
#include "sign/sign_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_NAME "MANIFEST.cairn-sig"
#define MANIFEST_MAX (UINT64_C(64) << 20)
static const char manifest_magic[] = "cairn-manifest-v1\n";

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int names_push(names *s, const char *name)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return 0;
        s->v = v;
        s->cap = cap;
    }
    return (s->v[s->n] = strdup(name)) ? (s->n++, 1) : 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The manifest itself, leftovers of unfinished saves and a checkpoint
 * manager's lock files (their content is the holder's PID) are not signed. */
static int skipped(const char *name)
{
    static const char lock[] = ".cairn-lock";
    size_t n = strlen(name), k = sizeof lock - 1;
    return !strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, MANIFEST_NAME) ||
           (name[0] == '.' && strstr(name, ".cairn-tmp-")) ||
           (name[0] == '.' && n > k && !strcmp(name + n - k, lock));
}

static int printable_name(const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return 0;
    return 1;
}

/* Lists DIR's entries (sorted). With `strict`, anything but a regular file
 * with a printable name is refused; otherwise such entries are listed too
 * (verification reports them as extra). */
static cairn_status list_dir(const char *dir, int strict, names *out, cairn_error *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return cairn__fail(err, CAIRN_E_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    cairn_status st = CAIRN_OK;
    struct dirent *e;
    while (st == CAIRN_OK && (e = readdir(d))) {
        if (skipped(e->d_name))
            continue;
        struct stat sb;
        if (strict && fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            st = cairn__fail(err, CAIRN_E_IO, "%s/%s: cannot stat: %s", dir, e->d_name,
                             strerror(errno));
        else if (strict && !S_ISREG(sb.st_mode))
            st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s/%s: not a regular file (a directory, "
                             "link or device); a signed directory holds only files", dir,
                             e->d_name);
        else if (strict && !printable_name(e->d_name))
            st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: a file name holds control bytes; the "
                             "manifest cannot list it", dir);
        else if (!names_push(out, e->d_name))
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", dir);
    }
    closedir(d);
    if (st == CAIRN_OK)
        qsort(out->v, out->n, sizeof *out->v, str_cmp);
    else
        names_free(out);
    return st;
}

/* SHA-256 and size of DIR/NAME. CAIRN_E_NOT_FOUND when it is missing. */
static cairn_status hash_file(const char *dir, const char *name, uint8_t sha[32], uint64_t *size,
                              cairn_error *err)
{
    char *path = cairn__path_join(dir, name);
    if (!path)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", dir);
    /* O_NONBLOCK: a FIFO must not block the open; a regular file ignores it */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    cairn_status st = CAIRN_OK;
    struct stat sb;
    if (fd < 0)
        st = cairn__fail(err, errno == ENOENT ? CAIRN_E_NOT_FOUND : CAIRN_E_IO, "%s: cannot open: %s",
                         path, strerror(errno));
    else if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        st = cairn__fail(err, CAIRN_E_IO, "%s: not a regular file", path);
    uint8_t *buf = st == CAIRN_OK ? malloc(1u << 20) : NULL;
    if (st == CAIRN_OK && !buf)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    crypto_hash_sha256_state s;
    crypto_hash_sha256_init(&s);
    *size = 0;
    while (st == CAIRN_OK) {
        ssize_t n = read(fd, buf, 1u << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            st = cairn__fail(err, CAIRN_E_IO, "%s: read at offset %llu: %s", path,
                             (unsigned long long)*size, strerror(errno));
        if (n <= 0)
            break;
        crypto_hash_sha256_update(&s, buf, (unsigned long long)n);
        *size += (uint64_t)n;
    }
    crypto_hash_sha256_final(&s, sha);
    free(buf);
    if (fd >= 0)
        close(fd);
    free(path);
    return st;
}

static void appendf(cairn__buf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void appendf(cairn__buf *t, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        cairn__buf_put(t, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

cairn_status cairn_sign_dir(const char *dir, const uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                            unsigned flags, cairn_error *err)
{
    if (!dir || !secret_key)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_sign_dir: NULL argument");
    CAIRN_TRY(cairn__sodium_ready(dir, err));
    names files;
    CAIRN_TRY(list_dir(dir, 1, &files, err));
    cairn__buf t = {0};
    uint8_t id[CAIRN_KEY_ID_BYTES], sha[32], sig[crypto_sign_BYTES];
    char hex[2 * crypto_sign_BYTES + 1];
    cairn_key_id(secret_key + 32, id);
    cairn__hex(id, sizeof id, hex);
    cairn__buf_put(&t, manifest_magic, sizeof manifest_magic - 1);
    appendf(&t, "key-id %s\n", hex);
    cairn_status st = CAIRN_OK;
    for (size_t i = 0; i < files.n && st == CAIRN_OK; i++) {
        uint64_t size;
        st = hash_file(dir, files.v[i], sha, &size, err);
        cairn__hex(sha, sizeof sha, hex);
        if (st == CAIRN_OK) {
            appendf(&t, "file %s %llu ", hex, (unsigned long long)size);
            cairn__buf_put(&t, files.v[i], strlen(files.v[i]));
            cairn__buf_put(&t, "\n", 1);
        }
    }
    names_free(&files);
    if (st == CAIRN_OK && t.oom)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the manifest", dir);
    char *path = st == CAIRN_OK ? cairn__path_join(dir, MANIFEST_NAME) : NULL;
    if (st == CAIRN_OK && !path)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", dir);
    if (st == CAIRN_OK) {
        crypto_sign_detached(sig, NULL, (const uint8_t *)t.p, t.len, secret_key);
        cairn__hex(sig, sizeof sig, hex);
        appendf(&t, "signature %s\n", hex);
        if (t.oom)
            st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory for the manifest", dir);
    }
    if (st == CAIRN_OK)
        st = cairn__commit_small_file(path, t.p, t.len,
                                      (flags & CAIRN_WRITE_NO_SYNC) ? CAIRN__COMMIT_NO_SYNC : 0, err);
    free(path);
    free(t.p);
    return st;
}

/* ------------------------------------------------------------- verify */

typedef struct listed {
    const char *name;
    uint64_t size;
    uint8_t sha[32];
} listed;

/* Parses hex of exactly 2n digits. */
static int parse_hex(const char *s, size_t len, uint8_t *out, size_t n)
{
    size_t got = 0;
    return len == 2 * n && sodium_hex2bin(out, n, s, len, NULL, &got, NULL) == 0 && got == n;
}

/* Splits the manifest into its lines; checks the grammar. `body` (the
 * signed part) ends where the signature line starts. */
static cairn_status parse_manifest(const char *path, char *m, size_t len, uint8_t id[8],
                                   uint8_t sig[64], size_t *body, listed **out, size_t *count,
                                   cairn_error *err)
{
    *out = NULL;
    *count = 0;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += m[i] == '\n';
    listed *v = calloc(lines ? lines : 1, sizeof *v);
    if (!v)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    size_t at = 0, line = 0, n = 0;
    int have_sig = 0;
    cairn_status st = CAIRN_OK;
    while (at < len && st == CAIRN_OK) {
        char *nl = memchr(m + at, '\n', len - at);
        line++;
        if (!nl || have_sig) {
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line %zu: %s", path, line,
                             have_sig ? "text after the signature line" : "no final newline");
            break;
        }
        *nl = '\0';
        char *s = m + at;
        size_t sl = (size_t)(nl - s);
        if (line == 1) {
            if (strcmp(s, "cairn-manifest-v1") != 0)
                st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line 1 is not 'cairn-manifest-v1'",
                                 path);
        } else if (line == 2) {
            if (strncmp(s, "key-id ", 7) != 0 || !parse_hex(s + 7, sl - 7, id, 8))
                st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line 2 is not 'key-id' and 16 hex "
                                 "digits", path);
        } else if (!strncmp(s, "signature ", 10)) {
            if (!parse_hex(s + 10, sl - 10, sig, 64))
                st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line %zu: the signature is not 128 hex "
                                 "digits", path, line);
            *body = at;
            have_sig = 1;
        } else if (!strncmp(s, "file ", 5) && sl > 5 + 64 + 1) {
            char *size_at = s + 5 + 64, *end;
            if (*size_at != ' ' || !parse_hex(s + 5, 64, v[n].sha, 32)) {
                st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line %zu: no SHA-256", path, line);
                break;
            }
            errno = 0;
            unsigned long long size = strtoull(size_at + 1, &end, 10);
            if (errno || end == size_at + 1 || *end != ' ' || !end[1] || strchr(end + 1, '/') ||
                !printable_name(end + 1) || skipped(end + 1) ||
                (n > 0 && strcmp(v[n - 1].name, end + 1) >= 0))
                st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line %zu: not 'file SHA256 SIZE NAME' "
                                 "with a plain file name, in sorted order", path, line);
            v[n].size = size;
            v[n].name = end + 1;
            n++;
        } else {
            st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: line %zu: unknown line", path, line);
        }
        at = (size_t)(nl - m) + 1;
    }
    if (st == CAIRN_OK && (line < 2 || !have_sig))
        st = cairn__fail(err, CAIRN_E_CORRUPT, "%s: no signature line", path);
    if (st != CAIRN_OK) {
        free(v);
        return st;
    }
    *out = v;
    *count = n;
    return CAIRN_OK;
}

static cairn_status read_manifest(const char *dir, char **out, size_t *len, cairn_error *err)
{
    char *path = cairn__path_join(dir, MANIFEST_NAME);
    if (!path)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", dir);
    /* O_NONBLOCK: a FIFO must not block the open; a regular file ignores it */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    cairn_status st = CAIRN_OK;
    if (fd < 0 && errno == ENOENT)
        st = cairn__fail(err, CAIRN_E_UNSIGNED, "%s: not signed (no %s)", dir, MANIFEST_NAME);
    else if (fd < 0 || fstat(fd, &sb) != 0)
        st = cairn__fail(err, CAIRN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = cairn__fail(err, CAIRN_E_IO, "%s: not a regular file", path);
    else if ((uint64_t)sb.st_size > MANIFEST_MAX)
        st = cairn__fail(err, CAIRN_E_LIMIT, "%s: %llu bytes exceeds the 64 MiB manifest limit",
                         path, (unsigned long long)sb.st_size);
    char *m = st == CAIRN_OK ? malloc((size_t)sb.st_size + 1) : NULL;
    if (st == CAIRN_OK && !m)
        st = cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", path);
    size_t got = 0;
    while (st == CAIRN_OK && got < (size_t)sb.st_size) {
        ssize_t n = read(fd, m + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            st = cairn__fail(err, CAIRN_E_IO, "%s: short read", path);
        else
            got += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    if (st != CAIRN_OK) {
        free(m);
        return st;
    }
    m[got] = '\0';
    *out = m;
    *len = got;
    return CAIRN_OK;
}

/* Collects problems into one message: the first few by name, then a count. */
typedef struct problems {
    char text[400];
    size_t n;
} problems;

static void problem(problems *p, const char *kind, const char *name)
{
    size_t used = strlen(p->text);
    if (p->n < 4 && used + strlen(kind) + strlen(name) + 8 < sizeof p->text)
        snprintf(p->text + used, sizeof p->text - used, "%s%s '%s'", p->n ? "; " : "", kind, name);
    p->n++;
}

cairn_status cairn_verify_dir(const char *dir, const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                              cairn_error *err)
{
    if (!dir || !public_key)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_verify_dir: NULL argument");
    CAIRN_TRY(cairn__sodium_ready(dir, err));
    char *m = NULL;
    size_t len = 0, body = 0, n = 0;
    CAIRN_TRY(read_manifest(dir, &m, &len, err));
    uint8_t id[8], sig[64], want[8];
    listed *v = NULL;
    /* the parser cuts its copy into lines; the signature is over `m` as written */
    char *lines = malloc(len + 1);
    cairn_status st = lines ? CAIRN_OK : cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", dir);
    if (st == CAIRN_OK) {
        memcpy(lines, m, len + 1);
        st = parse_manifest(dir, lines, len, id, sig, &body, &v, &n, err);
    }
    if (st != CAIRN_OK) {
        free(lines);
        free(m);
        return st;
    }
    cairn_key_id(public_key, want);
    char got_hex[17], want_hex[17];
    cairn__hex(id, 8, got_hex);
    cairn__hex(want, 8, want_hex);
    if (memcmp(id, want, 8) != 0)
        st = cairn__fail(err, CAIRN_E_SIGNATURE, "%s: wrong key: the manifest is signed with key id "
                         "%s, but the public key given has key id %s", dir, got_hex, want_hex);
    else if (crypto_sign_verify_detached(sig, (const uint8_t *)m, body, public_key) != 0)
        st = cairn__fail(err, CAIRN_E_SIGNATURE, "%s/%s: the ed25519 signature does not verify "
                         "(the manifest was altered or forged)", dir, MANIFEST_NAME);
    problems p = {{0}, 0};
    for (size_t i = 0; i < n && st == CAIRN_OK; i++) {
        uint8_t sha[32];
        uint64_t size;
        cairn_error why;
        cairn_status hs = hash_file(dir, v[i].name, sha, &size, &why);
        if (hs == CAIRN_E_NOT_FOUND)
            problem(&p, "missing", v[i].name);
        else if (hs != CAIRN_OK)
            st = cairn__fail(err, hs, "%s", why.message);
        else if (size != v[i].size || sodium_memcmp(sha, v[i].sha, 32) != 0)
            problem(&p, size != v[i].size ? "changed (size)" : "changed (SHA-256)", v[i].name);
    }
    names present = {0};
    if (st == CAIRN_OK)
        st = list_dir(dir, 0, &present, err);
    for (size_t i = 0, k = 0; st == CAIRN_OK && i < present.n; i++) {
        while (k < n && strcmp(v[k].name, present.v[i]) < 0)
            k++;
        if (k == n || strcmp(v[k].name, present.v[i]) != 0)
            problem(&p, "extra file (not in the manifest)", present.v[i]);
    }
    names_free(&present);
    if (st == CAIRN_OK && p.n)
        st = cairn__fail(err, CAIRN_E_SIGNATURE, "%s: %zu file%s differ%s from the signed manifest: "
                         "%s%s", dir, p.n, p.n == 1 ? "" : "s", p.n == 1 ? "s" : "", p.text,
                         p.n > 4 ? "; ..." : "");
    free(v);
    free(lines);
    free(m);
    return st;
}
