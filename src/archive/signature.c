/* signature.c -- signing and verifying single files through the archive
 * face: the format's reader ops hold what a signature block is (the native
 * format's, format/native/native_sig.c); this file adds the policy around
 * them: a file is signed only when it verifies, and the signed copy
 * replaces it through io/'s commit, keeping its permissions. */
#include "archive/archive.h"

#include <sys/stat.h>

cairn_status cairn_file_verify_signature(const cairn_file *f,
                                         const uint8_t public_key[CAIRN_PUBLIC_KEY_BYTES],
                                         cairn_error *err)
{
    if (!f || !public_key)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_file_verify_signature: NULL argument");
    if (!f->ops->verify_signature)
        return cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: only native .cairn files carry "
                           "signatures (this is %s)", f->path, cairn_format_name(f->ops->format));
    return f->ops->verify_signature(f, public_key, cairn_file_verify, err);
}

cairn_status cairn_sign_file(const char *path, const uint8_t secret_key[CAIRN_SECRET_KEY_BYTES],
                             unsigned flags, cairn_error *err)
{
    if (!path || !secret_key)
        return cairn__fail(err, CAIRN_E_ARG, "cairn_sign_file: NULL argument");
    cairn_open_opts o = {.struct_size = sizeof o, .format = CAIRN_FORMAT_NATIVE};
    cairn_file *f;
    CAIRN_TRY(cairn_file_open(path, &o, &f, err));
    /* Signing vouches for the bytes: never sign a file that does not verify. */
    cairn_error why;
    cairn_status st = cairn_file_verify(f, &why);
    if (st != CAIRN_OK)
        st = cairn__fail(err, st, "%s: not signed, because the file does not verify: %s", path,
                         why.message);
    if (st == CAIRN_OK && !f->ops->sign)
        st = cairn__fail(err, CAIRN_E_UNSUPPORTED, "%s: only native .cairn files carry "
                         "signatures", path);
    cairn__sink out;
    cairn__sink_init_memory(&out, path);
    if (st == CAIRN_OK)
        st = cairn__sink_open_file(&out, path, err);
    struct stat sb;
    /* The signed file replaces the original: keep its permissions. */
    if (st == CAIRN_OK && f->src.fd >= 0 && fstat(f->src.fd, &sb) == 0)
        fchmod(cairn__sink_fd(&out), sb.st_mode & 07777);
    if (st == CAIRN_OK)
        st = f->ops->sign(f, secret_key, &out, err);
    cairn_file_close(f);
    if (st == CAIRN_OK)
        return cairn__sink_commit(&out, (flags & CAIRN_WRITE_NO_SYNC) ? CAIRN__COMMIT_NO_SYNC : 0,
                                  err);
    cairn__sink_discard(&out);
    return st;
}
