/* manager.c -- the training state through libcairn's checkpoint manager
 * (docs/CHECKPOINTS.md), the way skorch's callbacks use a directory:
 *
 *   Checkpoint(monitor=...)   the main manager: at each epoch's end it gets
 *                             the metrics and the whole state, and saves when
 *                             the monitored metric improved (or every N
 *                             epochs, or on SIGTERM/SIGINT)
 *   TrainEndCheckpoint        a second manager on the same directory with
 *                             its own prefix, forced to save once at the end
 *   LoadInitState             --resume: the newest checkpoint that verifies
 *                             (or the best), with the epoch count going on
 *
 * Each checkpoint holds exactly what --save writes (checkpoint_parts_make),
 * so a checkpoint resumes bit for bit like a --save file does. The directory
 * is the only state: a killed run loses nothing that was committed.
 */
#include "mlp.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int monitor_is_max(const char *monitor)
{
    return monitor && strcmp(monitor, "valid_acc") == 0;
}

/* ------------------------------------------------------------- training */

static unsigned mode_flags(const char *monitor)
{
    return monitor_is_max(monitor) ? CAIRN_CKPT_MODE_MAX : 0;
}

cairn_status ckpts_open(const ckpt_config *c, run_ckpts *out, cairn_error *err)
{
    *out = (run_ckpts){.dir = c->dir};
    if (!c->dir)
        return CAIRN_OK;
    unsigned async = c->async ? CAIRN_CKPT_ASYNC : 0;
    /* A resumed run goes on with the checkpoints it resumed from: retention
     * may remove them too. A fresh run never removes what it found. */
    unsigned earlier = c->resume != RESUME_NONE && c->resume_prefix && c->prefix &&
                               strcmp(c->resume_prefix, c->prefix) == 0
                           ? CAIRN_CKPT_PRUNE_EARLIER
                           : 0;
    /* The main manager takes the signals: SIGTERM (a scheduler preempting
     * the job) or Ctrl-C then saves at the next epoch's end, and we stop. */
    cairn_ckpt_opts main = {
        .struct_size = sizeof main,
        .dirname = c->dir,
        .fn_prefix = c->prefix,
        .monitor = c->monitor,
        .flags = mode_flags(c->monitor) | async | earlier | CAIRN_CKPT_SIGNALS,
        .every_epochs = c->every,
        .keep_best = c->keep_best,
        .keep_last = c->keep_last,
    };
    cairn_status st = cairn_ckpt_open(&main, &out->main, err);
    if (st != CAIRN_OK || !c->train_end_prefix)
        return st;
    /* No monitor and no trigger: it saves only when forced, at train end. */
    cairn_ckpt_opts end = {.struct_size = sizeof end, .dirname = c->dir,
                           .fn_prefix = c->train_end_prefix, .flags = async};
    st = cairn_ckpt_open(&end, &out->train_end, err);
    if (st != CAIRN_OK) {
        cairn_ckpt_close(out->main, NULL);
        out->main = NULL;
    }
    return st;
}

/* What the monitor can watch: skorch's history columns. */
static cairn_value *metrics_value(const epoch_stats *s)
{
    cairn_value *m = cairn_value_map();
    if (m && cairn_value_set(m, "train_loss", cairn_value_float(s->train_loss), NULL) == CAIRN_OK &&
        cairn_value_set(m, "valid_loss", cairn_value_float(s->valid_loss), NULL) == CAIRN_OK &&
        cairn_value_set(m, "valid_acc", cairn_value_float(s->valid_acc), NULL) == CAIRN_OK)
        return m;
    cairn_value_free(m);
    return NULL;
}

/* Offers the whole state to a manager; it decides whether to save. */
static cairn_status offer(cairn_ckpt *m, const trainer *t, const cairn_value *metrics,
                          unsigned flags, int *saved, cairn_error *err)
{
    checkpoint_parts cp;
    cairn_status st = checkpoint_parts_make(t, &cp, err);
    /* The step counts optimizer steps, so every_steps would work too. With
     * --async the library copies the buffers before it returns: training
     * may change them at once. */
    if (st == CAIRN_OK)
        st = cairn_ckpt_step(m, (uint64_t)t->epoch, (uint64_t)t->opt.step, metrics, &cp.parts,
                             flags, saved, err);
    checkpoint_parts_free(&cp);
    return st;
}

cairn_status ckpts_epoch_end(run_ckpts *r, const trainer *t, const epoch_stats *s, int *saved,
                             cairn_error *err)
{
    *saved = CAIRN_SAVED_NO;
    if (!r->main)
        return CAIRN_OK;
    cairn_value *metrics = metrics_value(s);
    if (!metrics)
        return fail(err, CAIRN_E_NOMEM, "out of memory recording epoch %" PRId64, s->epoch);
    cairn_status st = offer(r->main, t, metrics, 0, saved, err);
    cairn_value_free(metrics);
    if (st == CAIRN_OK && *saved != CAIRN_SAVED_NO)
        r->saved++;
    return st;
}

