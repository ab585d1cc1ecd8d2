/* dtype.c -- dtype sizes and names, and element conversions between dtypes. */
#include "common/internal.h"

/* Buffers are little-endian by contract and elements are moved with memcpy
 * into host integers, so a big-endian host would need byte swaps here. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dtype.c assumes a little-endian host"
#endif

/* ------------------------------------------------------------ the table */

typedef struct dtype_desc {
    const char *name;
    size_t size;
} dtype_desc;

static const dtype_desc dtypes[CAIRN_DTYPE_COUNT] = {
    [CAIRN_F64] = {"F64", 8},         [CAIRN_F32] = {"F32", 4},
    [CAIRN_F16] = {"F16", 2},         [CAIRN_BF16] = {"BF16", 2},
    [CAIRN_F8_E4M3] = {"F8_E4M3", 1}, [CAIRN_F8_E5M2] = {"F8_E5M2", 1},
    [CAIRN_I8] = {"I8", 1},           [CAIRN_I16] = {"I16", 2},
    [CAIRN_I32] = {"I32", 4},         [CAIRN_I64] = {"I64", 8},
    [CAIRN_U8] = {"U8", 1},           [CAIRN_U16] = {"U16", 2},
    [CAIRN_U32] = {"U32", 4},         [CAIRN_U64] = {"U64", 8},
    [CAIRN_BOOL] = {"BOOL", 1},       [CAIRN_C64] = {"C64", 8},
    [CAIRN_C128] = {"C128", 16},
};

/* The enum's underlying type is implementation-defined, so compare as int. */
static int valid(cairn_dtype d) { return (int)d > 0 && (int)d < CAIRN_DTYPE_COUNT; }

size_t cairn_dtype_size(cairn_dtype dtype) { return valid(dtype) ? dtypes[dtype].size : 0; }

const char *cairn_dtype_name(cairn_dtype dtype) { return valid(dtype) ? dtypes[dtype].name : NULL; }

/* ASCII-only folding: strcasecmp would follow the locale (Turkish "i"). */
static int ascii_upper(int c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }

static int name_equal(const char *given, const char *canonical)
{
    for (; *given && *canonical; given++, canonical++) {
        if (ascii_upper((unsigned char)*given) != *canonical)
            return 0;
    }
    return *given == *canonical;
}

cairn_dtype cairn_dtype_from_name(const char *name)
{
    if (!name)
        return CAIRN_DTYPE_INVALID;
    for (int d = 1; d < CAIRN_DTYPE_COUNT; d++) {
        if (name_equal(name, dtypes[d].name))
            return (cairn_dtype)d;
    }
    return CAIRN_DTYPE_INVALID;
}

/* --------------------------------------------------------- the families */

static int is_float(cairn_dtype d) { return d >= CAIRN_F64 && d <= CAIRN_F8_E5M2; }
static int is_complex(cairn_dtype d) { return d == CAIRN_C64 || d == CAIRN_C128; }
static int is_int(cairn_dtype d) { return d >= CAIRN_I8 && d <= CAIRN_U64; }
static int is_signed(cairn_dtype d) { return d >= CAIRN_I8 && d <= CAIRN_I64; }

/* Significand bits (with the implicit one) that a float type stores. */
static unsigned float_precision(cairn_dtype d)
{
    switch (d) {
    case CAIRN_F64: return 53;
    case CAIRN_F32: return 24;
    case CAIRN_F16: return 11;
    case CAIRN_BF16: return 8;
    default: return 0; /* F8: too coarse to be an integer target */
    }
}

/* Value bits of an integer source: the significand a float needs to hold
 * every value exactly. Range is never the limit: an integer source narrow
 * enough for a float's significand stays far below its largest finite value. */
static unsigned int_value_bits(cairn_dtype d)
{
    if (d == CAIRN_BOOL)
        return 1;
    return (unsigned)(8 * dtypes[d].size) - (is_signed(d) ? 1u : 0u);
}

static int int_widens(cairn_dtype from, cairn_dtype to)
{
    if (!is_int(to))
        return 0;
    if (from == CAIRN_BOOL)
        return 1;
    if (is_signed(from))
        return is_signed(to) && dtypes[to].size > dtypes[from].size;
    return dtypes[to].size > dtypes[from].size; /* unsigned: any wider type holds it */
}

