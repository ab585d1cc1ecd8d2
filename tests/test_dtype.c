/* test_dtype.c -- dtype names and sizes, the conversion rules, exact float rounding. */
#include "cairn.h"
#include "common/internal.h"
#include "testutil.h"

#include <float.h>
#include <math.h>

/* ------------------------------------------------------------- helpers */

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}
static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Converts one element of at most 8 bytes given as its little-endian bits. */
static uint64_t cv(cairn_dtype from, uint64_t in, cairn_dtype to)
{
    uint64_t out = 0;
    cairn_error err;
    CHECK_OK(cairn_convert(from, &in, to, &out, 1, &err));
    return out;
}

static uint64_t f32_to(cairn_dtype to, float x) { return cv(CAIRN_F32, fbits(x), to); }
static uint64_t f64_to(cairn_dtype to, double x) { return cv(CAIRN_F64, dbits(x), to); }
static double to_f64(cairn_dtype from, uint64_t code) { return bitsd(cv(from, code, CAIRN_F64)); }

/* An independent model of each narrow format, for the oracle below. */
typedef struct fmt {
    cairn_dtype dtype;
    int exp_bits, man_bits, bias;
    uint32_t max; /* largest finite positive code; max + 1 is Inf (or E4M3's NaN) */
} fmt;

static const fmt FMTS[] = {
    {CAIRN_F16, 5, 10, 15, 0x7BFF},
    {CAIRN_BF16, 8, 7, 127, 0x7F7F},
    {CAIRN_F8_E4M3, 4, 3, 7, 0x7E},
    {CAIRN_F8_E5M2, 5, 2, 15, 0x7B},
};

/* The value of a positive code straight from the definition (valid for
 * max + 1 too, which gives the first value past the range). */
static double model_value(const fmt *f, uint32_t code)
{
    int e = (int)(code >> f->man_bits);
    double man = (double)(code & ((1u << f->man_bits) - 1));
    if (e == 0)
        return ldexp(man, 1 - f->bias - f->man_bits);
    return ldexp(man + ldexp(1, f->man_bits), e - f->bias - f->man_bits);
}

static int is_nan_code(const fmt *f, uint32_t code)
{
    uint32_t mag = code & ((1u << (f->exp_bits + f->man_bits)) - 1);
    return mag > f->max + (f->dtype == CAIRN_F8_E4M3 ? 0u : 1u);
}

/* Nearest code to a finite x by binary search over every value; ties go to
 * the even code. Beyond max it answers max + 1, the overflow code. */
static uint32_t oracle(const fmt *f, double x)
{
    uint32_t sign = signbit(x) ? 1u << (f->exp_bits + f->man_bits) : 0;
    x = fabs(x);
    uint32_t lo = 0, hi = f->max; /* largest k with value(k) <= x */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (model_value(f, mid) <= x)
            lo = mid;
        else
            hi = mid - 1;
    }
    double v = model_value(f, lo);
    if (v == x)
        return sign | lo;
    double half = (v + model_value(f, lo + 1)) / 2;
    if (x < half)
        return sign | lo;
    if (x > half)
        return sign | (lo + 1);
    return sign | ((lo & 1) ? lo + 1 : lo);
}

static size_t fmt_size(const fmt *f) { return cairn_dtype_size(f->dtype); }

/* ------------------------------------------------------- names, sizes */

static void test_names(void)
{
    static const struct {
        cairn_dtype d;
        const char *name;
        size_t size;
    } all[] = {
        {CAIRN_F64, "F64", 8},   {CAIRN_F32, "F32", 4},   {CAIRN_F16, "F16", 2},
        {CAIRN_BF16, "BF16", 2}, {CAIRN_F8_E4M3, "F8_E4M3", 1}, {CAIRN_F8_E5M2, "F8_E5M2", 1},
        {CAIRN_I8, "I8", 1},     {CAIRN_I16, "I16", 2},   {CAIRN_I32, "I32", 4},
        {CAIRN_I64, "I64", 8},   {CAIRN_U8, "U8", 1},     {CAIRN_U16, "U16", 2},
        {CAIRN_U32, "U32", 4},   {CAIRN_U64, "U64", 8},   {CAIRN_BOOL, "BOOL", 1},
        {CAIRN_C64, "C64", 8},   {CAIRN_C128, "C128", 16},
    };
    CHECK(sizeof all / sizeof all[0] == CAIRN_DTYPE_COUNT - 1);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK((int)all[i].d == (int)i + 1); /* the codes are pinned */
        CHECK(cairn_dtype_size(all[i].d) == all[i].size);
        const char *n = cairn_dtype_name(all[i].d);
        CHECK(n && strcmp(n, all[i].name) == 0);
        CHECK(cairn_dtype_from_name(all[i].name) == all[i].d);
        char lower[16];
        size_t k = 0;
        for (; all[i].name[k]; k++)
            lower[k] = (char)(all[i].name[k] >= 'A' && all[i].name[k] <= 'Z' ? all[i].name[k] + 32
                                                                             : all[i].name[k]);
        lower[k] = '\0';
        CHECK(cairn_dtype_from_name(lower) == all[i].d);
    }
    CHECK(cairn_dtype_from_name("f8_E4m3") == CAIRN_F8_E4M3);
    CHECK(cairn_dtype_from_name("Bool") == CAIRN_BOOL);
    CHECK(cairn_dtype_size(CAIRN_DTYPE_INVALID) == 0);
    CHECK(cairn_dtype_size((cairn_dtype)CAIRN_DTYPE_COUNT) == 0);
    CHECK(cairn_dtype_size((cairn_dtype)-1) == 0);
    CHECK(cairn_dtype_name(CAIRN_DTYPE_INVALID) == NULL);
    CHECK(cairn_dtype_name((cairn_dtype)CAIRN_DTYPE_COUNT) == NULL);
    CHECK(cairn_dtype_name((cairn_dtype)-1) == NULL);
    CHECK(cairn_dtype_from_name(NULL) == CAIRN_DTYPE_INVALID);
    CHECK(cairn_dtype_from_name("") == CAIRN_DTYPE_INVALID);
    CHECK(cairn_dtype_from_name("F3") == CAIRN_DTYPE_INVALID);
    CHECK(cairn_dtype_from_name("F322") == CAIRN_DTYPE_INVALID);
    CHECK(cairn_dtype_from_name("F32 ") == CAIRN_DTYPE_INVALID);
    CHECK(cairn_dtype_from_name("float32") == CAIRN_DTYPE_INVALID);
    CHECK(cairn_dtype_from_name("F8_E4M3FN") == CAIRN_DTYPE_INVALID);
}

