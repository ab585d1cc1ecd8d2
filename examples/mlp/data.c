/* data.c -- a synthetic two-class problem in the manner of scikit-learn's
 *
 *     make_classification(n_samples=1000, n_features=10, n_informative=5,
 *                         n_redundant=2, n_classes=2, n_clusters_per_class=2,
 *                         flip_y=0.01, class_sep=1.0, hypercube=True)
 *
 * It is not sklearn's stream of numbers, but the same construction, spelled
 * out so that anyone can regenerate it bit for bit. One xoshiro256**
 * generator, seeded with rng_seed(seed), is drawn from in exactly this order
 * (arithmetic in double, each feature rounded to float once):
 *
 *  1. Centres: a partial Fisher-Yates shuffle of the 32 vertices of the
 *     5-dimensional hypercube picks 4 distinct ones; for i = 0..3, swap entry
 *     i with entry i + rng_below(32 - i). Bit j of vertex v gives coordinate
 *     j: +class_sep if set, -class_sep if not.
 *  2. Redundant features: a 5x2 matrix B of uniform(-1, 1) draws (2u - 1,
 *     row-major); features 5 and 6 of a row are informative(row) B.
 *  3. Clusters: rows 250k .. 250k+249 form cluster k (k = 0..3), labelled
 *     k % 2, so each class is two clusters. For each cluster in turn: a 5x5
 *     matrix A_k of uniform(-1, 1) draws (row-major), then for each of its
 *     rows 5 standard normals z; the informative features 0-4 are
 *     z A_k + centre_k (a random covariance per cluster).
 *  4. Noise features 7, 8, 9: three standard normals per row, row by row.
 *  5. Label noise: for each row, if a uniform draw is < flip_y, its label
 *     becomes rng_below(2) (which may be the same label).
 *  6. Row shuffle: Fisher-Yates, for i = 999 down to 1 swap rows i and
 *     rng_below(i + 1).
 *
 * The draws are those of rng.c: seeding fills the state with four splitmix64
 * outputs starting at the seed; a uniform u is (x >> 11) * 2^-53 of one 64-bit
 * output x; rng_below(n) rejects an x from the last incomplete block of n and
 * returns x % n; a standard normal is sqrt(-2 ln(1 - u1)) cos(2 pi u2).
 *
 * Unlike sklearn the columns are not shuffled: features 0-4 are informative,
 * 5-6 redundant, 7-9 noise. After the row shuffle, rows 0..799 are the
 * training set and rows 800..999 the validation set (skorch's 80/20 split).
 */
#include "mlp.h"

#include <string.h>

enum {
    CLUSTERS = DATA_CLASSES * DATA_CLUSTERS_PER_CLASS,
    VERTICES = 1 << DATA_INFORMATIVE,
    NOISE = DATA_FEATURES - DATA_INFORMATIVE - DATA_REDUNDANT,
    PER_CLUSTER = DATA_ROWS / CLUSTERS
};
_Static_assert(DATA_ROWS % CLUSTERS == 0, "clusters of equal size");

/* Step 1: four distinct vertices of {-sep, +sep}^5. */
static void pick_centres(rng *r, double centre[CLUSTERS][DATA_INFORMATIVE])
{
    int vertex[VERTICES];
    for (int v = 0; v < VERTICES; v++)
        vertex[v] = v;
    for (int i = 0; i < CLUSTERS; i++) {
        int j = i + (int)rng_below(r, (uint64_t)(VERTICES - i));
        int tmp = vertex[i];
        vertex[i] = vertex[j];
        vertex[j] = tmp;
        for (int f = 0; f < DATA_INFORMATIVE; f++)
            centre[i][f] = (vertex[i] >> f & 1) ? DATA_CLASS_SEP : -DATA_CLASS_SEP;
    }
}

static double uniform_pm1(rng *r) { return 2.0 * rng_uniform(r) - 1.0; }

/* Steps 2-4. The informative and redundant features of a row are computed
 * in double and rounded to float once. */
static void fill_features(rng *r, double centre[CLUSTERS][DATA_INFORMATIVE], dataset *d)
{
    double b[DATA_INFORMATIVE][DATA_REDUNDANT];
    for (int i = 0; i < DATA_INFORMATIVE; i++)
        for (int j = 0; j < DATA_REDUNDANT; j++)
            b[i][j] = uniform_pm1(r);
    for (int k = 0; k < CLUSTERS; k++) {
        double a[DATA_INFORMATIVE][DATA_INFORMATIVE];
        for (int i = 0; i < DATA_INFORMATIVE; i++)
            for (int j = 0; j < DATA_INFORMATIVE; j++)
                a[i][j] = uniform_pm1(r);
        for (int row = k * PER_CLUSTER; row < (k + 1) * PER_CLUSTER; row++) {
            double z[DATA_INFORMATIVE], inf[DATA_INFORMATIVE];
            for (int i = 0; i < DATA_INFORMATIVE; i++)
                z[i] = rng_normal(r);
            for (int j = 0; j < DATA_INFORMATIVE; j++) {
                inf[j] = centre[k][j];
                for (int i = 0; i < DATA_INFORMATIVE; i++)
                    inf[j] += z[i] * a[i][j];
                d->x[row][j] = (float)inf[j];
            }
            for (int j = 0; j < DATA_REDUNDANT; j++) {
                double s = 0.0;
                for (int i = 0; i < DATA_INFORMATIVE; i++)
                    s += inf[i] * b[i][j];
                d->x[row][DATA_INFORMATIVE + j] = (float)s;
            }
            d->y[row] = k % DATA_CLASSES;
        }
    }
    for (int row = 0; row < DATA_ROWS; row++)
        for (int j = 0; j < NOISE; j++)
            d->x[row][DATA_INFORMATIVE + DATA_REDUNDANT + j] = (float)rng_normal(r);
}

/* FNV-1a over the little-endian bytes of every value: the same on any host. */
static uint64_t fnv1a(uint64_t h, uint32_t word)
{
    for (int b = 0; b < 4; b++) {
        h ^= (word >> (8 * b)) & 0xffu;
        h *= 0x100000001b3u;
    }
    return h;
}

static uint64_t fingerprint(const dataset *d)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (int row = 0; row < DATA_ROWS; row++) {
        for (int f = 0; f < DATA_FEATURES; f++) {
            uint32_t bits;
            memcpy(&bits, &d->x[row][f], sizeof bits);
            h = fnv1a(h, bits);
        }
        h = fnv1a(h, (uint32_t)d->y[row]);
    }
    return h;
}

void data_make(dataset *d, uint64_t seed)
{
    double centre[CLUSTERS][DATA_INFORMATIVE];
    rng r;
    rng_seed(seed, &r, 1);
    pick_centres(&r, centre);
    fill_features(&r, centre, d);
    for (int row = 0; row < DATA_ROWS; row++) /* step 5 */
        if (rng_uniform(&r) < DATA_FLIP_Y)
            d->y[row] = (int32_t)rng_below(&r, DATA_CLASSES);
    for (int i = DATA_ROWS - 1; i > 0; i--) { /* step 6 */
        int j = (int)rng_below(&r, (uint64_t)i + 1);
        float xt[DATA_FEATURES];
        memcpy(xt, d->x[i], sizeof xt);
        memcpy(d->x[i], d->x[j], sizeof xt);
        memcpy(d->x[j], xt, sizeof xt);
        int32_t yt = d->y[i];
        d->y[i] = d->y[j];
        d->y[j] = yt;
    }
    d->fingerprint = fingerprint(d);
}