static int int_to_float_exact(cairn_dtype from, cairn_dtype to)
{
    return int_value_bits(from) <= float_precision(to);
}

int cairn_dtype_can_convert(cairn_dtype from, cairn_dtype to)
{
    if (!valid(from) || !valid(to))
        return 0;
    if (from == to)
        return 1;
    if (is_float(from) && is_float(to))
        return 1;
    if (is_complex(from) && is_complex(to))
        return 1;
    if (is_int(from) || from == CAIRN_BOOL) {
        if (is_float(to))
            return int_to_float_exact(from, to);
        return int_widens(from, to);
    }
    return 0;
}

/* Why a pair is refused: the error message must let a user fix the call. */
static const char *refusal_reason(cairn_dtype from, cairn_dtype to)
{
    if (is_complex(from) != is_complex(to))
        return "complex and real values do not convert into each other";
    if (is_float(from))
        return "float to integer would lose fractions, NaN and range";
    if (to == CAIRN_BOOL)
        return "only BOOL converts to BOOL";
    if (is_float(to) && float_precision(to) == 0)
        return "the F8 types take no integer sources";
    if (is_float(to))
        return "the float type cannot hold every value of the integer type exactly";
    if (is_signed(from) && !is_signed(to))
        return "unsigned types cannot hold negative values";
    if (dtypes[to].size < dtypes[from].size)
        return "narrowing an integer may lose values";
    return "the signed type of the same width cannot hold the largest unsigned values";
}

/* ------------------------------------------------- narrow float formats */

/* A binary float of at most 16 bits, described well enough to round into it
 * and decode out of it. */
typedef struct small_float {
    unsigned exp_bits, man_bits;
    int bias;
    int has_inf;     /* 0: the all-ones exponent holds numbers too (E4M3 "fn") */
    uint32_t nan;    /* the canonical quiet NaN, sign bit clear */
    uint32_t max;    /* the largest finite magnitude, as a code */
} small_float;

static const small_float FMT_F16 = {5, 10, 15, 1, 0x7E00, 0x7BFF};
static const small_float FMT_BF16 = {8, 7, 127, 1, 0x7FC0, 0x7F7F};
static const small_float FMT_E4M3 = {4, 3, 7, 0, 0x7F, 0x7E};
static const small_float FMT_E5M2 = {5, 2, 15, 1, 0x7E, 0x7B};

#define F64_EXP_ALL UINT64_C(0x7FF0000000000000)
#define F64_QUIET UINT64_C(0x0008000000000000)
#define F64_MAN_MASK UINT64_C(0x000FFFFFFFFFFFFF)

/* Rounds a binary64 (as bits) to the nearest code of `f`, ties to even, in
 * one step from the exact value: going through F32 first would round twice. */
static uint32_t encode_small(uint64_t bits, const small_float *f)
{
    uint32_t sign = (uint32_t)(bits >> 63) << (f->exp_bits + f->man_bits);
    uint32_t exp_all = ((1u << f->exp_bits) - 1) << f->man_bits;
    uint32_t overflow = f->has_inf ? exp_all : f->nan;
    int dexp = (int)((bits >> 52) & 0x7FF);
    uint64_t man = bits & F64_MAN_MASK;

    if (dexp == 0x7FF)
        return sign | (man != 0 || !f->has_inf ? f->nan : exp_all);
    /* Zeros, and binary64 subnormals, which lie far below half the smallest
     * subnormal of every narrow type. */
    if (dexp == 0)
        return sign;

    uint64_t sig = man | (UINT64_C(1) << 52);
    int texp = dexp - 1023 + f->bias;
    int shift = 52 - (int)f->man_bits;
    if (texp < 1) { /* a subnormal result: fewer significand bits survive */
        shift += 1 - texp;
        texp = 1;
    }
    /* Under 2^-11 of the smallest subnormal: zero, and the shifts below
     * stay defined. */
    if (shift > 63)
        return sign;
    uint64_t half = UINT64_C(1) << (shift - 1);
    uint64_t q = (sig + (half - 1) + ((sig >> shift) & 1)) >> shift;
    /* q keeps the implicit bit, so adding it to the exponent field minus one
     * lets a rounding carry move into the exponent; for subnormals texp is 1
     * and q alone is the code. */
    uint64_t code = ((uint64_t)(texp - 1) << f->man_bits) + q;
    return sign | (code > f->max ? overflow : (uint32_t)code);
}