/* The path of a manager's newest checkpoint, once any background save is
 * done (a listing shows an async save only after it was collected). */
static cairn_status latest_path(cairn_ckpt *m, char *buf, size_t size, cairn_error *err)
{
    size_t index;
    cairn_ckpt_info info;
    cairn_status st = cairn_ckpt_wait(m, err);
    if (st == CAIRN_OK)
        st = cairn_ckpt_latest(m, &index, err);
    if (st == CAIRN_OK)
        st = cairn_ckpt_info_at(m, index, &info, err);
    if (st == CAIRN_OK)
        snprintf(buf, size, "%s", info.path);
    return st;
}

cairn_status ckpts_train_end(run_ckpts *r, const trainer *t, cairn_error *err)
{
    char path[4096];
    cairn_status st = CAIRN_OK;
    if (r->main && r->saved > 0) {
        st = latest_path(r->main, path, sizeof path, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: %zu checkpoint%s saved in this run, the last %s\n", r->saved,
                    r->saved == 1 ? "" : "s", path);
    }
    if (st != CAIRN_OK || !r->train_end)
        return st;
    st = offer(r->train_end, t, NULL, CAIRN_STEP_FORCE, NULL, err);
    if (st == CAIRN_OK)
        st = latest_path(r->train_end, path, sizeof path, err);
    if (st == CAIRN_OK)
        fprintf(stderr, "mlp: train-end checkpoint %s (epoch %" PRId64 ")\n", path, t->epoch);
    return st;
}

cairn_status ckpts_close(run_ckpts *r, cairn_error *err)
{
    /* Close waits for a background save and returns its error: only then is
     * the last checkpoint known to be on disk. Close in the reverse order of
     * opening, so the signal handlers are restored as they were. */
    cairn_error end_err = {0};
    cairn_status end = cairn_ckpt_close(r->train_end, &end_err);
    cairn_status st = cairn_ckpt_close(r->main, err);
    if (st == CAIRN_OK && end != CAIRN_OK) {
        if (err)
            *err = end_err;
        st = end;
    }
    *r = (run_ckpts){0};
    return st;
}

/* ------------------------------------------------------------ restoring */

/* A manager that only reads: the checkpoints of the resume prefix, ranked
 * by the monitor (for "best"). */
static cairn_status open_reader(const ckpt_config *c, cairn_ckpt **m, cairn_error *err)
{
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = c->dir,
                         .fn_prefix = c->resume_prefix, .monitor = c->monitor,
                         .flags = mode_flags(c->monitor) | CAIRN_CKPT_READ_ONLY};
    return cairn_ckpt_open(&o, m, err);
}

/* A metric value means "best" only under the monitor it was recorded for. */
static cairn_status check_ranked_by(const char *path, const cairn_value *meta,
                                    const char *monitor, cairn_error *err)
{
    const cairn_value *v = cairn_value_get(cairn_value_get(meta, "checkpoint"), "monitor");
    const void *name = "none";
    size_t len = 4;
    if (v)
        cairn_value_get_data(v, &name, &len);
    if (monitor && strlen(monitor) == len && memcmp(monitor, name, len) == 0)
        return CAIRN_OK;
    return fail(err, CAIRN_E_MISMATCH,
                "%s was ranked by --monitor %.*s, not %s: pass --monitor %.*s to pick the best",
                path, (int)len, (const char *)name, monitor ? monitor : "none", (int)len,
                (const char *)name);
}

/* Steps 2 and 3 of a restore (mlp.h), for checkpoint `index` of m whose
 * metadata `meta` was read (and checked) in step 1. */
static cairn_status restore_index(cairn_ckpt *m, size_t index, const cairn_value *meta,
                                  const train_config *want, unsigned given, trainer **out,
                                  cairn_error *err)
{
    cairn_ckpt_info info;
    char path[4096];
    trainer *t = NULL;
    cairn_status st = cairn_ckpt_info_at(m, index, &info, err);
    if (st == CAIRN_OK) /* info.path is borrowed only until the next call */
        snprintf(path, sizeof path, "%s", info.path);
    if (st == CAIRN_OK)
        st = checkpoint_prepare(path, meta, want, given, &t, err);
    cairn_model_parts parts = checkpoint_tensor_parts(t);
    cairn_load_opts opts = checkpoint_load_opts();
    if (st == CAIRN_OK)
        st = cairn_ckpt_load(m, index, &parts, &opts, NULL, err);
    if (st == CAIRN_OK)
        st = checkpoint_restore(path, meta, t, err);
    /* The manager counts epochs from its own record; ours must agree. */
    if (st == CAIRN_OK && (uint64_t)t->epoch != info.epoch)
        st = fail(err, CAIRN_E_CORRUPT,
                  "%s: the checkpoint record says epoch %" PRIu64 ", the data position %" PRId64,
                  path, info.epoch, t->epoch);
    if (st != CAIRN_OK) {
        trainer_free(t);
        return st;
    }
    *out = t;
    return CAIRN_OK;
}

