/* mpi_ckpt_policy.c -- the distributed checkpoint manager follows the
 * single-process manager's rules.
 *
 *   parity ROOT   for several option sets (monitored metric, min and max,
 *                 keep_best/keep_last/keep_every, every_epochs/every_steps,
 *                 forced saves), the same sequence of steps and metrics goes
 *                 through cairn_ckpt (rank 0, ROOT/single-<k>) and
 *                 cairn_mpi_ckpt (every rank, ROOT/dist-<k>); after every
 *                 step both list the same checkpoints (seq, epoch, step,
 *                 metric, reasons, validity) and name the same best one;
 *                 a reopened manager lists them again from the directory;
 *   signal ROOT   CAIRN_CKPT_SIGNALS: the last rank raises SIGUSR1 after a
 *                 step, rank 0 raises SIGTERM later: every rank's next begin
 *                 saves (CAIRN_SAVED_SIGNAL) at the same step, once, with the
 *                 reason "signal"; a metric missing from rank 0's metrics
 *                 fails on every rank.
 */
#include <cairn_mpi.h>

#include "mpi_leak.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int me, size;

#define FAIL(...)                                             \
    do {                                                      \
        fprintf(stderr, "rank %d: ", me);                     \
        fprintf(stderr, __VA_ARGS__);                         \
        fprintf(stderr, "\n");                                \
        bad++;                                                \
    } while (0)

typedef struct config {
    const char *monitor;
    unsigned flags;
    uint32_t every_epochs;
    uint64_t every_steps;
    uint32_t keep_best, keep_last, keep_every;
} config;

static const config configs[] = {
    {"loss", 0, 0, 0, 2, 1, 0},                         /* improved only, min */
    {"acc", CAIRN_CKPT_MODE_MAX, 3, 0, 1, 2, 4},        /* max, every 3 epochs, keep every 4th */
    {"loss", 0, 0, 7, 3, 0, 0},                         /* every 7 steps, the 3 best */
    {NULL, 0, 2, 0, 0, 2, 5},                           /* no monitor */
    {NULL, 0, 0, 0, 0, 3, 0},                           /* no trigger: every step */
};
#define NCONFIGS (sizeof configs / sizeof configs[0])

/* A metric that wanders: improves, worsens, repeats values (ties). */
static double metric_at(uint64_t epoch, int maximize)
{
    double v = (double)((epoch * 7) % 11) / 10.0 + (epoch % 5 == 0 ? -0.05 : 0);
    return maximize ? 1.0 - v : v;
}

/* Rank 0: the two managers' tables match. */
static int compare(cairn_ckpt *one, cairn_mpi_ckpt *dist, const char *when, uint64_t epoch)
{
    int bad = 0;
    size_t n1 = cairn_ckpt_count(one), n2 = cairn_mpi_ckpt_count(dist);
    if (n1 != n2)
        FAIL("%s, epoch %llu: %zu checkpoints vs %zu", when, (unsigned long long)epoch, n1, n2);
    for (size_t i = 0; !bad && i < n1; i++) {
        cairn_ckpt_info a;
        cairn_mpi_ckpt_info b;
        if (cairn_ckpt_info_at(one, i, &a, NULL) != CAIRN_OK ||
            cairn_mpi_ckpt_info_at(dist, i, &b, NULL) != CAIRN_OK)
            FAIL("%s: info %zu", when, i);
        else if (a.seq != b.seq || a.epoch != b.epoch || a.step != b.step ||
                 a.valid != b.valid || a.has_metric != b.has_metric ||
                 (a.has_metric && a.metric != b.metric) || strcmp(a.reasons, b.reasons))
            FAIL("%s, epoch %llu, checkpoint %zu: seq %llu/%llu epoch %llu/%llu step %llu/%llu "
                 "valid %d/%d metric %g/%g reasons '%s'/'%s'", when, (unsigned long long)epoch,
                 i, (unsigned long long)a.seq, (unsigned long long)b.seq,
                 (unsigned long long)a.epoch, (unsigned long long)b.epoch,
                 (unsigned long long)a.step, (unsigned long long)b.step, a.valid, b.valid,
                 a.metric, b.metric, a.reasons, b.reasons);
    }
    size_t x = SIZE_MAX, y = SIZE_MAX;
    int h1 = cairn_ckpt_best(one, &x, NULL) == CAIRN_OK,
        h2 = cairn_mpi_ckpt_best(dist, &y, NULL) == CAIRN_OK;
    if (!bad && (h1 != h2 || x != y))
        FAIL("%s, epoch %llu: best %zu vs %zu", when, (unsigned long long)epoch, x, y);
    return bad;
}