/* The exact binary64 value of a code of `f`. NaNs keep their sign and
 * payload and come out quiet, as hardware widening conversions do. */
static uint64_t decode_small(uint32_t code, const small_float *f)
{
    unsigned m = f->man_bits;
    uint32_t exp_mask = (1u << f->exp_bits) - 1;
    uint32_t man_mask = (1u << m) - 1;
    uint64_t sign = (uint64_t)((code >> (f->exp_bits + m)) & 1) << 63;
    int e = (int)((code >> m) & exp_mask);
    uint64_t man = code & man_mask;

    if ((uint32_t)e == exp_mask && (f->has_inf || man == man_mask)) {
        if (man == 0)
            return sign | F64_EXP_ALL;
        return sign | F64_EXP_ALL | F64_QUIET | (man << (52 - m));
    }
    if (e == 0) {
        if (man == 0)
            return sign;
        e = 1; /* subnormal: normalize so binary64 gets an implicit bit */
        while (!(man & (UINT64_C(1) << m))) {
            man <<= 1;
            e--;
        }
        man &= man_mask;
    }
    return sign | ((uint64_t)(e - f->bias + 1023) << 52) | (man << (52 - m));
}

/* ------------------------------------------------------ hot fast paths */

/* F32 <-> F16 and F32 <-> BF16 run over whole tensors on load, so they are
 * branch-free selects over 32-bit lanes that the compiler can vectorize
 * (GCC does at -O3, clang at -O2). Their results equal the generic path's
 * for every one of the 2^32 F32 inputs. */

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static uint16_t f32_to_f16(uint32_t x)
{
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t a = x & 0x7FFFFFFF;
    /* Normal results: rebias 127 -> 15 and round the 13 dropped bits to
     * nearest even by adding just under half plus the kept lowest bit. */
    uint32_t normal = (a - 0x38000000u + 0x0FFFu + ((a >> 13) & 1)) >> 13;
    /* Subnormal results: adding 0.5 makes the float unit do the rounding,
     * since the ulp of [0.5, 1) is 2^-24, the F16 subnormal step; exact
     * under the default round-to-nearest-even mode, which the library
     * assumes everywhere, and it vectorizes where a variable shift would not. */
    float mag;
    memcpy(&mag, &a, sizeof mag);
    uint32_t sub = f32_bits(mag + 0.5f) - 0x3F000000u;
    /* Disjoint masks, not ?:, so the float add is always used: otherwise GCC
     * sinks it into a branch it may not speculate under -ftrapping-math,
     * and the loop stays scalar. */
    uint32_t is_nan = 0u - (uint32_t)(a > 0x7F800000u);
    uint32_t is_inf = (0u - (uint32_t)(a >= 0x477FF000u)) & ~is_nan; /* >= 65520, and Inf */
    uint32_t is_sub = 0u - (uint32_t)(a < 0x38800000u);            /* below 2^-14 */
    uint32_t is_normal = ~(is_nan | is_inf | is_sub);
    uint32_t r = (0x7E00u & is_nan) | (0x7C00u & is_inf) | (sub & is_sub) | (normal & is_normal);
    return (uint16_t)(sign | r);
}

static uint32_t f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t a = h & 0x7FFFu;
    uint32_t normal = (a << 13) + 0x38000000u;
    uint32_t special = (a << 13) | 0x7F800000u | (a > 0x7C00u ? 0x00400000u : 0);
    /* Subnormals scale exactly: a < 2^10 and the product is a normal F32.
     * Mask select for the same reason as in f32_to_f16. */
    uint32_t sub = f32_bits((float)a * 0x1p-24f);
    uint32_t is_sub = 0u - (uint32_t)(a < 0x0400u);
    uint32_t is_special = 0u - (uint32_t)(a >= 0x7C00u);
    uint32_t r = (sub & is_sub) | (special & is_special) | (normal & ~(is_sub | is_special));
    return sign | r;
}

static uint16_t f32_to_bf16(uint32_t x)
{
    uint32_t a = x & 0x7FFFFFFF;
    /* Rounding the low half also carries FLT_MAX-sized values into Inf. */
    uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1)) >> 16;
    uint32_t nan = ((x >> 16) & 0x8000) | 0x7FC0u;
    return (uint16_t)(a > 0x7F800000u ? nan : rounded);
}

