/*
 * ckpt_policy.h -- the checkpoint managers' rules: when a step saves (the
 * triggers and their reasons) and what retention keeps (docs/CHECKPOINTS.md).
 * Shared by the single-process manager (src/ckpt/ckpt.c) and the
 * distributed one (src/mpi/mpi_ckpt.c) so both follow the same rules; all
 * static inline (like archive/dist_boxes.h) because libcairn_mpi is a
 * client of cairn.h and links no internal symbol of libcairn.
 */
#ifndef CAIRN_CKPT_POLICY_H
#define CAIRN_CKPT_POLICY_H

#include <cairn.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the triggers look at. */
typedef struct cairn__ckpt_trig {
    int monitor;  /* a metric is monitored */
    int maximize; /* it improves upwards */
    uint32_t every_epochs;
    uint64_t every_steps;
    double every_seconds;
    int has_best;
    double best_metric; /* best metric among valid checkpoints */
    uint64_t last_step; /* of the newest checkpoint */
    double last_time;
} cairn__ckpt_trig;

static inline int cairn__ckpt_better(int maximize, double a, double b)
{
    return maximize ? a > b : a < b;
}

/* A metric `metric` (has_metric) beats the best so far. */
static inline int cairn__ckpt_improves(const cairn__ckpt_trig *t, int has_metric, double metric)
{
    return has_metric && !isnan(metric) &&
           (!t->has_best || cairn__ckpt_better(t->maximize, metric, t->best_metric));
}

/* Why this step saves, as "improved,every_steps" (empty: it does not). */
static inline void cairn__ckpt_reasons(const cairn__ckpt_trig *t, uint64_t epoch, uint64_t step,
                                       int has_metric, double metric, int force, int signal,
                                       double now, char *out, size_t size)
{
    out[0] = '\0';
    int any_trigger = t->monitor || t->every_epochs || t->every_steps || t->every_seconds > 0;
#define CAIRN__ADD(r) \
    snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? "," : "", r)
    if (force)
        CAIRN__ADD("forced");
    if (signal)
        CAIRN__ADD("signal");
    if (cairn__ckpt_improves(t, has_metric, metric))
        CAIRN__ADD("improved");
    if (t->every_epochs && epoch % t->every_epochs == 0)
        CAIRN__ADD("every_epochs");
    if (t->every_steps && step >= t->last_step + t->every_steps)
        CAIRN__ADD("every_steps");
    if (t->every_seconds > 0 && now - t->last_time >= t->every_seconds)
        CAIRN__ADD("every_seconds");
    if (!any_trigger && !force)
        CAIRN__ADD("every_time");
#undef CAIRN__ADD
}

/* A checkpoint was saved (or found valid at open, newest last): the
 * triggers count from it. */
static inline void cairn__ckpt_trig_saved(cairn__ckpt_trig *t, uint64_t step, double time,
                                          int has_metric, double metric)
{
    t->last_step = step;
    t->last_time = time;
    if (cairn__ckpt_improves(t, has_metric, metric)) {
        t->has_best = 1;
        t->best_metric = metric;
    }
}

/* A valid checkpoint found at open (any order): the triggers count from
 * the newest, the best metric is the best of them. */
static inline void cairn__ckpt_trig_found(cairn__ckpt_trig *t, uint64_t step, double time,
                                          int has_metric, double metric)
{
    if (cairn__ckpt_improves(t, has_metric, metric)) {
        t->has_best = 1;
        t->best_metric = metric;
    }
    if (time > t->last_time) {
        t->last_time = time;
        t->last_step = step;
    }
}

/* One checkpoint as retention sees it. */
typedef struct cairn__ckpt_rec {
    uint64_t epoch;
    int valid;
    int mine; /* saved through this manager since it was opened */
    int has_metric;
    double metric;
} cairn__ckpt_rec;

typedef struct cairn__ckpt_ranked {
    size_t index;
    double metric;
    int maximize;
} cairn__ckpt_ranked;

static inline int cairn__ckpt_ranked_cmp(const void *a, const void *b)
{
    const cairn__ckpt_ranked *x = a, *y = b;
    if (x->metric == y->metric)
        return (x->index < y->index) - (x->index > y->index); /* newer first on ties */
    return cairn__ckpt_better(x->maximize, x->metric, y->metric) ? -1 : 1;
}

