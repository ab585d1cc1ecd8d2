/* native_sig.c -- the signature block of native files (docs/FORMAT.md §8):
 * its key-less structure checks, verification with a key, and writing a
 * signed copy. The archive face reaches it through the reader ops
 * (verify_signature, sign); keys and directory manifests are in sign/.
 *
 * The per-tensor and index checksums are XXH3, which is fast but not
 * cryptographic: anyone can make two payloads with one XXH3. So a signature
 * never rests on them. It covers a BLAKE2b-256 digest of every byte before
 * the signature block (header, payloads, index, chunk tables, metadata),
 * and the header carries a BLAKE2b-256 hash of the trailer's layout fields,
 * so that the trailer (which follows the block) cannot point the signed
 * bytes at a different index either. The ed25519 signature is over
 *     "cairn-sig-v1" || digest || index_hash (u64 LE) || key id. */
#include "format/native/native.h"
#include "common/hash.h"
#include "format/native/native_sig.h"
#include "format/registry.h"
#include "common/crypto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static const char sig_domain[12] = {'c', 'a', 'i', 'r', 'n', '-', 's', 'i', 'g', '-', 'v', '1'};
#define MSG_SIZE (sizeof sig_domain + 32 + 8 + CAIRN_KEY_ID_BYTES)
#define PIECE (1u << 20)

static void message(uint8_t msg[MSG_SIZE], const uint8_t *digest, const uint8_t *index_hash,
                    const uint8_t *key_id)
{
    memcpy(msg, sig_domain, sizeof sig_domain);
    memcpy(msg + sizeof sig_domain, digest, 32);
    memcpy(msg + sizeof sig_domain + 32, index_hash, 8);
    memcpy(msg + sizeof sig_domain + 40, key_id, CAIRN_KEY_ID_BYTES);
}

/* BLAKE2b-256 of the trailer's layout fields (everything before sig_offset). */
static void layout_hash(const uint8_t *trailer, uint8_t out[32])
{
    crypto_generichash(out, 32, trailer, TR_SIG_OFFSET, NULL, 0);
}

/* BLAKE2b-256 of bytes [0, end) of the input. */
static cairn_status digest_input(const cairn_file *f, uint64_t end, uint8_t out[32],
                                 cairn_error *err)
{
    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, 32);
    uint8_t *buf = f->src.base ? NULL : malloc(PIECE);
    if (!f->src.base && !buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = CAIRN_OK;
    for (uint64_t at = 0; at < end && st == CAIRN_OK;) {
        size_t n = end - at < PIECE ? (size_t)(end - at) : PIECE;
        const uint8_t *p = cairn__file_ptr(f, at, n);
        if (!p && (st = cairn__file_read(f, at, buf, n, err)) == CAIRN_OK)
            p = buf;
        if (st == CAIRN_OK)
            crypto_generichash_update(&s, p, n);
        at += n;
    }
    free(buf);
    crypto_generichash_final(&s, out, 32);
    return st;
}

typedef struct layout {
    uint8_t header[NATIVE_HEADER_SIZE], trailer[NATIVE_TRAILER_SIZE];
    uint64_t meta_end, sig_offset, sig_size, trailer_at;
} layout;

static cairn_status read_layout(const cairn_file *f, layout *l, cairn_error *err)
{
    if (f->ops->format != CAIRN_FORMAT_NATIVE)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: only native .cairn files carry "
                           "signatures (this is %s)", f->path,
                           cairn__format_row_of(f->ops->format)->name);
    CAIRN_TRY(cairn__file_read(f, 0, l->header, sizeof l->header, err));
    l->trailer_at = f->src.size - NATIVE_TRAILER_SIZE; /* open checked the size */
    CAIRN_TRY(cairn__file_read(f, l->trailer_at, l->trailer, sizeof l->trailer, err));
    l->meta_end = cairn__le64(l->trailer + TR_META_OFFSET) + cairn__le64(l->trailer + TR_META_SIZE);
    l->sig_offset = cairn__le64(l->trailer + TR_SIG_OFFSET);
    l->sig_size = cairn__le64(l->trailer + TR_SIG_SIZE);
    return CAIRN_OK;
}

static uint64_t align8(uint64_t x) { return (x + 7) & ~UINT64_C(7); }

