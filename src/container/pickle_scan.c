/* pickle_scan.c -- the restricted pickle machine's look ahead: before a run,
 * one pass over the opcodes finds the memo entries the pickle ever reads
 * back (GET). Protocol 2 and later memoize nearly every object, but a
 * pickler reads back only what is shared (a global, a storage class, a
 * repeated string): an entry nobody reads again need not keep its object
 * alive, so the machine frees the arguments of a tensor's rebuild call once
 * the call is done instead of keeping every one until the end (pickle.h).
 *
 * The pass sizes each opcode the machine accepts exactly as the machine's
 * decoder does; at an opcode the machine refuses, or a truncated one, it
 * stops, since the run stops there too. It never allocates from a number it
 * has not bounded: memo indexes are bits below the pickle's size. Inert
 * mode uses it too, unless the pickle may hold a joblib array: such an
 * array's bytes follow its BUILD outside any opcode, where a pass that does
 * not run the pickle cannot tell them apart (cairn__pickle_scannable). */
#include "container/pickle.h"

#include <stdlib.h>

static uint64_t le(const uint8_t *b, unsigned width)
{
    return width == 1 ? b[0] : width == 2 ? cairn__le16(b) : width == 4 ? cairn__le32(b)
                                                                       : cairn__le64(b);
}

/* Bytes of argument after the opcode at p[0] (p + n is the pickle's end),
 * or SIZE_MAX when the machine would refuse it or it runs past the end. */
static size_t arg_bytes(const uint8_t *p, size_t n)
{
    size_t left = n - 1;
    const uint8_t *a = p + 1;
    unsigned width = 0; /* a length of this many bytes, then that many bytes */
    size_t fixed = 0;
    switch (p[0]) {
    case 0x80: /* PROTO */
    case 'K': case 'h': case 'q': fixed = 1; break;
    case 'M': fixed = 2; break;
    case 'J': case 'j': case 'r': fixed = 4; break;
    case 0x95: case 'G': fixed = 8; break; /* FRAME, BINFLOAT */
    case 0x8a: case 0x8c: case 'U': case 'C': width = 1; break;
    case 0x8b: case 'X': case 'T': case 'B': width = 4; break;
    case 0x8d: case 0x8e: case 0x96: width = 8; break; /* 0x96: BYTEARRAY8 (inert mode) */
    case 'c': { /* GLOBAL: two lines */
        const uint8_t *nl = memchr(a, '\n', left);
        const uint8_t *nl2 = nl ? memchr(nl + 1, '\n', left - (size_t)(nl + 1 - a)) : NULL;
        return nl2 ? (size_t)(nl2 + 1 - a) : SIZE_MAX;
    }
    case '(': case '.': case '}': case ']': case ')': case 0x8f: case 't': case 0x91:
    case 0x85: case 0x86: case 0x87: case 'a': case 'e': case 's': case 'u': case 0x90:
    case 0x94: case 'N': case 0x88: case 0x89: case 0x93: case 'R': case 'b': case 0x81:
    case 'Q': return 0;
    default: return SIZE_MAX;
    }
    if (fixed)
        return fixed <= left ? fixed : SIZE_MAX;
    if (left < width)
        return SIZE_MAX;
    uint64_t len = le(a, width);
    return len > left - width ? SIZE_MAX : width + (size_t)len;
}

/* Sets bit `index` of *b, growing it (zeroed) as needed; 0 when out of
 * memory. Indexes are below the pickle's size (callers check). */
int cairn__pk_bits_set(cairn__pk_bits *b, uint64_t index)
{
    size_t word = (size_t)(index / 64);
    if (word >= b->words) {
        size_t words = b->words ? b->words : 4;
        while (words <= word)
            words *= 2;
        uint64_t *w = realloc(b->w, words * sizeof *w);
        if (!w)
            return 0;
        memset(w + b->words, 0, (words - b->words) * sizeof *w);
        b->w = w;
        b->words = words;
    }
    b->w[word] |= UINT64_C(1) << (index % 64);
    return 1;
}

int cairn__pk_bits_get(const cairn__pk_bits *b, uint64_t index)
{
    return index / 64 < b->words && (b->w[index / 64] >> (index % 64) & 1);
}

void cairn__pk_bits_free(cairn__pk_bits *b)
{
    free(b->w);
    memset(b, 0, sizeof *b);
}

/* The run reads bytes outside any opcode only at the BUILD of an inert
 * object whose class is joblib.numpy_pickle.NumpyArrayWrapper. That class
 * string is made from a GLOBAL's text or from STACK_GLOBAL's two strings,
 * joined by a '.', so "NumpyArrayWrapper" (which has no '.') is one piece of
 * a string the pickle spells out before the first such BUILD: the pickles
 * without it have no bytes outside opcodes. (The only string an allowed
 * global makes, torch.device's "type:index", ends in a digit or is its
 * argument, which the pickle spells out.) */
int cairn__pickle_scannable(const cairn__pickle_host *host, const uint8_t *p, size_t len)
{
    static const char wrapper[] = "NumpyArrayWrapper";
    return !host->inert || !memmem(p, len, wrapper, sizeof wrapper - 1);
}

cairn_status cairn__pickle_scan(cairn__pk_scan *s, const uint8_t *p, size_t len,
                                cairn_error *err)
{
    memset(s, 0, sizeof *s);
    size_t pos = 0;
    while (pos < len && p[pos] != '.') {
        size_t n = arg_bytes(p + pos, len - pos);
        if (n == SIZE_MAX)
            break; /* the run stops here too */
        uint8_t op = p[pos];
        uint64_t index = op == 'h' || op == 'j' ? le(p + pos + 1, op == 'h' ? 1 : 4) : 0;
        /* The run refuses a memo index beyond the pickle's size. */
        if ((op == 'h' || op == 'j') && index < len && !cairn__pk_bits_set(&s->gotten, index)) {
            cairn__pk_scan_free(s);
            return cairn__fail(err, CAIRN_E_NOMEM, "out of memory for the pickle's memo map");
        }
        pos += 1 + n;
    }
    s->rank = malloc((s->gotten.words ? s->gotten.words : 1) * sizeof *s->rank);
    if (!s->rank) {
        cairn__pk_scan_free(s);
        return cairn__fail(err, CAIRN_E_NOMEM, "out of memory for the pickle's memo map");
    }
    uint32_t total = 0;
    for (size_t w = 0; w < s->gotten.words; w++) {
        s->rank[w] = total;
        total += (uint32_t)__builtin_popcountll(s->gotten.w[w]);
    }
    s->count = total;
    s->on = 1;
    return CAIRN_OK;
}

int64_t cairn__pk_scan_slot(const cairn__pk_scan *s, uint64_t index)
{
    if (!cairn__pk_bits_get(&s->gotten, index))
        return -1;
    uint64_t word = s->gotten.w[index / 64], bit = UINT64_C(1) << (index % 64);
    return (int64_t)s->rank[index / 64] + __builtin_popcountll(word & (bit - 1));
}

void cairn__pk_scan_free(cairn__pk_scan *s)
{
    cairn__pk_bits_free(&s->gotten);
    free(s->rank);
    memset(s, 0, sizeof *s);
}