static uint32_t bf16_to_f32(uint16_t h)
{
    uint32_t r = (uint32_t)h << 16;
    return (h & 0x7FFF) > 0x7F80 ? r | 0x00400000u : r;
}

/* C casts between float and double are IEEE conversions: exact widening
 * (quieting signaling NaNs) and correctly rounded narrowing. */
static double f32_to_f64(float x) { return x; }
static float f64_to_f32(double x) { return (float)x; }

/* The fast paths: NAME converts n elements of type FROM (their bits or
 * value, unaligned, little-endian) to type TO through CONVERT. */
#define FAST_RUN(name, from, to, convert)                                                   \
    static void name(const unsigned char *restrict s, unsigned char *restrict d, size_t n) \
    {                                                                                       \
        for (size_t i = 0; i < n; i++) {                                                    \
            from x;                                                                         \
            memcpy(&x, s + sizeof x * i, sizeof x);                                         \
            to y = convert(x);                                                              \
            memcpy(d + sizeof y * i, &y, sizeof y);                                         \
        }                                                                                   \
    }

FAST_RUN(run_f32_to_f16, uint32_t, uint16_t, f32_to_f16)
FAST_RUN(run_f16_to_f32, uint16_t, uint32_t, f16_to_f32)
FAST_RUN(run_f32_to_bf16, uint32_t, uint16_t, f32_to_bf16)
FAST_RUN(run_bf16_to_f32, uint16_t, uint32_t, bf16_to_f32)
FAST_RUN(run_f32_to_f64, float, double, f32_to_f64)
FAST_RUN(run_f64_to_f32, double, float, f64_to_f32)

/* --------------------------------------------------- the generic paths */

static const small_float *narrow_format(cairn_dtype d)
{
    switch (d) {
    case CAIRN_F16: return &FMT_F16;
    case CAIRN_BF16: return &FMT_BF16;
    case CAIRN_F8_E4M3: return &FMT_E4M3;
    case CAIRN_F8_E5M2: return &FMT_E5M2;
    default: return NULL;
    }
}

static uint64_t f64_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* Integer sources of a conversion: every one that may widen fits in int64
 * (U64 only ever converts to itself, by memcpy). */
static int64_t load_int(cairn_dtype d, const unsigned char *p)
{
    switch (d) {
    case CAIRN_I8: { int8_t v; memcpy(&v, p, 1); return v; }
    case CAIRN_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case CAIRN_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case CAIRN_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case CAIRN_U8: return p[0];
    case CAIRN_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case CAIRN_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: return p[0] != 0; /* BOOL: any non-zero byte is true */
    }
}

/* The exact binary64 value of one element of a float, integer or BOOL type. */
static uint64_t load_as_f64(cairn_dtype d, const unsigned char *p)
{
    switch (d) {
    case CAIRN_F64: { uint64_t v; memcpy(&v, p, 8); return v; }
    case CAIRN_F32: { float v; memcpy(&v, p, 4); return f64_bits(v); }
    case CAIRN_F16: { uint16_t v; memcpy(&v, p, 2); return decode_small(v, &FMT_F16); }
    case CAIRN_BF16: { uint16_t v; memcpy(&v, p, 2); return decode_small(v, &FMT_BF16); }
    case CAIRN_F8_E4M3: return decode_small(p[0], &FMT_E4M3);
    case CAIRN_F8_E5M2: return decode_small(p[0], &FMT_E5M2);
    default: return f64_bits((double)load_int(d, p));
    }
}

static void store_from_f64(cairn_dtype d, unsigned char *p, uint64_t bits)
{
    switch (d) {
    case CAIRN_F64: memcpy(p, &bits, 8); return;
    case CAIRN_F32: {
        double x;
        memcpy(&x, &bits, 8);
        float y = (float)x;
        memcpy(p, &y, 4);
        return;
    }
    default: {
        const small_float *f = narrow_format(d);
        uint32_t code = encode_small(bits, f);
        if (f->exp_bits + f->man_bits + 1 == 16) {
            uint16_t v = (uint16_t)code;
            memcpy(p, &v, 2);
        } else {
            p[0] = (uint8_t)code;
        }
        return;
    }
    }
}

/* Any float or exactly representable integer source to any float target,
 * one element at a time through its exact binary64 value. */
