/* test_sign.c -- ed25519 signatures (docs/FORMAT.md §8): key files, signing
 * files atomically, verification on open and on demand, every region of a
 * signed file damaged (with and without re-sealed XXH3 checksums), wrong
 * keys, unsigned files, and signed (checkpoint) directories. */
#include "testutil.h"

#include "format/native/native.h"
#include "common/internal.h"
#include <cairn.h>
#include <dirent.h>
#include <fcntl.h>
#include <xxhash.h>

static const char *dir;

static char *path_of(const char *name) { return tu_path(dir, name); }

static uint8_t pk[CAIRN_PUBLIC_KEY_BYTES], sk[CAIRN_SECRET_KEY_BYTES];
static uint8_t pk2[CAIRN_PUBLIC_KEY_BYTES], sk2[CAIRN_SECRET_KEY_BYTES];

static void test_keys(void)
{
    cairn_error err;
    CHECK_OK(cairn_keygen(path_of("k.sec"), path_of("k.pub"), &err));
    struct stat sb;
    CHECK(stat(path_of("k.sec"), &sb) == 0 && (sb.st_mode & 0777) == 0600);
    /* never overwritten: neither an existing secret nor an existing public key */
    size_t n1, n2;
    void *before = tu_read_whole(path_of("k.sec"), &n1);
    CHECK_ST(cairn_keygen(path_of("k.sec"), path_of("other.pub"), &err), CAIRN_E_EXISTS);
    CHECK(strstr(err.message, "refusing to overwrite") != NULL);
    CHECK(access(path_of("other.pub"), F_OK) != 0);
    CHECK_ST(cairn_keygen(path_of("new.sec"), path_of("k.pub"), &err), CAIRN_E_EXISTS);
    CHECK(access(path_of("new.sec"), F_OK) != 0); /* nothing left behind */
    void *after = tu_read_whole(path_of("k.sec"), &n2);
    CHECK(n1 == n2 && memcmp(before, after, n1) == 0);
    free(before);
    free(after);
    CHECK_OK(cairn_key_load_secret(path_of("k.sec"), sk, &err));
    CHECK_OK(cairn_key_load_public(path_of("k.pub"), pk, &err));
    CHECK(memcmp(sk + 32, pk, 32) == 0);
    CHECK_OK(cairn_keygen(path_of("k2.sec"), path_of("k2.pub"), &err));
    CHECK_OK(cairn_key_load_secret(path_of("k2.sec"), sk2, &err));
    CHECK_OK(cairn_key_load_public(path_of("k2.pub"), pk2, &err));
    uint8_t id1[8], id2[8];
    cairn_key_id(pk, id1);
    cairn_key_id(pk2, id2);
    CHECK(memcmp(id1, id2, 8) != 0);
    /* the wrong kind of file, damaged files, an exposed secret */
    CHECK_ST(cairn_key_load_public(path_of("k.sec"), pk2, &err), CAIRN_E_CORRUPT);
    CHECK(strstr(err.message, "line 1") != NULL);
    tu_write_file(path_of("bad.pub"), "cairn-ed25519-public-v1\nzz\n", 27);
    CHECK_ST(cairn_key_load_public(path_of("bad.pub"), pk2, &err), CAIRN_E_CORRUPT);
    size_t n;
    char *text = (char *)tu_read_whole(path_of("k.sec"), &n);
    text[strlen("cairn-ed25519-secret-v1\n") + 70] ^= 1; /* a digit of the public half */
    if (text[strlen("cairn-ed25519-secret-v1\n") + 70] > 'f' ||
        text[strlen("cairn-ed25519-secret-v1\n") + 70] < '0')
        text[strlen("cairn-ed25519-secret-v1\n") + 70] = '0';
    int fd = open(path_of("damaged.sec"), O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0 && write(fd, text, n) == (ssize_t)n);
    close(fd);
    uint8_t tmp[64];
    cairn_status st = cairn_key_load_secret(path_of("damaged.sec"), tmp, &err);
    CHECK(st == CAIRN_E_CORRUPT);
    chmod(path_of("k2.sec"), 0644);
    CHECK_ST(cairn_key_load_secret(path_of("k2.sec"), tmp, &err), CAIRN_E_ARG);
    CHECK(strstr(err.message, "chmod 600") != NULL);
    chmod(path_of("k2.sec"), 0600);
    free(text);
}

