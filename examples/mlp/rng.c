/* rng.c -- the program's only source of randomness. A generator is four
 * 64-bit words and nothing else (no cached Box-Muller value, no global), so
 * saving those words saves everything a later draw depends on. */
#include "mlp.h"

#include <math.h>

/* splitmix64 (Steele, Lea, Flood): turns one seed into well-mixed words. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void rng_seed(uint64_t seed, rng *out, size_t count)
{
    uint64_t state = seed;
    for (size_t g = 0; g < count; g++)
        for (int i = 0; i < 4; i++)
            out[g].s[i] = splitmix64(&state);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** 1.0, as in the authors' reference code. */
uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t rng_below(rng *r, uint64_t n)
{
    /* Accept x only when the whole block of n values it falls in fits below
     * 2^64; the last, partial block would favour small results. */
    for (;;) {
        uint64_t x = rng_next(r);
        uint64_t v = x % n;
        if (x - v <= UINT64_MAX - (n - 1))
            return v;
    }
}

double rng_normal(rng *r)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - rng_uniform(r); /* (0, 1]: log(0) must not happen */
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}

void rng_to_bytes(const rng *r, uint8_t out[RNG_STATE_BYTES])
{
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 8; b++)
            out[8 * i + b] = (uint8_t)(r->s[i] >> (8 * b));
}

void rng_from_bytes(rng *r, const uint8_t in[RNG_STATE_BYTES])
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = 0;
        for (int b = 0; b < 8; b++)
            r->s[i] |= (uint64_t)in[8 * i + b] << (8 * b);
    }
}