/* ---------------------------------------------------------- structure */

cairn_status cairn__sig_check_structure(const cairn_file *f, const uint8_t *header,
                                        const uint8_t *trailer, cairn_error *err)
{
    uint64_t meta_end = cairn__le64(trailer + TR_META_OFFSET) + cairn__le64(trailer + TR_META_SIZE);
    uint64_t at = cairn__le64(trailer + TR_SIG_OFFSET), size = cairn__le64(trailer + TR_SIG_SIZE);
    uint64_t tpos = f->src.size - NATIVE_TRAILER_SIZE;
    if (size != SG_SIZE || at != align8(meta_end) || at + size != tpos)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: signature block %llu+%llu is not the %d bytes "
                           "between the metadata (ending at %llu, padded to 8) and the trailer "
                           "(at %llu)", f->path, (unsigned long long)at, (unsigned long long)size,
                           SG_SIZE, (unsigned long long)meta_end, (unsigned long long)tpos);
    uint8_t pad[8] = {0}, b[SG_SIZE];
    CAIRN_TRY(cairn__file_read(f, meta_end, pad, (size_t)(at - meta_end), err));
    for (uint64_t i = 0; i < at - meta_end; i++)
        if (pad[i])
            return cairn__fail(err, CAIRN_E_CORRUPT, "%s: padding byte at offset %llu before the "
                               "signature block is not zero", f->path,
                               (unsigned long long)(meta_end + i));
    CAIRN_TRY(cairn__file_read(f, at, b, sizeof b, err));
    if (memcmp(b + SG_MAGIC, native_sig_magic, 8) != 0 ||
        cairn__le16(b + SG_VERSION) != NATIVE_SIG_VERSION ||
        cairn__le16(b + SG_ALGORITHM) != NATIVE_SIG_ED25519 ||
        cairn__le32(b + SG_BLOCK_SIZE) != SG_SIZE)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: signature block at offset %llu: bad magic, "
                           "version, algorithm or size", f->path, (unsigned long long)at);
    if (memcmp(b + SG_INDEX_HASH, trailer + TR_INDEX_HASH, 8) != 0)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: signature block at offset %llu: its index "
                           "hash differs from the trailer's", f->path, (unsigned long long)at);
    uint8_t lh[32];
    layout_hash(trailer, lh);
    if (!(cairn__le32(header + HD_FLAGS) & HD_FLAG_SIGNED) ||
        memcmp(header + HD_LAYOUT_HASH, lh, sizeof lh) != 0)
        return cairn__fail(err, CAIRN_E_CORRUPT, "%s: header at offset %d: the layout hash does not "
                           "match the trailer (or the signed flag is off)", f->path,
                           HD_LAYOUT_HASH);
    return CAIRN_OK;
}

/* ------------------------------------------------------------- verify */

#define SIGFAIL(fmt, ...) cairn__fail(err, CAIRN_E_SIGNATURE, "%s: " fmt, f->path, __VA_ARGS__)

/* After a digest mismatch: the cheaper checks that say where the change is. */
static cairn_status locate_damage(const cairn_file *f, const layout *l,
                                  cairn__verify_all_fn verify_all, cairn_error *err)
{
    uint8_t lh[32];
    layout_hash(l->trailer, lh);
    if (memcmp(l->header + HD_LAYOUT_HASH, lh, sizeof lh) != 0)
        return SIGFAIL("bytes before the signature block changed since signing: the header (offset "
                       "0 to %d) or the trailer's layout fields", NATIVE_HEADER_SIZE);
    cairn_error why;
    if (verify_all(f, &why) != CAIRN_OK)
        return SIGFAIL("bytes before the signature block (offset 0 to %llu) changed since "
                       "signing; first damage found: %s", (unsigned long long)l->sig_offset,
                       why.message);
    return SIGFAIL("bytes before the signature block (offset 0 to %llu) changed since signing "
                   "(in bytes that no checksum covers, so their place is unknown)",
                   (unsigned long long)l->sig_offset);
}

