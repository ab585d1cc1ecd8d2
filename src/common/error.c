/* error.c -- the status vocabulary and per-call error details. */
#include "common/internal.h"

#include <stdio.h>
#include <stdlib.h>

const char *cairn_version(void) { return CAIRN_VERSION_STRING; }

const char *cairn_strerror(cairn_status status)
{
    switch (status) {
    case CAIRN_OK: return "success";
    case CAIRN_E_ARG: return "invalid argument";
    case CAIRN_E_NOMEM: return "out of memory";
    case CAIRN_E_IO: return "I/O error";
    case CAIRN_E_CORRUPT: return "corrupt or truncated input";
    case CAIRN_E_UNSUPPORTED: return "unsupported feature";
    case CAIRN_E_NOT_FOUND: return "not found";
    case CAIRN_E_LIMIT: return "resource limit exceeded";
    case CAIRN_E_CHECKSUM: return "checksum mismatch";
    case CAIRN_E_DTYPE: return "dtype conversion not allowed";
    case CAIRN_E_EXISTS: return "name already exists";
    case CAIRN_E_STATE: return "handle in wrong state";
    case CAIRN_E_FORMAT: return "unknown file format";
    case CAIRN_E_SIZE: return "buffer size mismatch";
    case CAIRN_E_MISMATCH: return "tensors do not match the model";
    case CAIRN_E_SIGNATURE: return "signature does not verify";
    case CAIRN_E_UNSIGNED: return "not signed";
    case CAIRN_E_BUSY: return "locked by another process";
    case CAIRN_E_AUTH: return "access denied (credentials or permissions)";
    }
    return "unknown status";
}

void cairn_free(void *ptr) { free(ptr); }

cairn_status cairn__fail(cairn_error *err, cairn_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

cairn_status cairn__vfail_at(cairn_error *err, cairn_status status, const char *file,
                             const char *what, uint64_t offset, const char *context,
                             const char *fmt, va_list ap)
{
    if (!err)
        return status;
    char msg[CAIRN_ERROR_MESSAGE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    int ctx = context && context[0];
    return cairn__fail(err, status, "%s: %s%soffset %llu: %s%s%s", file, what ? what : "",
                       what ? " at " : "", (unsigned long long)offset, ctx ? context : "",
                       ctx ? ": " : "", msg);
}

cairn_status cairn__fail_at(cairn_error *err, cairn_status status, const char *file,
                            const char *what, uint64_t offset, const char *context,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_status st = cairn__vfail_at(err, status, file, what, offset, context, fmt, ap);
    va_end(ap);
    return st;
}

void cairn__clear(cairn_error *err)
{
    if (err) {
        err->status = CAIRN_OK;
        err->message[0] = '\0';
    }
}