/* A file with compressed and raw tensors, an alias and metadata. */
static void make_file(const char *path, int compress)
{
    enum { N = 100000 };
    float *a = malloc(N * 4);
    for (int i = 0; i < N; i++)
        a[i] = (float)(i % 100) / 8;
    int64_t b[5] = {1, -2, 3, -4, 5};
    uint64_t n = N, nb = 5;
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC,
                          .codec = compress ? CAIRN_CODEC_ZSTD : 0, .filter = CAIRN_FILTER_SHUFFLE,
                          .chunk_size = 64 << 10};
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path, &o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "a", CAIRN_F32, 1, &n, a, &err));
    CHECK_OK(cairn_writer_add(w, "b", CAIRN_I64, 1, &nb, b, &err));
    CHECK_OK(cairn_writer_add_alias(w, "c", "a", &err));
    cairn_value *m = cairn_value_map();
    cairn_value_set(m, "config", cairn_value_string("lr=0.1"), &err);
    CHECK_OK(cairn_writer_set_metadata(w, m, &err));
    cairn_value_free(m);
    CHECK_OK(cairn_writer_commit(w, &err));
    free(a);
}

static cairn_status open_signed(const void *p, size_t n, const uint8_t *key, cairn_error *err)
{
    cairn_open_opts o = {.struct_size = sizeof o, .public_key = key};
    cairn_file *f;
    cairn_status st = cairn_file_open_memory(p, n, &o, &f, err);
    cairn_file_close(f);
    return st;
}

static void reseal(uint8_t *p, size_t size)
{
    uint8_t *t = p + size - NATIVE_TRAILER_SIZE;
    uint64_t index = cairn__le64(t + TR_INDEX_OFFSET);
    uint64_t end = cairn__le64(t + TR_META_OFFSET) + cairn__le64(t + TR_META_SIZE);
    cairn__put64(t + TR_INDEX_HASH, XXH3_64bits(p + index, (size_t)(end - index)));
    cairn__put64(t + TR_HASH, XXH3_64bits(t, TR_HASH));
}