cairn_status cairn__native_verify_signature(const cairn_file *f,
                                            const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                            cairn__verify_all_fn verify_all, cairn_error *err)
{
    CAIRN_TRY(cairn__sodium_ready(f->path, err));
    layout l;
    CAIRN_TRY(read_layout(f, &l, err));
    if (l.sig_size == 0)
        return cairn__fail(err, CAIRN_E_UNSIGNED, "%s: not signed (the file has no signature "
                           "block)", f->path);
    unsigned long long at = (unsigned long long)l.sig_offset;
    if (l.sig_size != SG_SIZE)
        return SIGFAIL("signature block at offset %llu: %llu bytes, not %d", at,
                       (unsigned long long)l.sig_size, SG_SIZE);
    uint8_t b[SG_SIZE];
    CAIRN_TRY(cairn__file_read(f, l.sig_offset, b, sizeof b, err));
    if (memcmp(b + SG_MAGIC, native_sig_magic, 8) != 0 || cairn__le32(b + SG_BLOCK_SIZE) != SG_SIZE)
        return SIGFAIL("signature block at offset %llu: bad magic or size (damaged)", at);
    if (cairn__le16(b + SG_VERSION) != NATIVE_SIG_VERSION ||
        cairn__le16(b + SG_ALGORITHM) != NATIVE_SIG_ED25519)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: signature block at offset %llu: version "
                           "%u, algorithm %u (this library knows version 1, ed25519)", f->path, at,
                           cairn__le16(b + SG_VERSION), cairn__le16(b + SG_ALGORITHM));
    uint8_t id[CAIRN_KEY_ID_BYTES], msg[MSG_SIZE];
    char want_hex[2 * CAIRN_KEY_ID_BYTES + 1], got_hex[2 * CAIRN_KEY_ID_BYTES + 1];
    cairn_key_id(public_key, id);
    cairn__hex(id, sizeof id, want_hex);
    cairn__hex(b + SG_KEY_ID, CAIRN_KEY_ID_BYTES, got_hex);
    if (memcmp(id, b + SG_KEY_ID, sizeof id) != 0) {
        /* A signature by this very key under an altered key id field is a
         * damaged block, not a wrong key. */
        message(msg, b + SG_DIGEST, b + SG_INDEX_HASH, id);
        if (crypto_sign_verify_detached(b + SG_SIGNATURE, msg, sizeof msg, public_key) == 0)
            return SIGFAIL("signature block at offset %llu: its key id field was altered (%s; the "
                           "signature is by key %s)", at, got_hex, want_hex);
        return SIGFAIL("wrong key: signed with key id %s, but the public key given has key id %s",
                       got_hex, want_hex);
    }
    message(msg, b + SG_DIGEST, b + SG_INDEX_HASH, b + SG_KEY_ID);
    if (crypto_sign_verify_detached(b + SG_SIGNATURE, msg, sizeof msg, public_key) != 0)
        return SIGFAIL("signature block at offset %llu: the ed25519 signature does not verify "
                       "(the block was altered or forged)", at);
    if (l.sig_offset != align8(l.meta_end) || l.sig_offset + SG_SIZE != l.trailer_at)
        return SIGFAIL("the signature block at offset %llu does not directly follow the metadata "
                       "(ending at %llu) and precede the trailer (at %llu): bytes were moved or "
                       "inserted", at, (unsigned long long)l.meta_end,
                       (unsigned long long)l.trailer_at);
    uint8_t digest[32];
    CAIRN_TRY(digest_input(f, l.sig_offset, digest, err));
    if (sodium_memcmp(digest, b + SG_DIGEST, sizeof digest) != 0)
        return locate_damage(f, &l, verify_all, err);
    uint8_t lh[32];
    layout_hash(l.trailer, lh);
    if (!(cairn__le32(l.header + HD_FLAGS) & HD_FLAG_SIGNED) ||
        memcmp(l.header + HD_LAYOUT_HASH, lh, sizeof lh) != 0)
        return SIGFAIL("the trailer's layout (tensor count, index, string table and metadata "
                       "offsets and sizes) differs from the signed one (trailer at offset %llu)",
                       (unsigned long long)l.trailer_at);
    if (memcmp(l.trailer + TR_INDEX_HASH, b + SG_INDEX_HASH, 8) != 0)
        return SIGFAIL("the trailer's index hash (at offset %llu) differs from the signed one",
                       (unsigned long long)(l.trailer_at + TR_INDEX_HASH));
    return CAIRN_OK;
}