/* Step 1 for the newest checkpoint that verifies: the library walks back
 * past damaged ones. The peek loads no tensors, but the manager opens each
 * candidate with every checksum verified, so a damaged payload is passed
 * over here already. */
static cairn_status pick_latest(cairn_ckpt *m, size_t *index, cairn_value **meta,
                                cairn_error *err)
{
    cairn_model_parts peek = checkpoint_tensor_parts(NULL);
    cairn_ckpt_resume_info info;
    cairn_status st = cairn_ckpt_resume(m, &peek, NULL, meta, &info, err);
    if (info.skipped > 0)
        fprintf(stderr, "mlp: %s\n", info.why);
    *index = info.index;
    return st;
}

/* Step 1 for the best checkpoint by the monitor. */
static cairn_status pick_best(cairn_ckpt *m, const char *monitor, size_t *index,
                              cairn_value **meta, cairn_error *err)
{
    cairn_model_parts peek = checkpoint_tensor_parts(NULL);
    cairn_ckpt_info info;
    cairn_status st = cairn_ckpt_best(m, index, err);
    if (st == CAIRN_OK)
        st = cairn_ckpt_load(m, *index, &peek, NULL, meta, err);
    if (st == CAIRN_OK)
        st = cairn_ckpt_info_at(m, *index, &info, err);
    if (st == CAIRN_OK)
        st = check_ranked_by(info.path, *meta, monitor, err);
    return st;
}

static void say_restored(const char *verb, cairn_ckpt *m, size_t index, const trainer *t)
{
    cairn_ckpt_info info;
    if (cairn_ckpt_info_at(m, index, &info, NULL) != CAIRN_OK)
        return;
    char metric[48] = "";
    if (info.has_metric)
        snprintf(metric, sizeof metric, ", metric %.6g", info.metric);
    fprintf(stderr, "mlp: %s %s: epoch %" PRId64 "%s, saved for %s (%s, lr %g, %d units)\n",
            verb, info.path, t->epoch, metric, info.reasons[0] ? info.reasons : "-",
            optim_kind_name(t->cfg.optimizer), t->cfg.lr, t->cfg.num_units);
}

/* Opens the resume prefix, picks a checkpoint and restores it. *out stays
 * NULL if the prefix has no checkpoint at all. */
static cairn_status restore_from_dir(const ckpt_config *c, resume_from which, const char *verb,
                                     const train_config *want, unsigned given, trainer **out,
                                     cairn_error *err)
{
    cairn_ckpt *m = NULL;
    cairn_value *meta = NULL;
    size_t index = 0;
    *out = NULL;
    cairn_status st = open_reader(c, &m, err);
    if (st != CAIRN_OK || cairn_ckpt_count(m) == 0) {
        cairn_ckpt_close(m, NULL);
        return st;
    }
    if (which == RESUME_BEST)
        st = pick_best(m, c->monitor, &index, &meta, err);
    else
        st = pick_latest(m, &index, &meta, err);
    if (st == CAIRN_OK)
        st = restore_index(m, index, meta, want, given, out, err);
    if (st == CAIRN_OK)
        say_restored(verb, m, index, *out);
    cairn_value_free(meta);
    cairn_ckpt_close(m, NULL); /* a reader has no background save */
    return st;
}

cairn_status ckpt_resume(const ckpt_config *c, const train_config *want, unsigned given,
                         trainer **out, cairn_error *err)
{
    struct stat sb;
    cairn_status st = CAIRN_OK;
    *out = NULL;
    /* A directory that does not exist yet holds no checkpoint (a reader does
     * not create it; the run's own manager will). */
    if (stat(c->dir, &sb) == 0)
        st = restore_from_dir(c, c->resume,
                              c->resume == RESUME_BEST ? "resumed from the best checkpoint"
                                                       : "resumed from",
                              want, given, out, err);
    /* skorch's LoadInitState: the same command runs the first time too. */
    if (st == CAIRN_OK && !*out)
        fprintf(stderr, "mlp: no %sckpt-*.cairn checkpoint in %s yet: starting a fresh run\n",
                c->resume_prefix, c->dir);
    return st;
}

cairn_status ckpt_load_best(const ckpt_config *c, const train_config *want, unsigned given,
                            trainer **out, cairn_error *err)
{
    struct stat sb;
    /* Reading must not create the directory (opening a manager would). */
    if (stat(c->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fail(err, CAIRN_E_IO, "%s: no such checkpoint directory", c->dir);
    cairn_status st = restore_from_dir(c, RESUME_BEST, "loaded the best checkpoint", want, given,
                                       out, err);
    if (st == CAIRN_OK && !*out)
        st = fail(err, CAIRN_E_NOT_FOUND, "%s: no %sckpt-*.cairn checkpoint", c->dir,
                  c->resume_prefix);
    return st;
}