/* Marks in keep[] (n entries, oldest first, read through get) what the
 * policy keeps: the `best` best by the metric, the `last` newest valid,
 * those whose epoch is a multiple of `every`. Invalid checkpoints are never
 * removed (they may be evidence), the newest valid one always stays, and
 * unless `earlier`, checkpoints this manager did not save stay too (they
 * count for the policy, but may belong to another run). All policies 0 =
 * keep everything. Returns 0, or -1 out of memory (keep[] untouched). */
static inline int cairn__ckpt_mark_kept(const void *entries, size_t n,
                                        void (*get)(const void *entries, size_t i,
                                                    cairn__ckpt_rec *out),
                                        uint32_t best, uint32_t last, uint32_t every,
                                        int earlier, int maximize, unsigned char *keep)
{
    int no_policy = !best && !last && !every;
    cairn__ckpt_ranked *r = malloc((n ? n : 1) * sizeof *r);
    if (!r)
        return -1;
    size_t nr = 0, newest_valid = SIZE_MAX, seen_valid = 0;
    for (size_t i = n; i-- > 0;) {
        cairn__ckpt_rec e;
        get(entries, i, &e);
        keep[i] = no_policy || !e.valid || (!earlier && !e.mine);
        if (!e.valid)
            continue;
        if (newest_valid == SIZE_MAX)
            newest_valid = i;
        if (seen_valid++ < last)
            keep[i] = 1;
        if (every && e.epoch % every == 0)
            keep[i] = 1;
        if (e.has_metric && !isnan(e.metric))
            r[nr++] = (cairn__ckpt_ranked){i, e.metric, maximize};
    }
    qsort(r, nr, sizeof *r, cairn__ckpt_ranked_cmp);
    for (size_t k = 0; k < nr && k < best; k++)
        keep[r[k].index] = 1;
    if (newest_valid != SIZE_MAX)
        keep[newest_valid] = 1;
    free(r);
    return 0;
}

/* A number in a map (float or integer); *found says whether there is one. */
static inline double cairn__ckpt_number_at(const cairn_value *map, const char *key, int *found)
{
    const cairn_value *v = cairn_value_get(map, key);
    double d;
    int64_t i;
    *found = 1;
    if (cairn_value_get_float(v, &d) == CAIRN_OK)
        return d;
    if (cairn_value_get_int(v, &i) == CAIRN_OK)
        return (double)i;
    *found = 0;
    return 0;
}

/* The manager's record of a checkpoint, stored under "checkpoint" in its
 * metadata (docs/CHECKPOINTS.md: seq, epoch, step, time, metric, monitor,
 * mode, reasons, metrics). NULL out of memory. */
static inline cairn_value *cairn__ckpt_record(uint64_t seq, uint64_t epoch, uint64_t step,
                                              double time, int has_metric, double metric,
                                              const char *monitor, int maximize,
                                              const char *reasons, const cairn_value *metrics,
                                              cairn_error *err)
{
    cairn_value *r = cairn_value_map();
    cairn_status st = r ? CAIRN_OK : CAIRN_E_NOMEM;
    if (st == CAIRN_OK)
        st = cairn_value_set(r, "seq", cairn_value_int((int64_t)seq), err);
    if (st == CAIRN_OK)
        st = cairn_value_set(r, "epoch", cairn_value_int((int64_t)epoch), err);
    if (st == CAIRN_OK)
        st = cairn_value_set(r, "step", cairn_value_int((int64_t)step), err);
    if (st == CAIRN_OK)
        st = cairn_value_set(r, "time", cairn_value_float(time), err);
    if (st == CAIRN_OK && has_metric)
        st = cairn_value_set(r, "metric", cairn_value_float(metric), err);
    if (st == CAIRN_OK && monitor)
        st = cairn_value_set(r, "monitor", cairn_value_string(monitor), err);
    if (st == CAIRN_OK && monitor)
        st = cairn_value_set(r, "mode", cairn_value_string(maximize ? "max" : "min"), err);
    if (st == CAIRN_OK)
        st = cairn_value_set(r, "reasons", cairn_value_string(reasons), err);
    if (st == CAIRN_OK && metrics)
        st = cairn_value_set(r, "metrics", cairn_value_clone(metrics), err);
    if (st != CAIRN_OK) {
        cairn_value_free(r);
        return NULL;
    }
    return r;
}

#endif