/* --------------------------------------------------------------- sign */

/* Appends bytes to the new file and to the digest. */
static cairn_status put(cairn__sink *w, crypto_generichash_state *s, const uint8_t *p, size_t n,
                        cairn_error *err)
{
    if (s)
        crypto_generichash_update(s, p, n);
    return cairn__sink_write(w, p, n, err);
}

/* Writes the signed copy of f to w: new header, the bytes up to the end of
 * the metadata unchanged, padding, the block, the new trailer. */
static cairn_status write_signed(const cairn_file *f, const layout *l, cairn__sink *w,
                                 const uint8_t *sk, cairn_error *err)
{
    uint64_t sig_at = align8(l->meta_end);
    uint8_t h[NATIVE_HEADER_SIZE], t[NATIVE_TRAILER_SIZE], b[SG_SIZE] = {0};
    memcpy(t, l->trailer, sizeof t);
    cairn__put16(t + TR_MINOR, NATIVE_MINOR_EXTENDED);
    cairn__put64(t + TR_SIG_OFFSET, sig_at);
    cairn__put64(t + TR_SIG_SIZE, SG_SIZE);
    cairn__put64(t + TR_HASH, 0); /* recomputed below, after every field is set */
    memcpy(h, l->header, sizeof h);
    cairn__put16(h + HD_MINOR, NATIVE_MINOR_EXTENDED);
    cairn__put32(h + HD_FLAGS, cairn__le32(h + HD_FLAGS) | HD_FLAG_SIGNED);
    layout_hash(t, h + HD_LAYOUT_HASH);

    crypto_generichash_state s;
    crypto_generichash_init(&s, NULL, 0, 32);
    CAIRN_TRY(put(w, &s, h, sizeof h, err));
    uint8_t *buf = f->src.base ? NULL : malloc(PIECE);
    if (!f->src.base && !buf)
        return cairn__fail(err, CAIRN_E_NOMEM, "%s: out of memory", f->path);
    cairn_status st = CAIRN_OK;
    for (uint64_t at = NATIVE_HEADER_SIZE; at < l->meta_end && st == CAIRN_OK;) {
        size_t n = l->meta_end - at < PIECE ? (size_t)(l->meta_end - at) : PIECE;
        const uint8_t *p = cairn__file_ptr(f, at, n);
        if (!p && (st = cairn__file_read(f, at, buf, n, err)) == CAIRN_OK)
            p = buf;
        if (st == CAIRN_OK)
            st = put(w, &s, p, n, err);
        at += n;
    }
    free(buf);
    static const uint8_t zeros[8];
    if (st == CAIRN_OK)
        st = put(w, &s, zeros, (size_t)(sig_at - l->meta_end), err);
    if (st != CAIRN_OK)
        return st;
    memcpy(b + SG_MAGIC, native_sig_magic, 8);
    cairn__put16(b + SG_VERSION, NATIVE_SIG_VERSION);
    cairn__put16(b + SG_ALGORITHM, NATIVE_SIG_ED25519);
    cairn__put32(b + SG_BLOCK_SIZE, SG_SIZE);
    cairn_key_id(sk + 32, b + SG_KEY_ID);
    crypto_generichash_final(&s, b + SG_DIGEST, 32);
    memcpy(b + SG_INDEX_HASH, t + TR_INDEX_HASH, 8);
    uint8_t msg[MSG_SIZE];
    message(msg, b + SG_DIGEST, b + SG_INDEX_HASH, b + SG_KEY_ID);
    crypto_sign_detached(b + SG_SIGNATURE, NULL, msg, sizeof msg, sk);
    cairn__put64(t + TR_HASH, cairn__hash(t, TR_HASH));
    CAIRN_TRY(put(w, NULL, b, sizeof b, err));
    return put(w, NULL, t, sizeof t, err);
}

cairn_status cairn__native_sign(const cairn_file *f, const uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                               cairn__sink *out, cairn_error *err)
{
    CAIRN_TRY(cairn__sodium_ready(f->path, err));
    layout l;
    CAIRN_TRY(read_layout(f, &l, err));
    return write_signed(f, &l, out, secret_key, err);
}
