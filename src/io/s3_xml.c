/* s3_xml.c -- strict, bounded reading of S3's flat XML answers (s3_xml.h). */
#include "io/s3_xml.h"
#include "common/internal.h"

#include <stdlib.h>
#include <string.h>

int cairn__xml_next(cairn__xml_span in, size_t *pos, const char *tag, cairn__xml_span *inner)
{
    size_t tl = strlen(tag);
    char open[80], close[80];
    if (tl + 4 > sizeof open || *pos > in.len)
        return -1;
    open[0] = '<';
    memcpy(open + 1, tag, tl);
    open[tl + 1] = '>';
    close[0] = '<';
    close[1] = '/';
    memcpy(close + 2, tag, tl);
    close[tl + 2] = '>';
    const char *start = in.p + *pos, *end = in.p + in.len;
    const char *o = memmem(start, (size_t)(end - start), open, tl + 2);
    if (!o)
        return 0;
    const char *text = o + tl + 2;
    const char *c = memmem(text, (size_t)(end - text), close, tl + 3);
    if (!c)
        return -1;
    inner->p = text;
    inner->len = (size_t)(c - text);
    *pos = (size_t)(c + tl + 3 - in.p);
    return 1;
}

/* Encodes code point cp as UTF-8 at out; returns its length (0 if invalid). */
static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the reference at s[0..n) (after '&', up to but excluding ';')
 * into out; returns its UTF-8 length, 0 if unknown or invalid. */
static size_t entity(const char *s, size_t n, char *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strlen(named[i].name) == n && memcmp(s, named[i].name, n) == 0) {
            out[0] = named[i].c;
            return 1;
        }
    if (n < 2 || s[0] != '#')
        return 0;
    int hex = s[1] == 'x';
    size_t i = hex ? 2 : 1;
    if (i >= n || n - i > 8)
        return 0;
    uint32_t cp = 0;
    for (; i < n; i++) {
        char ch = s[i];
        uint32_t d;
        if (ch >= '0' && ch <= '9')
            d = (uint32_t)(ch - '0');
        else if (hex && ch >= 'a' && ch <= 'f')
            d = (uint32_t)(ch - 'a' + 10);
        else if (hex && ch >= 'A' && ch <= 'F')
            d = (uint32_t)(ch - 'A' + 10);
        else
            return 0;
        cp = cp * (hex ? 16u : 10u) + d;
        if (cp > 0x10FFFF)
            return 0;
    }
    return utf8_put(cp, out);
}

char *cairn__xml_text(cairn__xml_span inner)
{
    /* A decoded text is never longer than its source: the longest
     * expansion (&#x10FFFF; -> 4 bytes) shrinks. */
    char *out = malloc(inner.len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < inner.len;) {
        char ch = inner.p[i];
        if (ch == '<' || ch == '\0')
            goto bad;
        if (ch != '&') {
            out[o++] = ch;
            i++;
            continue;
        }
        const char *semi = memchr(inner.p + i + 1, ';', inner.len - i - 1 < 12 ? inner.len - i - 1 : 12);
        if (!semi)
            goto bad;
        size_t n = (size_t)(semi - (inner.p + i + 1));
        size_t w = entity(inner.p + i + 1, n, out + o);
        if (!w)
            goto bad;
        o += w;
        i += n + 2;
    }
    out[o] = '\0';
    if (!cairn__utf8_valid(out, o))
        goto bad;
    return out;
bad:
    free(out);
    return NULL;
}

char *cairn__xml_get(cairn__xml_span in, const char *tag)
{
    size_t pos = 0;
    cairn__xml_span inner;
    if (cairn__xml_next(in, &pos, tag, &inner) != 1)
        return NULL;
    return cairn__xml_text(inner);
}

int cairn__xml_u64(cairn__xml_span inner, uint64_t *out)
{
    if (inner.len == 0 || inner.len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < inner.len; i++) {
        char ch = inner.p[i];
        if (ch < '0' || ch > '9')
            return -1;
        if (cairn__mul_overflow(v, 10, &v) || cairn__add_overflow(v, (uint64_t)(ch - '0'), &v))
            return -1;
    }
    *out = v;
    return 0;
}

void cairn__xml_escape(const char *s, void (*put)(void *ctx, const char *p, size_t n), void *ctx)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default: continue;
        }
        put(ctx, run, (size_t)(s - run));
        put(ctx, rep, strlen(rep));
        run = s + 1;
    }
    put(ctx, run, (size_t)(s - run));
}