static void test_sign_file(void)
{
    cairn_error err;
    for (int compress = 0; compress < 2; compress++) {
        const char *path = path_of(compress ? "signed-z.cairn" : "signed.cairn");
        make_file(path, compress);
        size_t n0, n1;
        uint8_t *orig = tu_read_whole(path, &n0);
        chmod(path, 0640);
        /* unsigned: "not signed", not "bad signature" */
        CHECK_ST(open_signed(orig, n0, pk, &err), CAIRN_E_UNSIGNED);
        CHECK(strstr(err.message, "not signed") != NULL);
        CHECK_OK(cairn_sign_file(path, sk, 0, &err));
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640); /* mode kept */
        uint8_t *s = tu_read_whole(path, &n1);
        const uint8_t *t = s + n1 - NATIVE_TRAILER_SIZE;
        uint64_t meta_end = cairn__le64(t + TR_META_OFFSET) + cairn__le64(t + TR_META_SIZE);
        uint64_t sig_at = cairn__le64(t + TR_SIG_OFFSET);
        /* everything but the header keeps its bytes; the block and a trailer follow */
        CHECK(memcmp(orig + 64, s + 64, (size_t)meta_end - 64) == 0);
        CHECK(cairn__le16(s + HD_MINOR) == 1 && cairn__le16(t + TR_MINOR) == 1);
        CHECK(sig_at == ((meta_end + 7) & ~UINT64_C(7)) && n1 == sig_at + SG_SIZE + 128);
        CHECK(memcmp(t + TR_INDEX_HASH, orig + n0 - 128 + TR_INDEX_HASH, 8) == 0);
        CHECK_OK(open_signed(s, n1, pk, &err));
        CHECK_ST(open_signed(s, n1, pk2, &err), CAIRN_E_SIGNATURE);
        CHECK(strstr(err.message, "wrong key") != NULL);
        /* the signed file is an ordinary file to readers without a key */
        cairn_file *f;
        CHECK_OK(cairn_file_open(path, NULL, &f, &err));
        CHECK_OK(cairn_file_verify(f, &err));
        cairn_file_info fi;
        CHECK_OK(cairn_file_get_info(f, &fi, &err));
        uint8_t id[8];
        cairn_key_id(pk, id);
        CHECK(fi.is_signed && memcmp(fi.key_id, id, 8) == 0 && fi.version_minor == 1);
        CHECK_OK(cairn_file_verify_signature(f, pk, &err));
        float a[10];
        CHECK_OK(cairn_tensor_read_range(f, 0, 5, 10, CAIRN_F32, a, sizeof a, 0, &err));
        CHECK(a[0] == 5.0f / 8);
        cairn_file_close(f);

        /* damage in each region: header, payload, index (a record, a name),
         * metadata, the signature block (key id, digest, signature), the trailer */
        size_t index = (size_t)cairn__le64(t + TR_INDEX_OFFSET);
        size_t meta = (size_t)cairn__le64(t + TR_META_OFFSET);
        size_t strings = (size_t)cairn__le64(t + TR_STRINGS_OFFSET);
        struct { const char *what; size_t at; } regions[] = {
            {"header reserved", 60}, {"header layout hash", HD_LAYOUT_HASH + 3},
            {"header minor", HD_MINOR}, {"payload", 64 + 100}, {"record", index + RC_CHECKSUM},
            {"name", strings}, {"metadata", meta + 3}, {"sig key id", sig_at + SG_KEY_ID},
            {"sig digest", sig_at + SG_DIGEST + 5}, {"sig index hash", sig_at + SG_INDEX_HASH},
            {"sig signature", sig_at + SG_SIGNATURE + 10}, {"sig magic", sig_at},
            {"trailer count", n1 - 128 + TR_COUNT}, {"trailer hash", n1 - 128 + TR_HASH},
        };
        uint8_t *copy = malloc(n1);
        for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) {
            /* re-sealing would only repair a damaged trailer hash */
            int seals = regions[r].at == n1 - 128 + TR_HASH ? 1 : 2;
            for (int sealed = 0; sealed < seals; sealed++) {
                memcpy(copy, s, n1);
                copy[regions[r].at] ^= 0x08;
                if (sealed)
                    reseal(copy, n1); /* an attacker can recompute every XXH3 */
                cairn_status st = open_signed(copy, n1, pk, &err);
                if (st == CAIRN_OK)
                    fprintf(stderr, "damage to %s (%s) went undetected\n", regions[r].what,
                            sealed ? "re-sealed" : "as is");
                CHECK(st != CAIRN_OK);
                if (sealed && regions[r].at == 64 + 100)
                    CHECK(st == CAIRN_E_SIGNATURE && strstr(err.message, "changed since signing"));
            }
        }
        /* the layout attack: hide the last tensor by lowering the count in
         * the trailer (re-sealed): the bytes are intact, the layout is not */
        memcpy(copy, s, n1);
        cairn__put64(copy + n1 - 128 + TR_COUNT, 2);
        reseal(copy, n1);
        CHECK_ST(open_signed(copy, n1, pk, &err), CAIRN_E_SIGNATURE);
        CHECK(strstr(err.message, "layout") != NULL);
        /* the signature stripped: no longer signed, so refused as unsigned */
        memcpy(copy, s, n1);
        cairn__put64(copy + n1 - 128 + TR_SIG_OFFSET, 0);
        cairn__put64(copy + n1 - 128 + TR_SIG_SIZE, 0);
        reseal(copy, n1);
        CHECK(open_signed(copy, n1, pk, &err) != CAIRN_OK);
        /* a key id field changed to the other key: a damaged block, not a wrong key */
        memcpy(copy, s, n1);
        cairn_key_id(pk2, copy + sig_at + SG_KEY_ID);
        CHECK_ST(open_signed(copy, n1, pk, &err), CAIRN_E_SIGNATURE);
        CHECK(strstr(err.message, "key id field was altered") != NULL);
        free(copy);

        /* signing again with another key replaces the signature */
        CHECK_OK(cairn_sign_file(path, sk2, CAIRN_WRITE_NO_SYNC, &err));
        size_t n2;
        uint8_t *s2 = tu_read_whole(path, &n2);
        CHECK(n2 == n1);
        CHECK_OK(open_signed(s2, n2, pk2, &err));
        CHECK_ST(open_signed(s2, n2, pk, &err), CAIRN_E_SIGNATURE);
        free(s2);
        free(s);
        free(orig);
    }
    /* refused: a damaged file, another format, a signature wanted from npy */
    const char *bad = path_of("damaged.cairn");
    make_file(bad, 1);
    size_t n;
    uint8_t *p = tu_read_whole(bad, &n);
    p[64 + 10] ^= 1;
    tu_write_file(bad, p, n);
    CHECK_ST(cairn_sign_file(bad, sk, 0, &err), CAIRN_E_CHECKSUM);
    CHECK(strstr(err.message, "does not verify") != NULL);
    size_t n2;
    uint8_t *p2 = tu_read_whole(bad, &n2);
    CHECK(n2 == n && memcmp(p, p2, n) == 0); /* left as it was */
    free(p);
    free(p2);
    cairn_write_opts o = {.struct_size = sizeof o, .flags = CAIRN_WRITE_NO_SYNC};
    cairn_writer *w;
    float x = 1;
    CHECK_OK(cairn_writer_open_path(path_of("x.npy"), &o, &w, &err));
    CHECK_OK(cairn_writer_add(w, "array", CAIRN_F32, 0, NULL, &x, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK(cairn_sign_file(path_of("x.npy"), sk, 0, &err) != CAIRN_OK);
    cairn_open_opts oo = {.struct_size = sizeof oo, .public_key = pk};
    cairn_file *f;
    CHECK_ST(cairn_file_open(path_of("x.npy"), &oo, &f, &err), CAIRN_E_UNSUPPORTED);
    /* no temporary file is left over by any of this */
    DIR *d = opendir(dir);
    struct dirent *e;
    int tmp = 0;
    while (d && (e = readdir(d)))
        tmp += strstr(e->d_name, ".cairn-tmp-") != NULL;
    if (d)
        closedir(d);
    CHECK(tmp == 0);
}

static void test_sign_dir(void)
{
    cairn_error err;
    /* a checkpoint directory as the manager writes it */
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/ckpts", dir);
    float wgt[64];
    for (int i = 0; i < 64; i++)
        wgt[i] = (float)i;
    uint64_t d = 64;
    cairn_params *p = cairn_params_new();
    CHECK_OK(cairn_params_add(p, "w", CAIRN_F32, 1, &d, wgt, &err));
    cairn_ckpt_opts co = {.struct_size = sizeof co, .dirname = ck, .flags = CAIRN_CKPT_NO_SYNC};
    cairn_ckpt *m;
    CHECK_OK(cairn_ckpt_open(&co, &m, &err));
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = "t", .params = p};
    for (uint64_t e = 0; e < 3; e++)
        CHECK_OK(cairn_ckpt_step(m, e, e * 10, NULL, &parts, CAIRN_STEP_FORCE, NULL, &err));
    CHECK_OK(cairn_ckpt_close(m, &err));
    CHECK_ST(cairn_verify_dir(ck, pk, &err), CAIRN_E_UNSIGNED);
    CHECK(strstr(err.message, "not signed") != NULL);
    CHECK_OK(cairn_sign_dir(ck, sk, CAIRN_WRITE_NO_SYNC, &err));
    CHECK_OK(cairn_verify_dir(ck, pk, &err));
    CHECK_ST(cairn_verify_dir(ck, pk2, &err), CAIRN_E_SIGNATURE);
    CHECK(strstr(err.message, "wrong key") != NULL);
    /* the manager still opens the directory with the manifest in it */
    CHECK_OK(cairn_ckpt_open(&co, &m, &err));
    CHECK(cairn_ckpt_count(m) == 3);
    CHECK_OK(cairn_ckpt_close(m, &err));

    char f1[4300], f2[4300], extra[4300], man[4300], tmpf[4300];
    snprintf(f1, sizeof f1, "%s/ckpt-00000001.cairn", ck);
    snprintf(f2, sizeof f2, "%s/ckpt-00000002.cairn", ck);
    snprintf(extra, sizeof extra, "%s/notes.txt", ck);
    snprintf(man, sizeof man, "%s/MANIFEST.cairn-sig", ck);
    snprintf(tmpf, sizeof tmpf, "%s/.ckpt-00000009.cairn.cairn-tmp-0123456789abcdef", ck);
    /* a leftover temporary file is not part of the signed set */
    tu_write_file(tmpf, "x", 1);
    CHECK_OK(cairn_verify_dir(ck, pk, &err));
    unlink(tmpf);
    /* changed (same size), missing, extra: each named */
    size_t n;
    uint8_t *b1 = tu_read_whole(f1, &n);
    b1[100] ^= 1;
    tu_write_file(f1, b1, n);
    CHECK_ST(cairn_verify_dir(ck, pk, &err), CAIRN_E_SIGNATURE);
    CHECK(strstr(err.message, "changed (SHA-256) 'ckpt-00000001.cairn'") != NULL);
    b1[100] ^= 1;
    tu_write_file(f1, b1, n);
    CHECK_OK(cairn_verify_dir(ck, pk, &err));
    uint8_t *b2 = tu_read_whole(f2, &n);
    unlink(f2);
    CHECK_ST(cairn_verify_dir(ck, pk, &err), CAIRN_E_SIGNATURE);
    CHECK(strstr(err.message, "missing 'ckpt-00000002.cairn'") != NULL);
    tu_write_file(f2, b2, n);
    tu_write_file(extra, "hello", 5);
    CHECK_ST(cairn_verify_dir(ck, pk, &err), CAIRN_E_SIGNATURE);
    CHECK(strstr(err.message, "extra file (not in the manifest) 'notes.txt'") != NULL);
    /* re-signing takes the new file in */
    CHECK_OK(cairn_sign_dir(ck, sk, CAIRN_WRITE_NO_SYNC, &err));
    CHECK_OK(cairn_verify_dir(ck, pk, &err));
    /* a tampered manifest: its signature fails */
    size_t mn;
    char *mt = (char *)tu_read_whole(man, &mn);
    char *line = strstr(mt, " 5 notes.txt");
    CHECK(line != NULL);
    if (line)
        line[1] = '6';
    tu_write_file(man, mt, mn);
    CHECK_ST(cairn_verify_dir(ck, pk, &err), CAIRN_E_SIGNATURE);
    CHECK(strstr(err.message, "altered or forged") != NULL);
    if (line)
        line[1] = 'x'; /* and a malformed one is corrupt */
    tu_write_file(man, mt, mn);
    CHECK_ST(cairn_verify_dir(ck, pk, &err), CAIRN_E_CORRUPT);
    free(mt);
    /* special files are refused when signing */
    char sub[4300];
    snprintf(sub, sizeof sub, "%s/subdir", ck);
    mkdir(sub, 0777);
    CHECK_ST(cairn_sign_dir(ck, sk, CAIRN_WRITE_NO_SYNC, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "subdir") != NULL);
    rmdir(sub);
    free(b1);
    free(b2);
    cairn_params_free(p);
}

int main(void)
{
    dir = tu_tmpdir("test_sign");
    test_keys();
    test_sign_file();
    test_sign_dir();
    TEST_MAIN_END();
}