static void run_via_f64(cairn_dtype from, const unsigned char *s, cairn_dtype to, unsigned char *d,
                        size_t n)
{
    size_t ss = dtypes[from].size, ds = dtypes[to].size;
    for (size_t i = 0; i < n; i++)
        store_from_f64(to, d + ds * i, load_as_f64(from, s + ss * i));
}

static void run_float(cairn_dtype from, const unsigned char *s, cairn_dtype to, unsigned char *d,
                      size_t n)
{
    if (from == CAIRN_F32 && to == CAIRN_F16)
        run_f32_to_f16(s, d, n);
    else if (from == CAIRN_F16 && to == CAIRN_F32)
        run_f16_to_f32(s, d, n);
    else if (from == CAIRN_F32 && to == CAIRN_BF16)
        run_f32_to_bf16(s, d, n);
    else if (from == CAIRN_BF16 && to == CAIRN_F32)
        run_bf16_to_f32(s, d, n);
    else if (from == CAIRN_F32 && to == CAIRN_F64)
        run_f32_to_f64(s, d, n);
    else if (from == CAIRN_F64 && to == CAIRN_F32)
        run_f64_to_f32(s, d, n);
    else
        run_via_f64(from, s, to, d, n);
}

/* Stores the low bytes: the value is known to fit the target. */
static void run_int(cairn_dtype from, const unsigned char *s, cairn_dtype to, unsigned char *d,
                    size_t n)
{
    size_t ss = dtypes[from].size, ds = dtypes[to].size;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (uint64_t)load_int(from, s + ss * i);
        memcpy(d + ds * i, &v, ds);
    }
}

cairn_status cairn_convert(cairn_dtype from, const void *src, cairn_dtype to, void *dst,
                           size_t count, cairn_error *err)
{
    if (!valid(from) || !valid(to))
        return cairn__fail(err, CAIRN_E_ARG, "convert: invalid dtype code %d -> %d", (int)from,
                           (int)to);
    if (!cairn_dtype_can_convert(from, to))
        return cairn__fail(err, CAIRN_E_DTYPE, "cannot convert %s to %s: %s", dtypes[from].name,
                           dtypes[to].name, refusal_reason(from, to));
    size_t widest = dtypes[from].size > dtypes[to].size ? dtypes[from].size : dtypes[to].size;
    if (count > SIZE_MAX / widest)
        return cairn__fail(err, CAIRN_E_ARG, "convert: %zu elements overflow the address space",
                           count);
    if (count == 0)
        return CAIRN_OK;
    if (!src || !dst)
        return cairn__fail(err, CAIRN_E_ARG, "convert %s to %s: NULL buffer for %zu elements",
                           dtypes[from].name, dtypes[to].name, count);

    const unsigned char *s = src;
    unsigned char *d = dst;
    if (from == to)
        memcpy(d, s, count * dtypes[from].size);
    else if (is_complex(from)) /* component-wise: two floats per element */
        run_float(from == CAIRN_C64 ? CAIRN_F32 : CAIRN_F64, s,
                  to == CAIRN_C64 ? CAIRN_F32 : CAIRN_F64, d, 2 * count);
    else if (is_float(to))
        run_float(from, s, to, d, count);
    else
        run_int(from, s, to, d, count);
    return CAIRN_OK;
}

/* ------------------------------------------------------------ byte swap */

/* Reverses the bytes of each of the `count` BITS-bit elements at p. */
#define SWAP_EACH(bits)                                 \
    for (size_t i = 0; i < count; i++) {                \
        uint##bits##_t v;                               \
        memcpy(&v, p + sizeof v * i, sizeof v);         \
        v = __builtin_bswap##bits(v);                   \
        memcpy(p + sizeof v * i, &v, sizeof v);         \
    }

void cairn__byteswap(void *buf, size_t count, size_t elem_size)
{
    unsigned char *p = buf;
    switch (elem_size) {
    case 1: return;
    case 2: SWAP_EACH(16); return;
    case 4: SWAP_EACH(32); return;
    case 8: SWAP_EACH(64); return;
    default: /* no dtype component has this size; reversing keeps the call total */
        for (size_t i = 0; i < count; i++) {
            unsigned char *e = p + elem_size * i;
            for (size_t a = 0, b = elem_size; a + 1 < b; a++, b--) {
                unsigned char t = e[a];
                e[a] = e[b - 1];
                e[b - 1] = t;
            }
        }
        return;
    }
}
