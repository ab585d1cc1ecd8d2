/* text.c -- UTF-8 validation, safe rendering and look-up of names from files. */
#include "common/internal.h"

#include <stdio.h>
#include <stdlib.h>

int cairn__utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

const char *cairn__printable(const char *name, size_t len, char *buf, size_t buf_size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    /* Valid UTF-8 prints as itself; otherwise every high byte is escaped, so
     * a hostile name never puts broken sequences into a message. */
    int escape_high = !cairn__utf8_valid(name, len);
    if (buf_size < 8) {
        if (buf_size)
            buf[0] = '\0';
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (o + 8 >= buf_size) { /* room for "\xNN..." and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7F || c == '\'' || c == '\\' || (escape_high && c >= 0x80)) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}

cairn_status cairn__name_check(const char *name, size_t len, const char *what, cairn_error *err)
{
    char shown[96];
    if (len == 0)
        return cairn__fail(err, CAIRN_E_ARG, "%s: empty name", what);
    if (len > CAIRN_NAME_MAX)
        return cairn__fail(err, CAIRN_E_ARG, "%s: name of %zu bytes is longer than %d bytes", what,
                           len, CAIRN_NAME_MAX);
    if (memchr(name, '\0', len))
        return cairn__fail(err, CAIRN_E_ARG, "%s: name '%s' contains a NUL byte", what,
                           cairn__printable(name, len, shown, sizeof shown));
    if (!cairn__utf8_valid(name, len))
        return cairn__fail(err, CAIRN_E_ARG, "%s: name '%s' is not valid UTF-8", what,
                           cairn__printable(name, len, shown, sizeof shown));
    return CAIRN_OK;
}

int cairn__name_search(uint64_t count, cairn__sorted_name_fn name_at, const void *ctx,
                       const char *name, size_t len, uint64_t *pos)
{
    uint64_t lo = 0, hi = count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        size_t mlen;
        const char *mname = name_at(ctx, mid, &mlen);
        int c = cairn__name_cmp(name, len, mname, mlen);
        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

char *cairn__path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}