static int open_both(const char *root, size_t k, const config *c, cairn_ckpt **one,
                     cairn_mpi_ckpt **dist)
{
    char d1[4096], d2[4096];
    snprintf(d1, sizeof d1, "%s/single-%zu", root, k);
    snprintf(d2, sizeof d2, "%s/dist-%zu", root, k);
    cairn_error err;
    int bad = 0;
    if (me == 0) {
        cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = d1, .monitor = c->monitor,
                             .flags = c->flags | CAIRN_CKPT_NO_SYNC,
                             .every_epochs = c->every_epochs, .every_steps = c->every_steps,
                             .keep_best = c->keep_best, .keep_last = c->keep_last,
                             .keep_every = c->keep_every};
        if (cairn_ckpt_open(&o, one, &err) != CAIRN_OK)
            FAIL("cairn_ckpt_open: %s", err.message);
    }
    cairn_mpi_ckpt_opts o = {.struct_size = sizeof o, .dirname = d2, .monitor = c->monitor,
                             .flags = c->flags | CAIRN_CKPT_NO_SYNC,
                             .every_epochs = c->every_epochs, .every_steps = c->every_steps,
                             .keep_best = c->keep_best, .keep_last = c->keep_last,
                             .keep_every = c->keep_every};
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, dist, &err) != CAIRN_OK)
        FAIL("cairn_mpi_ckpt_open: %s", err.message);
    return bad;
}

static int do_parity(const char *root)
{
    int bad = 0;
    cairn_error err;
    float w[4] = {1, 2, 3, 4};
    for (size_t k = 0; k < NCONFIGS && !bad; k++) {
        const config *c = &configs[k];
        cairn_ckpt *one = NULL;
        cairn_mpi_ckpt *dist = NULL;
        if ((bad = open_both(root, k, c, &one, &dist)))
            break;
        for (uint64_t epoch = 1; epoch <= 16 && !bad; epoch++) {
            uint64_t step = epoch * 3;
            unsigned flags = epoch == 11 ? CAIRN_STEP_FORCE : 0;
            cairn_value *metrics = cairn_value_map();
            cairn_value_set(metrics, "loss", cairn_value_float(metric_at(epoch, 0)), NULL);
            cairn_value_set(metrics, "acc", cairn_value_float(metric_at(epoch, 1)), NULL);
            int saved1 = 0, saved2 = 0;
            if (me == 0) {
                cairn_value *extra = cairn_value_map();
                cairn_value_set(extra, "epoch", cairn_value_int((int64_t)epoch), NULL);
                cairn_model_parts parts = {.struct_size = sizeof parts, .extra = extra};
                if (cairn_ckpt_step(one, epoch, step, metrics, &parts, flags, &saved1, &err) !=
                    CAIRN_OK)
                    FAIL("cairn_ckpt_step: %s", err.message);
                cairn_value_free(extra);
            }
            cairn_mpi_save *s = NULL;
            if (cairn_mpi_ckpt_begin(dist, epoch, step, metrics, flags, &s, &saved2, &err) !=
                CAIRN_OK)
                FAIL("cairn_mpi_ckpt_begin: %s", err.message);
            cairn_value_free(metrics);
            if (s) {
                uint64_t dims[1] = {4 * (uint64_t)size}, off[1] = {4 * (uint64_t)me},
                         ext[1] = {4};
                cairn_mpi_save_add(s, "w", CAIRN_F32, 1, dims, off, ext, w, &err);
                if (cairn_mpi_ckpt_commit(dist, s, &err) != CAIRN_OK)
                    FAIL("cairn_mpi_ckpt_commit: %s", err.message);
            }
            if (me == 0 && saved1 != saved2)
                FAIL("config %zu, epoch %llu: saved %d vs %d", k, (unsigned long long)epoch,
                     saved1, saved2);
            if (me == 0 && !bad)
                bad += compare(one, dist, "after the step", epoch);
            MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
        }
        cairn_ckpt_close(one, NULL);
        cairn_mpi_ckpt_close(dist, NULL);
        if (bad)
            break;
        /* what a later run finds in the directories: the same again */
        if ((bad = open_both(root, k, c, &one, &dist)) == 0 && me == 0)
            bad += compare(one, dist, "reopened", 0);
        cairn_ckpt_close(one, NULL);
        cairn_mpi_ckpt_close(dist, NULL);
        MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (me == 0 && !bad)
            printf("config %zu: the same checkpoints kept and the same best\n", k);
    }
    return bad;
}