/* -------------------------------------------------------------- rules */

static void test_rules(void)
{
    int allowed = 0;
    for (int a = 0; a <= CAIRN_DTYPE_COUNT; a++) {
        for (int b = 0; b <= CAIRN_DTYPE_COUNT; b++) {
            cairn_dtype from = (cairn_dtype)a, to = (cairn_dtype)b;
            int ok = cairn_dtype_can_convert(from, to);
            unsigned char src[32] = {0}, dst[32];
            cairn_error err;
            cairn_status st = cairn_convert(from, src, to, dst, 2, &err);
            if (a == 0 || b == 0 || a == CAIRN_DTYPE_COUNT || b == CAIRN_DTYPE_COUNT) {
                CHECK(!ok);
                CHECK_ST(st, CAIRN_E_ARG);
                continue;
            }
            allowed += ok;
            CHECK_ST(st, ok ? CAIRN_OK : CAIRN_E_DTYPE);
            if (!ok) {
                CHECK(err.status == CAIRN_E_DTYPE);
                CHECK(strstr(err.message, cairn_dtype_name(from)) != NULL);
                CHECK(strstr(err.message, cairn_dtype_name(to)) != NULL);
            }
        }
    }
    /* 36 float pairs, 4 complex pairs, 9 integer/BOOL identities, 6 signed
     * and 12 unsigned widenings, 8 from BOOL, and 18 integer -> float. */
    CHECK(allowed == 93);

    static const cairn_dtype yes[][2] = {
        {CAIRN_I8, CAIRN_I16},   {CAIRN_I8, CAIRN_I64},   {CAIRN_I32, CAIRN_I64},
        {CAIRN_U8, CAIRN_U16},   {CAIRN_U8, CAIRN_I16},   {CAIRN_U16, CAIRN_I32},
        {CAIRN_U32, CAIRN_I64},  {CAIRN_U32, CAIRN_U64},  {CAIRN_BOOL, CAIRN_I8},
        {CAIRN_BOOL, CAIRN_U64}, {CAIRN_BOOL, CAIRN_BOOL}, {CAIRN_I8, CAIRN_F16},
        {CAIRN_U8, CAIRN_BF16},  {CAIRN_BOOL, CAIRN_F16}, {CAIRN_I16, CAIRN_F32},
        {CAIRN_U16, CAIRN_F32},  {CAIRN_I32, CAIRN_F64},  {CAIRN_U32, CAIRN_F64},
        {CAIRN_F8_E4M3, CAIRN_F8_E5M2}, {CAIRN_F64, CAIRN_F8_E4M3}, {CAIRN_C64, CAIRN_C128},
        {CAIRN_C128, CAIRN_C64}, {CAIRN_U64, CAIRN_U64},  {CAIRN_I64, CAIRN_I64},
    };
    static const cairn_dtype no[][2] = {
        {CAIRN_U8, CAIRN_I8},    {CAIRN_I64, CAIRN_I32},  {CAIRN_F32, CAIRN_I32},
        {CAIRN_U32, CAIRN_I32},  {CAIRN_I32, CAIRN_F32},  {CAIRN_I8, CAIRN_U16},
        {CAIRN_I8, CAIRN_BOOL},  {CAIRN_U8, CAIRN_BOOL},  {CAIRN_F32, CAIRN_BOOL},
        {CAIRN_I16, CAIRN_F16},  {CAIRN_U16, CAIRN_BF16}, {CAIRN_I64, CAIRN_F64},
        {CAIRN_U64, CAIRN_F64},  {CAIRN_U64, CAIRN_I64},  {CAIRN_I8, CAIRN_F8_E4M3},
        {CAIRN_BOOL, CAIRN_F8_E5M2}, {CAIRN_F32, CAIRN_C64}, {CAIRN_C64, CAIRN_F32},
        {CAIRN_C128, CAIRN_F64}, {CAIRN_I32, CAIRN_C128}, {CAIRN_F16, CAIRN_I8},
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK(cairn_dtype_can_convert(yes[i][0], yes[i][1]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK(!cairn_dtype_can_convert(no[i][0], no[i][1]));
}

static void test_errors(void)
{
    cairn_error err;
    float f = 1.0f;
    int32_t i = 0;
    err.status = CAIRN_OK;
    CHECK_ST(cairn_convert(CAIRN_F32, &f, CAIRN_I32, &i, 1, &err), CAIRN_E_DTYPE);
    CHECK(err.status == CAIRN_E_DTYPE);
    CHECK(strstr(err.message, "cannot convert F32 to I32") != NULL);
    CHECK(i == 0);
    CHECK_ST(cairn_convert(CAIRN_F32, &f, CAIRN_I32, &i, 1, NULL), CAIRN_E_DTYPE);
    CHECK_ST(cairn_convert(CAIRN_DTYPE_INVALID, &f, CAIRN_F32, &i, 1, &err), CAIRN_E_ARG);
    CHECK(err.status == CAIRN_E_ARG);
    CHECK_ST(cairn_convert(CAIRN_F32, &f, (cairn_dtype)99, &i, 1, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_convert(CAIRN_F32, NULL, CAIRN_F64, &i, 1, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_convert(CAIRN_F32, &f, CAIRN_F64, NULL, 1, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_convert(CAIRN_F32, NULL, CAIRN_F64, NULL, 0, &err), CAIRN_OK);
    CHECK_ST(cairn_convert(CAIRN_F32, NULL, CAIRN_F32, NULL, 0, NULL), CAIRN_OK);
    CHECK_ST(cairn_convert(CAIRN_C128, &f, CAIRN_C128, &i, SIZE_MAX / 8, &err), CAIRN_E_ARG);
}

/* ------------------------------------------------------- F32 -> F16/BF16 */

static void test_f32_to_f16(void)
{
    CHECK(f32_to(CAIRN_F16, 1.0f) == 0x3C00);
    CHECK(f32_to(CAIRN_F16, -2.0f) == 0xC000);
    CHECK(f32_to(CAIRN_F16, 65504.0f) == 0x7BFF);
    CHECK(f32_to(CAIRN_F16, 65520.0f) == 0x7C00);  /* overflow by rounding */
    CHECK(f32_to(CAIRN_F16, -65520.0f) == 0xFC00);
    CHECK(f32_to(CAIRN_F16, 65519.99f) == 0x7BFF);
    CHECK(cv(CAIRN_F32, 0x477FEFFF, CAIRN_F16) == 0x7BFF); /* the float just below 65520 */
    CHECK(f32_to(CAIRN_F16, 1e10f) == 0x7C00);
    CHECK(f32_to(CAIRN_F16, ldexpf(1, -24)) == 0x0001);
    CHECK(f32_to(CAIRN_F16, ldexpf(1, -25)) == 0x0000);     /* tie to even: 0 */
    CHECK(f32_to(CAIRN_F16, -ldexpf(1, -25)) == 0x8000);
    CHECK(f32_to(CAIRN_F16, ldexpf(3, -25)) == 0x0002);     /* tie to even: up */
    CHECK(f32_to(CAIRN_F16, ldexpf(5, -25)) == 0x0002);     /* tie to even: down */
    CHECK(f32_to(CAIRN_F16, nextafterf(ldexpf(1, -25), 1)) == 0x0001);
    CHECK(f32_to(CAIRN_F16, ldexpf(1023, -24)) == 0x03FF);  /* largest subnormal */
    CHECK(f32_to(CAIRN_F16, ldexpf(1, -14)) == 0x0400);     /* smallest normal */
    CHECK(f32_to(CAIRN_F16, ldexpf(2047, -25)) == 0x0400);  /* tie rounds up into the normals */
    CHECK(f32_to(CAIRN_F16, 1.0f + ldexpf(1, -11)) == 0x3C00);
    CHECK(f32_to(CAIRN_F16, 1.0f + ldexpf(3, -11)) == 0x3C02);
    CHECK(f32_to(CAIRN_F16, 1.0f + ldexpf(1, -10)) == 0x3C01);
    CHECK(f32_to(CAIRN_F16, 0.1f) == 0x2E66);
    CHECK(f32_to(CAIRN_F16, -0.0f) == 0x8000);
    CHECK(f32_to(CAIRN_F16, 0.0f) == 0x0000);
    CHECK(f32_to(CAIRN_F16, FLT_MIN) == 0x0000);
    CHECK(cv(CAIRN_F32, 0x00000001, CAIRN_F16) == 0x0000); /* F32 subnormal */
    CHECK(cv(CAIRN_F32, 0x80000001, CAIRN_F16) == 0x8000);
    CHECK(f32_to(CAIRN_F16, INFINITY) == 0x7C00);
    CHECK(f32_to(CAIRN_F16, -INFINITY) == 0xFC00);
    uint64_t n = f32_to(CAIRN_F16, NAN);
    CHECK((n & 0x7C00) == 0x7C00 && (n & 0x03FF) != 0 && !(n & 0x8000));
    n = cv(CAIRN_F32, 0xFFC00000, CAIRN_F16);
    CHECK((n & 0x7C00) == 0x7C00 && (n & 0x03FF) != 0 && (n & 0x8000));
    n = cv(CAIRN_F32, 0x7F800001, CAIRN_F16); /* signalling, only low payload bits */
    CHECK((n & 0x7C00) == 0x7C00 && (n & 0x03FF) != 0);
    CHECK(cv(CAIRN_F32, 0x7F800001, CAIRN_F16) == 0x7E00); /* the canonical quiet NaN */
}

static void test_f32_to_bf16(void)
{
    CHECK(f32_to(CAIRN_BF16, 1.0f) == 0x3F80);
    CHECK(f32_to(CAIRN_BF16, -1.0f) == 0xBF80);
    CHECK(cv(CAIRN_F32, 0x3F808000, CAIRN_BF16) == 0x3F80); /* tie to even: down */
    CHECK(cv(CAIRN_F32, 0x3F818000, CAIRN_BF16) == 0x3F82); /* tie to even: up */
    CHECK(cv(CAIRN_F32, 0x3F808001, CAIRN_BF16) == 0x3F81);
    CHECK(cv(CAIRN_F32, 0x3F807FFF, CAIRN_BF16) == 0x3F80);
    CHECK(cv(CAIRN_F32, 0xBF818000, CAIRN_BF16) == 0xBF82);
    CHECK(cv(CAIRN_F32, 0x7F7FFFFF, CAIRN_BF16) == 0x7F80); /* FLT_MAX rounds to Inf */
    CHECK(cv(CAIRN_F32, 0xFF7FFFFF, CAIRN_BF16) == 0xFF80);
    CHECK(cv(CAIRN_F32, 0x7F7F7FFF, CAIRN_BF16) == 0x7F7F);
    CHECK(cv(CAIRN_F32, 0x00010000, CAIRN_BF16) == 0x0001); /* subnormal */
    CHECK(cv(CAIRN_F32, 0x00008000, CAIRN_BF16) == 0x0000); /* subnormal tie to 0 */
    CHECK(cv(CAIRN_F32, 0x00018000, CAIRN_BF16) == 0x0002);
    CHECK(cv(CAIRN_F32, 0x007F8000, CAIRN_BF16) == 0x0080); /* carries into the normals */
    CHECK(cv(CAIRN_F32, 0x80000000, CAIRN_BF16) == 0x8000);
    CHECK(cv(CAIRN_F32, 0x7F800000, CAIRN_BF16) == 0x7F80);
    CHECK(cv(CAIRN_F32, 0xFF800000, CAIRN_BF16) == 0xFF80);
    CHECK(cv(CAIRN_F32, 0x7F800001, CAIRN_BF16) == 0x7FC0); /* NaN stays NaN, not Inf */
    CHECK(cv(CAIRN_F32, 0xFF800001, CAIRN_BF16) == 0xFFC0);
    CHECK(cv(CAIRN_F32, 0x7FFFFFFF, CAIRN_BF16) == 0x7FC0); /* no carry out of a NaN */
    CHECK(cv(CAIRN_F32, 0x7FC00000, CAIRN_BF16) == 0x7FC0);
}

/* ----------------------------------------------- F64 -> narrow, one step */

static void test_f64_single_rounding(void)
{
    /* Each value sits just above a tie of the target; through F32 it would
     * become the tie and then round to even, the wrong way. */
    double t = 1.0 + ldexp(1, -11) + ldexp(1, -40);
    CHECK(f64_to(CAIRN_F16, t) == 0x3C01);
    CHECK(f64_to(CAIRN_F16, 1.0 + ldexp(1, -11)) == 0x3C00);
    CHECK(f64_to(CAIRN_F16, 1.0 + ldexp(1, -11) - ldexp(1, -40)) == 0x3C00);
    CHECK(f64_to(CAIRN_F16, ldexp(1, -25) + ldexp(1, -60)) == 0x0001);
    CHECK(f64_to(CAIRN_BF16, 1.0 + ldexp(1, -8) + ldexp(1, -40)) == 0x3F81);
    CHECK(f64_to(CAIRN_BF16, 1.0 + ldexp(1, -8)) == 0x3F80);
    CHECK(f64_to(CAIRN_F8_E4M3, 1.0 + ldexp(1, -4) + ldexp(1, -40)) == 0x39);
    CHECK(f64_to(CAIRN_F8_E4M3, 1.0 + ldexp(1, -4)) == 0x38);
    CHECK(f64_to(CAIRN_F8_E5M2, 1.0 + ldexp(1, -3) + ldexp(1, -40)) == 0x3D);
    CHECK(f64_to(CAIRN_F8_E5M2, 1.0 + ldexp(1, -3)) == 0x3C);
    /* F64 -> F32 itself. */
    CHECK(f64_to(CAIRN_F32, 1.0 + ldexp(1, -24)) == 0x3F800000);
    CHECK(f64_to(CAIRN_F32, 1.0 + ldexp(1, -24) + ldexp(1, -50)) == 0x3F800001);
    CHECK(f64_to(CAIRN_F32, ldexp(3, -150)) == 0x00000002);
    CHECK(f64_to(CAIRN_F32, ldexp(1, -150)) == 0x00000000);
    CHECK(f64_to(CAIRN_F32, DBL_MAX) == 0x7F800000);
    CHECK(f64_to(CAIRN_F32, -DBL_MAX) == 0xFF800000);
    CHECK(f64_to(CAIRN_F32, -0.0) == 0x80000000);
    uint64_t n = cv(CAIRN_F64, 0x7FF8000000000001ull, CAIRN_F32);
    CHECK(n == 0x7FC00000); /* payload below F32's mantissa is truncated */
    n = cv(CAIRN_F64, 0xFFFC000000000000ull, CAIRN_F32);
    CHECK(n == 0xFFE00000);
    /* Binary64 extremes into the narrow types. */
    CHECK(f64_to(CAIRN_F16, DBL_MAX) == 0x7C00);
    CHECK(f64_to(CAIRN_F16, -DBL_MAX) == 0xFC00);
    CHECK(f64_to(CAIRN_F16, DBL_TRUE_MIN) == 0x0000);
    CHECK(f64_to(CAIRN_F16, -DBL_TRUE_MIN) == 0x8000);
    CHECK(f64_to(CAIRN_BF16, DBL_MIN) == 0x0000);
    CHECK(f64_to(CAIRN_BF16, 1e39) == 0x7F80);
    CHECK(f64_to(CAIRN_F8_E4M3, -DBL_MAX) == 0xFF);
    n = cv(CAIRN_F64, 0x7FF0000000000001ull, CAIRN_F16);
    CHECK(n == 0x7E00);
    n = cv(CAIRN_F64, 0xFFF0000000000001ull, CAIRN_BF16);
    CHECK(n == 0xFFC0);
    CHECK(cv(CAIRN_F64, 0xFFF8000000000000ull, CAIRN_F8_E5M2) == 0xFE);
    /* F64 -> F64 is a copy, payload and all. */
    CHECK(cv(CAIRN_F64, 0x7FF0000000000123ull, CAIRN_F64) == 0x7FF0000000000123ull);
    /* F32 -> F64 -> F32 keeps a quiet NaN's payload. */
    CHECK(cv(CAIRN_F64, cv(CAIRN_F32, 0x7FC12345, CAIRN_F64), CAIRN_F32) == 0x7FC12345);
}

/* -------------------------------------------------------------- F8 */

static void test_e4m3(void)
{
    CHECK(f32_to(CAIRN_F8_E4M3, 448.0f) == 0x7E);
    CHECK(f32_to(CAIRN_F8_E4M3, -448.0f) == 0xFE);
    CHECK(f32_to(CAIRN_F8_E4M3, 463.99f) == 0x7E);
    /* 464 is the tie between 448 (mantissa 110, even) and 480 (111, odd):
     * ties to even keeps 448, and anything above it overflows to NaN. */
    CHECK(f32_to(CAIRN_F8_E4M3, 464.0f) == 0x7E);
    CHECK(f32_to(CAIRN_F8_E4M3, -464.0f) == 0xFE);
    CHECK(f32_to(CAIRN_F8_E4M3, nextafterf(464.0f, 500.0f)) == 0x7F);
    CHECK(f32_to(CAIRN_F8_E4M3, -nextafterf(464.0f, 500.0f)) == 0xFF);
    CHECK(f64_to(CAIRN_F8_E4M3, nextafter(464.0, 500.0)) == 0x7F);
    CHECK(f32_to(CAIRN_F8_E4M3, 480.0f) == 0x7F);
    CHECK(f32_to(CAIRN_F8_E4M3, 1e30f) == 0x7F);
    CHECK(f32_to(CAIRN_F8_E4M3, 256.0f) == 0x78); /* exponent 1111 still holds numbers */
    CHECK(f32_to(CAIRN_F8_E4M3, 1.0f) == 0x38);
    CHECK(f32_to(CAIRN_F8_E4M3, -1.5f) == 0xBC);
    CHECK(f32_to(CAIRN_F8_E4M3, ldexpf(1, -6)) == 0x08);
    CHECK(f32_to(CAIRN_F8_E4M3, ldexpf(1, -9)) == 0x01);
    CHECK(f32_to(CAIRN_F8_E4M3, ldexpf(7, -9)) == 0x07);
    CHECK(f32_to(CAIRN_F8_E4M3, ldexpf(1, -10)) == 0x00);
    CHECK(f32_to(CAIRN_F8_E4M3, -ldexpf(1, -10)) == 0x80);
    CHECK(f32_to(CAIRN_F8_E4M3, ldexpf(3, -10)) == 0x02);
    CHECK(f32_to(CAIRN_F8_E4M3, ldexpf(15, -10)) == 0x08); /* tie into the normals */
    CHECK(f32_to(CAIRN_F8_E4M3, INFINITY) == 0x7F);
    CHECK(f32_to(CAIRN_F8_E4M3, -INFINITY) == 0xFF);
    CHECK(f32_to(CAIRN_F8_E4M3, NAN) == 0x7F);
    CHECK(f32_to(CAIRN_F8_E4M3, -NAN) == 0xFF);
    CHECK(f32_to(CAIRN_F8_E4M3, -0.0f) == 0x80);
    CHECK(isnan(to_f64(CAIRN_F8_E4M3, 0x7F)));
    CHECK(isnan(to_f64(CAIRN_F8_E4M3, 0xFF)) && signbit(to_f64(CAIRN_F8_E4M3, 0xFF)));
    CHECK(to_f64(CAIRN_F8_E4M3, 0x7E) == 448.0);
    CHECK(to_f64(CAIRN_F8_E4M3, 0x78) == 256.0);
    CHECK(to_f64(CAIRN_F8_E4M3, 0x01) == ldexp(1, -9));
    CHECK(to_f64(CAIRN_F8_E4M3, 0x07) == ldexp(7, -9));
    CHECK(to_f64(CAIRN_F8_E4M3, 0x08) == ldexp(1, -6));
    CHECK(to_f64(CAIRN_F8_E4M3, 0x38) == 1.0);
    CHECK(cv(CAIRN_F8_E4M3, 0x80, CAIRN_F32) == 0x80000000);
    CHECK(cv(CAIRN_F8_E4M3, 0x7F, CAIRN_F32) == 0x7FF00000); /* quiet, payload 111 kept */
    /* Between the two F8 types. */
    CHECK(cv(CAIRN_F8_E4M3, 0x7E, CAIRN_F8_E5M2) == 0x5F);
    CHECK(cv(CAIRN_F8_E4M3, 0x01, CAIRN_F8_E5M2) == 0x18);
    CHECK(cv(CAIRN_F8_E4M3, 0x39, CAIRN_F8_E5M2) == 0x3C); /* 1.125: tie to even */
    CHECK(cv(CAIRN_F8_E4M3, 0x3B, CAIRN_F8_E5M2) == 0x3E); /* 1.375: tie to even */
    CHECK(cv(CAIRN_F8_E4M3, 0x7F, CAIRN_F8_E5M2) == 0x7E);
    CHECK(cv(CAIRN_F8_E5M2, 0x7B, CAIRN_F8_E4M3) == 0x7F); /* 57344 overflows to NaN */
    CHECK(cv(CAIRN_F8_E5M2, 0xFC, CAIRN_F8_E4M3) == 0xFF); /* -Inf -> NaN */
    CHECK(cv(CAIRN_F8_E5M2, 0x01, CAIRN_F8_E4M3) == 0x00);
    CHECK(cv(CAIRN_F8_E5M2, 0x5F, CAIRN_F8_E4M3) == 0x7E); /* 448 */
}

static void test_e5m2(void)
{
    CHECK(f32_to(CAIRN_F8_E5M2, 57344.0f) == 0x7B);
    CHECK(f32_to(CAIRN_F8_E5M2, 61439.0f) == 0x7B);
    CHECK(f32_to(CAIRN_F8_E5M2, 61440.0f) == 0x7C); /* tie rounds to even: Inf */
    CHECK(f32_to(CAIRN_F8_E5M2, -1e6f) == 0xFC);
    CHECK(f32_to(CAIRN_F8_E5M2, INFINITY) == 0x7C);
    CHECK(f32_to(CAIRN_F8_E5M2, -INFINITY) == 0xFC);
    CHECK(f32_to(CAIRN_F8_E5M2, 1.0f) == 0x3C);
    CHECK(f32_to(CAIRN_F8_E5M2, ldexpf(1, -16)) == 0x01);
    CHECK(f32_to(CAIRN_F8_E5M2, ldexpf(1, -17)) == 0x00);
    CHECK(f32_to(CAIRN_F8_E5M2, ldexpf(3, -17)) == 0x02);
    CHECK(f32_to(CAIRN_F8_E5M2, -0.0f) == 0x80);
    uint64_t n = f32_to(CAIRN_F8_E5M2, NAN);
    CHECK((n & 0x7C) == 0x7C && (n & 0x03) != 0 && !(n & 0x80));
    n = f32_to(CAIRN_F8_E5M2, -NAN);
    CHECK((n & 0x7C) == 0x7C && (n & 0x03) != 0 && (n & 0x80));
    CHECK(to_f64(CAIRN_F8_E5M2, 0x7B) == 57344.0);
    CHECK(to_f64(CAIRN_F8_E5M2, 0x7C) == INFINITY);
    CHECK(to_f64(CAIRN_F8_E5M2, 0xFC) == -INFINITY);
    CHECK(isnan(to_f64(CAIRN_F8_E5M2, 0x7D)));
    CHECK(isnan(to_f64(CAIRN_F8_E5M2, 0x7E)));
    CHECK(isnan(to_f64(CAIRN_F8_E5M2, 0xFF)));
    CHECK(to_f64(CAIRN_F8_E5M2, 0x01) == ldexp(1, -16));
    CHECK(to_f64(CAIRN_F8_E5M2, 0x03) == ldexp(3, -16));
}

/* ---------------------------------------- every code of a narrow type */

/* Decodes every code to F32 and to F64, checks the value against the
 * model, and re-encodes from both (every narrow value is exact in F32). */
static void test_all_codes(const fmt *f)
{
    size_t n = (size_t)1 << (8 * fmt_size(f)), w = fmt_size(f);
    unsigned char *codes = malloc(n * w), *back32 = malloc(n * w), *back64 = malloc(n * w);
    float *as32 = malloc(n * sizeof *as32);
    double *as64 = malloc(n * sizeof *as64), *via32 = malloc(n * sizeof *via32);
    for (size_t i = 0; i < n; i++) {
        uint16_t c = (uint16_t)i;
        memcpy(codes + w * i, &c, w);
    }
    CHECK_OK(cairn_convert(f->dtype, codes, CAIRN_F32, as32, n, NULL));
    CHECK_OK(cairn_convert(f->dtype, codes, CAIRN_F64, as64, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F32, as32, CAIRN_F64, via32, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F32, as32, f->dtype, back32, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F64, as64, f->dtype, back64, n, NULL));
    int bad_value = 0, bad_paths = 0, bad_trip = 0, bad_nan = 0;
    uint32_t sign_bit = 1u << (f->exp_bits + f->man_bits);
    for (size_t i = 0; i < n; i++) {
        uint32_t code = (uint32_t)i, r32 = 0, r64 = 0;
        memcpy(&r32, back32 + w * i, w);
        memcpy(&r64, back64 + w * i, w);
        /* The fast F32 paths and the generic F64 path agree bit for bit. */
        bad_paths += dbits(as64[i]) != dbits(via32[i]);
        if (is_nan_code(f, code)) {
            bad_nan += !isnan(as64[i]) || !!signbit(as64[i]) != !!(code & sign_bit);
            bad_nan += !is_nan_code(f, r32) || (r32 & sign_bit) != (code & sign_bit);
            bad_nan += !is_nan_code(f, r64) || (r64 & sign_bit) != (code & sign_bit);
            continue;
        }
        uint32_t mag = code & (sign_bit - 1);
        double want = mag > f->max ? INFINITY : model_value(f, mag);
        if (code & sign_bit)
            want = -want;
        bad_value += dbits(as64[i]) != dbits(want);
        bad_trip += r32 != code || r64 != code;
    }
    CHECK(bad_value == 0);
    CHECK(bad_paths == 0);
    CHECK(bad_trip == 0);
    CHECK(bad_nan == 0);
    if (bad_value || bad_paths || bad_trip || bad_nan)
        fprintf(stderr, "  in %s: %d values, %d paths, %d trips, %d NaNs wrong\n",
                cairn_dtype_name(f->dtype), bad_value, bad_paths, bad_trip, bad_nan);
    free(codes), free(back32), free(back64), free(as32), free(as64), free(via32);
}

/* Every tie between two neighbouring codes, and the doubles either side. */
static void test_all_ties(const fmt *f)
{
    int bad = 0;
    for (uint32_t k = 0; k <= f->max; k++) {
        double lo = model_value(f, k), hi = model_value(f, k + 1), mid = (lo + hi) / 2;
        const double xs[3] = {nextafter(mid, 0), mid, nextafter(mid, INFINITY)};
        const uint32_t even = (k & 1) ? k + 1 : k;
        const uint32_t want[3] = {k, even, k + 1};
        for (int j = 0; j < 3; j++) {
            for (int neg = 0; neg < 2; neg++) {
                uint32_t sign = neg ? 1u << (f->exp_bits + f->man_bits) : 0;
                double x = neg ? -xs[j] : xs[j];
                uint32_t got = (uint32_t)f64_to(f->dtype, x);
                bad += got != (sign | want[j]);
                /* Ties are exact in F32 for every narrow type: the fast paths. */
                float xf = (float)x;
                if ((double)xf == x)
                    bad += (uint32_t)f32_to(f->dtype, xf) != (sign | want[j]);
            }
        }
    }
    CHECK(bad == 0);
    if (bad)
        fprintf(stderr, "  in %s: %d ties wrong\n", cairn_dtype_name(f->dtype), bad);
}

/* Random doubles and floats across the format's range against the oracle. */
static void test_random_vs_oracle(const fmt *f, uint64_t seed)
{
    int bad = 0;
    int emin = 1 - f->bias - f->man_bits - 3, emax = (1 << f->exp_bits) - f->bias + 1;
    for (int i = 0; i < 200000; i++) {
        uint64_t r = tu_rand(&seed);
        int e = emin + (int)(tu_rand(&seed) % (uint64_t)(emax - emin + 1));
        double x = ldexp(1.0 + (double)(r >> 12) * 0x1p-52, e);
        if (r & 1)
            x = -x;
        uint32_t want = oracle(f, x);
        bad += (uint32_t)f64_to(f->dtype, x) != want;
        float xf = (float)x;
        if (isfinite(xf))
            bad += (uint32_t)f32_to(f->dtype, xf) != oracle(f, (double)xf);
    }
    CHECK(bad == 0);
    if (bad)
        fprintf(stderr, "  in %s: %d random values wrong\n", cairn_dtype_name(f->dtype), bad);
}

/* 1e6 random F32 bit patterns: the fast F32 -> F16/BF16 loops must equal
 * the generic path through F64, on unaligned buffers. */
static void test_fast_vs_generic(cairn_dtype to, uint64_t seed)
{
    size_t n = 1000000;
    unsigned char *src = malloc(4 * n + 1), *fast = malloc(2 * n + 1), *slow = malloc(2 * n);
    unsigned char *wide = malloc(8 * n);
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)tu_rand(&seed);
        memcpy(src + 1 + 4 * i, &x, 4);
    }
    CHECK_OK(cairn_convert(CAIRN_F32, src + 1, to, fast + 1, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F32, src + 1, CAIRN_F64, wide, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F64, wide, to, slow, n, NULL));
    CHECK(memcmp(fast + 1, slow, 2 * n) == 0);
    free(src), free(fast), free(slow), free(wide);
}

/* Every F32 in the F16 subnormal and low normal range, through both paths. */
static void test_f16_low_range(void)
{
    size_t n = 0x38800000u >> 8; /* every 256th pattern below 2^-14 */
    uint32_t *src = malloc(4 * n);
    uint16_t *fast = malloc(2 * n), *slow = malloc(2 * n);
    double *wide = malloc(8 * n);
    for (size_t i = 0; i < n; i++)
        src[i] = (uint32_t)(i << 8) | (uint32_t)(i & 0xFF);
    CHECK_OK(cairn_convert(CAIRN_F32, src, CAIRN_F16, fast, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F32, src, CAIRN_F64, wide, n, NULL));
    CHECK_OK(cairn_convert(CAIRN_F64, wide, CAIRN_F16, slow, n, NULL));
    CHECK(memcmp(fast, slow, 2 * n) == 0);
    free(src), free(fast), free(slow), free(wide);
}

/* ---------------------------------------------------------- other pairs */

static void test_f16_bf16(void)
{
    CHECK(cv(CAIRN_F16, 0x3C01, CAIRN_BF16) == 0x3F80);
    CHECK(cv(CAIRN_F16, 0x3C04, CAIRN_BF16) == 0x3F80); /* tie to even: down */
    CHECK(cv(CAIRN_F16, 0x3C0C, CAIRN_BF16) == 0x3F82); /* tie to even: up */
    CHECK(cv(CAIRN_F16, 0x7BFF, CAIRN_BF16) == 0x4780); /* 65504 -> 65536 */
    CHECK(cv(CAIRN_F16, 0x0001, CAIRN_BF16) == 0x3380); /* 2^-24 is normal in BF16 */
    CHECK(cv(CAIRN_F16, 0xFC00, CAIRN_BF16) == 0xFF80);
    CHECK(cv(CAIRN_F16, 0x7E00, CAIRN_BF16) == 0x7FC0);
    CHECK(cv(CAIRN_BF16, 0x3F81, CAIRN_F16) == 0x3C08);
    CHECK(cv(CAIRN_BF16, 0x4780, CAIRN_F16) == 0x7C00); /* 65536 overflows */
    CHECK(cv(CAIRN_BF16, 0x477F, CAIRN_F16) == 0x7BF8);
    CHECK(cv(CAIRN_BF16, 0x3380, CAIRN_F16) == 0x0001);
    CHECK(cv(CAIRN_BF16, 0x3300, CAIRN_F16) == 0x0000); /* 2^-25: tie to 0 */
    CHECK(cv(CAIRN_BF16, 0x0001, CAIRN_F16) == 0x0000);
    CHECK(cv(CAIRN_BF16, 0x8001, CAIRN_F16) == 0x8000);
    CHECK(cv(CAIRN_BF16, 0xFFC1, CAIRN_F16) == 0xFE00);
    /* Widening keeps a NaN's payload and makes it quiet, as hardware does. */
    CHECK(cv(CAIRN_F16, 0x7C01, CAIRN_F32) == 0x7FC02000);
    CHECK(cv(CAIRN_F16, 0xFD55, CAIRN_F32) == 0xFFEAA000);
    CHECK(cv(CAIRN_BF16, 0x7F81, CAIRN_F32) == 0x7FC10000);
    CHECK(cv(CAIRN_BF16, 0x0001, CAIRN_F32) == 0x00010000);
    CHECK(cv(CAIRN_F16, 0x7C01, CAIRN_F64) == 0x7FF8040000000000ull);
    CHECK(cv(CAIRN_F16, 0x0001, CAIRN_F64) == dbits(ldexp(1, -24)));
    CHECK(cv(CAIRN_BF16, 0x0001, CAIRN_F64) == dbits(ldexp(1, -133)));
}

static void test_complex(void)
{
    float c64[4] = {1.5f, -2.25f, INFINITY, -0.0f};
    double c128[4];
    CHECK_OK(cairn_convert(CAIRN_C64, c64, CAIRN_C128, c128, 2, NULL));
    CHECK(c128[0] == 1.5 && c128[1] == -2.25 && c128[2] == INFINITY);
    CHECK(dbits(c128[3]) == 0x8000000000000000ull);
    float back[4];
    CHECK_OK(cairn_convert(CAIRN_C128, c128, CAIRN_C64, back, 2, NULL));
    CHECK(memcmp(back, c64, sizeof back) == 0);
    double big[2] = {1.0 + ldexp(1, -30), 1e300};
    float small[2];
    CHECK_OK(cairn_convert(CAIRN_C128, big, CAIRN_C64, small, 1, NULL));
    CHECK(small[0] == 1.0f && small[1] == INFINITY);
    c64[0] = bitsf(0x7FC00001);
    CHECK_OK(cairn_convert(CAIRN_C64, c64, CAIRN_C128, c128, 1, NULL));
    CHECK(dbits(c128[0]) == 0x7FF8000020000000ull);
}

/* ------------------------------------------------------------- integers */

static int64_t read_int(cairn_dtype d, const void *p)
{
    int64_t out = 0;
    CHECK_OK(cairn_convert(d, p, CAIRN_I64, &out, 1, NULL));
    return out;
}

static void test_integers(void)
{
    CHECK((int64_t)cv(CAIRN_I8, 0x80, CAIRN_I64) == -128);
    CHECK((int16_t)cv(CAIRN_I8, 0xFF, CAIRN_I16) == -1);
    CHECK((int32_t)cv(CAIRN_I16, 0x8000, CAIRN_I32) == -32768);
    CHECK(cv(CAIRN_U16, 0xFFFF, CAIRN_I32) == 65535);
    CHECK(cv(CAIRN_U8, 0xFF, CAIRN_I16) == 255);
    CHECK(cv(CAIRN_U32, 0xFFFFFFFF, CAIRN_I64) == 0xFFFFFFFFull);
    CHECK(cv(CAIRN_U32, 0xFFFFFFFF, CAIRN_U64) == 0xFFFFFFFFull);
    CHECK((int64_t)cv(CAIRN_I32, 0x80000000, CAIRN_I64) == INT32_MIN);
    CHECK(cv(CAIRN_I64, 0x8000000000000000ull, CAIRN_I64) == 0x8000000000000000ull);
    CHECK(cv(CAIRN_U64, UINT64_MAX, CAIRN_U64) == UINT64_MAX);
    CHECK(cv(CAIRN_BOOL, 7, CAIRN_U8) == 1);
    CHECK(cv(CAIRN_BOOL, 0x80, CAIRN_I8) == 1);
    CHECK(cv(CAIRN_BOOL, 0, CAIRN_I64) == 0);
    CHECK(cv(CAIRN_BOOL, 1, CAIRN_U64) == 1);
    CHECK(cv(CAIRN_BOOL, 7, CAIRN_BOOL) == 7); /* a copy, as documented */
    CHECK(cv(CAIRN_BOOL, 0xFF, CAIRN_F32) == fbits(1.0f));
    CHECK(cv(CAIRN_BOOL, 2, CAIRN_F16) == 0x3C00);
    CHECK(cv(CAIRN_BOOL, 0, CAIRN_BF16) == 0x0000);
    CHECK(cv(CAIRN_I32, 0x80000000, CAIRN_F64) == dbits(-2147483648.0));
    CHECK(cv(CAIRN_I32, 0x7FFFFFFF, CAIRN_F64) == dbits(2147483647.0));
    CHECK(cv(CAIRN_U32, 0xFFFFFFFF, CAIRN_F64) == dbits(4294967295.0));
    CHECK(cv(CAIRN_U16, 0xFFFF, CAIRN_F32) == fbits(65535.0f));
    CHECK(cv(CAIRN_I16, 0x8000, CAIRN_F32) == fbits(-32768.0f));
    CHECK(cv(CAIRN_I8, 0xFF, CAIRN_F16) == 0xBC00);
    CHECK(cv(CAIRN_I8, 0x80, CAIRN_F16) == 0xD800);
    CHECK(cv(CAIRN_U8, 0xFF, CAIRN_F16) == 0x5BF8);
    CHECK(cv(CAIRN_U8, 0xFF, CAIRN_BF16) == 0x437F);
    CHECK(cv(CAIRN_I8, 0x80, CAIRN_BF16) == 0xC300);
    CHECK(cv(CAIRN_I8, 0x7F, CAIRN_BF16) == 0x42FE);

    /* Every allowed integer pair keeps the extremes of its source. */
    static const cairn_dtype ints[] = {CAIRN_I8,  CAIRN_I16, CAIRN_I32, CAIRN_I64, CAIRN_U8,
                                       CAIRN_U16, CAIRN_U32, CAIRN_U64, CAIRN_BOOL};
    for (size_t a = 0; a < 9; a++) {
        for (size_t b = 0; b < 9; b++) {
            cairn_dtype from = ints[a], to = ints[b];
            if (to == CAIRN_BOOL || from == CAIRN_U64 || !cairn_dtype_can_convert(from, to))
                continue;
            size_t fs = cairn_dtype_size(from);
            int is_signed = from <= CAIRN_I64;
            uint64_t all_ones = fs == 8 ? UINT64_MAX : ((uint64_t)1 << (8 * fs)) - 1;
            uint64_t pats[3] = {0, all_ones, is_signed ? all_ones >> 1 : 1};
            if (from == CAIRN_BOOL)
                pats[1] = 1;
            for (int k = 0; k < 3; k++) {
                int64_t want = read_int(from, &pats[k]);
                uint64_t out = cv(from, pats[k], to);
                /* Read the result back through I64 (U64 has no wider type). */
                int64_t got = to == CAIRN_U64 ? (int64_t)out : read_int(to, &out);
                CHECK(got == want);
            }
        }
    }
    CHECK(read_int(CAIRN_I8, &(int8_t){-128}) == -128);
}

static void test_byteswap(void)
{
    unsigned char b[1 + 16];
    for (int i = 0; i < 17; i++)
        b[i] = (unsigned char)i;
    cairn__byteswap(b + 1, 16, 1);
    CHECK(b[1] == 1 && b[16] == 16);
    cairn__byteswap(b + 1, 8, 2);
    CHECK(b[1] == 2 && b[2] == 1 && b[15] == 16 && b[16] == 15);
    cairn__byteswap(b + 1, 8, 2);
    cairn__byteswap(b + 1, 4, 4);
    CHECK(b[1] == 4 && b[4] == 1 && b[5] == 8 && b[16] == 13);
    cairn__byteswap(b + 1, 4, 4);
    cairn__byteswap(b + 1, 2, 8);
    CHECK(b[1] == 8 && b[8] == 1 && b[9] == 16 && b[16] == 9);
    cairn__byteswap(b + 1, 2, 8);
    for (int i = 0; i < 17; i++)
        CHECK(b[i] == i);
    cairn__byteswap(NULL, 0, 4);
}

int main(void)
{
    test_names();
    test_rules();
    test_errors();
    test_f32_to_f16();
    test_f32_to_bf16();
    test_f64_single_rounding();
    test_e4m3();
    test_e5m2();
    test_f16_bf16();
    for (size_t i = 0; i < sizeof FMTS / sizeof FMTS[0]; i++) {
        test_all_codes(&FMTS[i]);
        test_all_ties(&FMTS[i]);
        test_random_vs_oracle(&FMTS[i], 0x5EED0000u + i);
    }
    test_fast_vs_generic(CAIRN_F16, 1);
    test_fast_vs_generic(CAIRN_BF16, 2);
    test_f16_low_range();
    test_complex();
    test_integers();
    test_byteswap();
    TEST_MAIN_END();
}