static int do_signal(const char *root)
{
    int bad = 0;
    cairn_error err;
    cairn_mpi_ckpt_opts o = {.struct_size = sizeof o, .dirname = root, .every_epochs = 1000,
                             .monitor = "loss",
                             .flags = CAIRN_CKPT_SIGNALS | CAIRN_CKPT_NO_SYNC};
    cairn_mpi_ckpt *m;
    if (cairn_mpi_ckpt_open(MPI_COMM_WORLD, &o, &m, &err) != CAIRN_OK) {
        FAIL("open: %s", err.message);
        return bad;
    }
    float w[4] = {0};
    uint64_t signal_steps[2] = {0, 0};
    int nsignal = 0, nsaves = 0;
    for (uint64_t step = 1; step <= 12; step++) {
        cairn_value *metrics = cairn_value_map();
        /* rank 0's metric decides; the others pass a worse one */
        cairn_value_set(metrics, "loss", cairn_value_float(me == 0 ? 5.0 : 1.0), NULL);
        cairn_mpi_save *s = NULL;
        int saved = 0;
        if (cairn_mpi_ckpt_begin(m, 1, step, metrics, 0, &s, &saved, &err) != CAIRN_OK)
            FAIL("begin at step %llu: %s", (unsigned long long)step, err.message);
        cairn_value_free(metrics);
        if (s) {
            uint64_t dims[1] = {4 * (uint64_t)size}, off[1] = {4 * (uint64_t)me}, ext[1] = {4};
            cairn_mpi_save_add(s, "w", CAIRN_F32, 1, dims, off, ext, w, &err);
            if (cairn_mpi_ckpt_commit(m, s, &err) != CAIRN_OK)
                FAIL("commit: %s", err.message);
            nsaves++;
        }
        if (saved == CAIRN_SAVED_SIGNAL && nsignal < 2)
            signal_steps[nsignal++] = step;
        /* between steps: a signal on one rank only */
        if (step == 4 && me == size - 1)
            raise(SIGUSR1);
        if (step == 8 && me == 0)
            raise(SIGTERM);
    }
    /* step 1 saves (the first metric improves), then steps 5 and 9 by signal */
    if (nsignal != 2 || signal_steps[0] != 5 || signal_steps[1] != 9 || nsaves != 3)
        FAIL("signal saves at steps %llu and %llu (%d), %d saves; expected 5 and 9, 3 saves",
             (unsigned long long)signal_steps[0], (unsigned long long)signal_steps[1], nsignal,
             nsaves);
    cairn_mpi_ckpt_info info;
    if (cairn_mpi_ckpt_count(m) != 3 || cairn_mpi_ckpt_info_at(m, 1, &info, NULL) != CAIRN_OK ||
        info.step != 5 || strcmp(info.reasons, "signal"))
        FAIL("the second checkpoint is not step 5's, saved for the signal");
    /* rank 0 lacks the monitored metric: every rank fails */
    cairn_value *metrics = cairn_value_map();
    if (me != 0)
        cairn_value_set(metrics, "loss", cairn_value_float(0.5), NULL);
    cairn_mpi_save *s = NULL;
    if (cairn_mpi_ckpt_begin(m, 0, 13, metrics, 0, &s, NULL, &err) == CAIRN_OK ||
        !strstr(err.message, "'loss' is missing"))
        FAIL("a metric missing on rank 0 is not an error on every rank: %s", err.message);
    cairn_value_free(metrics);
    cairn_mpi_save_abort(s);
    if (cairn_mpi_ckpt_close(m, &err) != CAIRN_OK)
        FAIL("close: %s", err.message);
    /* the handlers are the caller's again */
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    if (sa.sa_handler != SIG_DFL)
        FAIL("SIGUSR1's handler was not restored");
    if (me == 0 && !bad)
        printf("signals: every rank saved at steps 5 and 9, and only then\n");
    return bad;
}

int main(int argc, char **argv)
{
    mpi_test_begin(&argc, &argv, &me, &size);
    int bad = 1;
    if (argc >= 3 && !strcmp(argv[1], "parity"))
        bad = do_parity(argv[2]);
    else if (argc >= 3 && !strcmp(argv[1], "signal"))
        bad = do_signal(argv[2]);
    else if (me == 0)
        fprintf(stderr, "usage: mpi_ckpt_policy parity ROOT | signal ROOT\n");
    return mpi_test_end(bad);
}
