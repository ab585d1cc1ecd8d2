/* checkpoint.c -- the whole training state in one cairn archive, and the
 * parameters alone.
 *
 * A resumed run matches an uninterrupted one bit for bit only if the archive
 * holds everything that influences training, so it holds (docs/MODEL.md):
 *
 *   type_tag       {"kind": "mlp", "schema_version": 1}
 *   params/        0.weight 0.bias 3.weight 3.bias 4.weight 4.bias (F32)
 *   optimizer/     0.weight.momentum_buffer ...  or  0.weight.exp_avg,
 *                  0.weight.exp_avg_sq ...      (torch's state names)
 *   config         the options of the run and a fingerprint of its data
 *   optimizer      kind, hyperparameters and step count
 *   rng            the dropout generator's 256-bit state
 *   data_position  epochs done, the batch within the epoch (always 0: saves
 *                  happen between epochs) and the shuffle generator's state
 *   history        one map per epoch: epoch, train_loss, valid_acc,
 *                  valid_loss, dur
 *
 * cairn_model_save writes all of it with one atomic rename, so the parts can
 * never come from two different moments of the run.
 */
#include "mlp.h"

#include <float.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MLP_KIND "mlp"
#define MLP_SCHEMA_VERSION 1
#define RNG_ALGORITHM "xoshiro256** (4 little-endian uint64 words)"

cairn_status fail(cairn_error *err, cairn_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

/* ------------------------------------------------------ building metadata */

/* Sets map[key] = child and returns the map. On failure it frees both and
 * returns NULL, and every later call on that NULL is a no-op returning NULL,
 * so a tree is built as a plain sequence of calls with one check at the end.
 * Our keys and strings are ASCII, so the only possible failure is running
 * out of memory. */
static cairn_value *with(cairn_value *map, const char *key, cairn_value *child)
{
    if (map && child && cairn_value_set(map, key, child, NULL) == CAIRN_OK)
        return map;
    cairn_value_free(map);
    cairn_value_free(child);
    return NULL;
}

/* Appends child to a list, in the manner of with(). */
static cairn_value *pushed(cairn_value *list, cairn_value *child)
{
    if (list && child && cairn_value_append(list, child, NULL) == CAIRN_OK)
        return list;
    cairn_value_free(list);
    cairn_value_free(child);
    return NULL;
}

static cairn_value *rng_bytes(const rng *r)
{
    uint8_t state[RNG_STATE_BYTES];
    rng_to_bytes(r, state);
    return cairn_value_bytes(state, sizeof state);
}

static cairn_value *data_value(const dataset *d)
{
    char fingerprint[32];
    snprintf(fingerprint, sizeof fingerprint, "fnv1a64:%016" PRIx64, d->fingerprint);
    cairn_value *m = cairn_value_map();
    m = with(m, "generator", cairn_value_string("make_classification-like, examples/mlp/data.c"));
    m = with(m, "seed", cairn_value_int(DATA_SEED));
    m = with(m, "rows", cairn_value_int(DATA_ROWS));
    m = with(m, "features", cairn_value_int(DATA_FEATURES));
    m = with(m, "informative", cairn_value_int(DATA_INFORMATIVE));
    m = with(m, "redundant", cairn_value_int(DATA_REDUNDANT));
    m = with(m, "classes", cairn_value_int(DATA_CLASSES));
    m = with(m, "train_rows", cairn_value_int(DATA_TRAIN_ROWS));
    m = with(m, "valid_rows", cairn_value_int(DATA_ROWS - DATA_TRAIN_ROWS));
    return with(m, "fingerprint", cairn_value_string(fingerprint));
}

/* The network as PyTorch would print it. */
static void module_text(const train_config *c, char *buf, size_t size)
{
    snprintf(buf, size,
             "Sequential(Linear(%d, %d), ReLU(), Dropout(p=%g), Linear(%d, %d), Linear(%d, %d), "
             "Softmax(dim=-1))",
             MLP_IN, c->num_units, c->dropout, c->num_units, MLP_MID, MLP_MID, MLP_OUT);
}

static cairn_value *config_value(const trainer *t)
{
    const train_config *c = &t->cfg;
    char module[160];
    module_text(c, module, sizeof module);
    cairn_value *m = cairn_value_map();
    m = with(m, "module", cairn_value_string(module));
    m = with(m, "num_units", cairn_value_int(c->num_units));
    m = with(m, "dropout", cairn_value_float(c->dropout));
    m = with(m, "criterion", cairn_value_string("NLLLoss on log(p + FLT_EPSILON)"));
    m = with(m, "batch_size", cairn_value_int(c->batch_size));
    m = with(m, "optimizer", cairn_value_string(optim_kind_name(c->optimizer)));
    m = with(m, "lr", cairn_value_float(c->lr));
    m = with(m, "seed", cairn_value_int((int64_t)c->seed));
    return with(m, "data", data_value(&t->data));
}

static cairn_value *optimizer_value(const optim *o)
{
    cairn_value *m = cairn_value_map();
    m = with(m, "kind", cairn_value_string(optim_kind_name(o->kind)));
    m = with(m, "lr", cairn_value_float(o->lr));
    if (o->kind == OPTIM_SGD) {
        m = with(m, "momentum", cairn_value_float(o->momentum));
    } else {
        cairn_value *betas = cairn_value_list();
        betas = pushed(betas, cairn_value_float(o->beta1));
        betas = pushed(betas, cairn_value_float(o->beta2));
        m = with(m, "betas", betas);
        m = with(m, "eps", cairn_value_float(o->eps));
    }
    m = with(m, "weight_decay", cairn_value_float(o->weight_decay));
    return with(m, "step", cairn_value_int(o->step));
}

static cairn_value *rng_value(const trainer *t)
{
    cairn_value *m = cairn_value_map();
    m = with(m, "algorithm", cairn_value_string(RNG_ALGORITHM));
    return with(m, "dropout", rng_bytes(&t->model_rng));
}

static cairn_value *position_value(const trainer *t)
{
    cairn_value *m = cairn_value_map();
    m = with(m, "epoch", cairn_value_int(t->epoch));
    m = with(m, "batch", cairn_value_int(0));
    return with(m, "shuffle_rng", rng_bytes(&t->shuffle_rng));
}

cairn_status history_append(cairn_value *history, const epoch_stats *s, cairn_error *err)
{
    cairn_value *e = cairn_value_map();
    e = with(e, "epoch", cairn_value_int(s->epoch));
    e = with(e, "train_loss", cairn_value_float(s->train_loss));
    e = with(e, "valid_acc", cairn_value_float(s->valid_acc));
    e = with(e, "valid_loss", cairn_value_float(s->valid_loss));
    e = with(e, "dur", cairn_value_float(s->dur));
    if (!e)
        return fail(err, CAIRN_E_NOMEM, "out of memory recording epoch %" PRId64, s->epoch);
    cairn_status st = cairn_value_append(history, e, err);
    if (st != CAIRN_OK)
        cairn_value_free(e);
    return st;
}

cairn_status checkpoint_parts_make(const trainer *t, checkpoint_parts *out, cairn_error *err)
{
    *out = (checkpoint_parts){.config = config_value(t), .optimizer = optimizer_value(&t->opt),
                              .rng = rng_value(t), .position = position_value(t)};
    if (!out->config || !out->optimizer || !out->rng || !out->position) {
        checkpoint_parts_free(out);
        return fail(err, CAIRN_E_NOMEM, "out of memory building the checkpoint metadata");
    }
    out->parts = (cairn_model_parts){
        .struct_size = sizeof out->parts,
        .kind = MLP_KIND,
        .schema_version = MLP_SCHEMA_VERSION,
        .params = t->params,
        .optimizer_tensors = t->optim_state,
        .config = out->config,
        .optimizer = out->optimizer,
        .history = t->history,
        .rng = out->rng,
        .data_position = out->position,
    };
    return CAIRN_OK;
}

void checkpoint_parts_free(checkpoint_parts *cp)
{
    cairn_value_free(cp->config);
    cairn_value_free(cp->optimizer);
    cairn_value_free(cp->rng);
    cairn_value_free(cp->position);
    *cp = (checkpoint_parts){0};
}

cairn_status checkpoint_save(const trainer *t, const char *path, cairn_error *err)
{
    checkpoint_parts cp;
    cairn_status st = checkpoint_parts_make(t, &cp, err);
    if (st == CAIRN_OK)
        st = cairn_model_save(path, &cp.parts, err);
    checkpoint_parts_free(&cp);
    return st;
}

cairn_status params_save(const trainer *t, const char *path, cairn_error *err)
{
    /* Tensors under their bare PyTorch names, like a torch state_dict file;
     * the config rides along so that `cairn meta` tells which network fits. */
    cairn_value *meta = with(cairn_value_map(), "config", config_value(t));
    if (!meta)
        return fail(err, CAIRN_E_NOMEM, "%s: out of memory building the metadata", path);
    cairn_status st = cairn_params_save(t->params, path, meta, err);
    cairn_value_free(meta);
    return st;
}

cairn_status params_export(const trainer *t, const char *path, cairn_error *err)
{
    /* A .pt with metadata would be a dict around the state_dict (and floats
     * in it need torch >= 2.0 under weights_only): write the state_dict alone. */
    size_t n = strlen(path);
    if ((n > 3 && !strcmp(path + n - 3, ".pt")) || (n > 4 && !strcmp(path + n - 4, ".pth")))
        return cairn_params_save(t->params, path, NULL, err);
    /* Other tools read safetensors metadata as a flat map of strings: give
     * them strings only (a nested tree would go into one "cairn.meta" JSON
     * entry that only cairn reads back, docs/FORMAT.md section 11.4). */
    char module[160], units[16];
    module_text(&t->cfg, module, sizeof module);
    snprintf(units, sizeof units, "%d", t->cfg.num_units);
    cairn_value *meta = cairn_value_map();
    meta = with(meta, "format", cairn_value_string("pt"));
    meta = with(meta, "module", cairn_value_string(module));
    meta = with(meta, "num_units", cairn_value_string(units));
    if (!meta)
        return fail(err, CAIRN_E_NOMEM, "%s: out of memory building the metadata", path);
    cairn_status st = cairn_params_save(t->params, path, meta, err);
    cairn_value_free(meta);
    return st;
}

/* ------------------------------------------------------- reading metadata */

/* One part (a map) of a file's metadata, with what messages need to say
 * where a bad value sits. A file is input like any other: every value is
 * checked for presence, type and range before it is used. */
typedef struct part {
    const char *path, *name;
    const cairn_value *map;
    cairn_error *err;
} part;

static cairn_status open_part(const char *path, const cairn_value *meta, const char *name,
                              part *out, cairn_error *err)
{
    *out = (part){path, name, cairn_value_get(meta, name), err};
    if (cairn_value_get_type(out->map) != CAIRN_VALUE_MAP)
        return fail(err, CAIRN_E_CORRUPT, "%s: metadata '%s' is %s", path, name,
                    out->map ? "not a map" : "missing");
    return CAIRN_OK;
}

static cairn_status bad(const part *p, const char *key, const char *what)
{
    return fail(p->err, CAIRN_E_CORRUPT, "%s: metadata '%s.%s' %s", p->path, p->name, key, what);
}

static cairn_status read_int(const part *p, const char *key, int64_t min, int64_t max,
                             int64_t *out)
{
    if (cairn_value_get_int(cairn_value_get(p->map, key), out) != CAIRN_OK)
        return bad(p, key, "is missing or not an integer");
    if (*out < min || *out > max)
        return bad(p, key, "is out of range");
    return CAIRN_OK;
}

/* A float in [min, max]: NaN fails the comparison too. */
static cairn_status read_float(const part *p, const char *key, double min, double max,
                               double *out)
{
    if (cairn_value_get_float(cairn_value_get(p->map, key), out) != CAIRN_OK)
        return bad(p, key, "is missing or not a float");
    if (!(*out >= min && *out <= max))
        return bad(p, key, "is out of range");
    return CAIRN_OK;
}

static cairn_status read_string(const part *p, const char *key, const char **out)
{
    const cairn_value *v = cairn_value_get(p->map, key);
    const void *data;
    size_t len;
    if (cairn_value_get_type(v) != CAIRN_VALUE_STRING ||
        cairn_value_get_data(v, &data, &len) != CAIRN_OK)
        return bad(p, key, "is missing or not a string");
    *out = data; /* strings are NUL-terminated */
    return CAIRN_OK;
}

static cairn_status read_rng(const part *p, const char *key, rng *out)
{
    const cairn_value *v = cairn_value_get(p->map, key);
    const void *data;
    size_t len;
    if (cairn_value_get_type(v) != CAIRN_VALUE_BYTES ||
        cairn_value_get_data(v, &data, &len) != CAIRN_OK || len != RNG_STATE_BYTES)
        return bad(p, key, "is not the 32 bytes of a generator state");
    rng_from_bytes(out, data);
    if ((out->s[0] | out->s[1] | out->s[2] | out->s[3]) == 0)
        return bad(p, key, "is all zero, which xoshiro256** never reaches");
    return CAIRN_OK;
}

static cairn_status read_config(const char *path, const cairn_value *meta, train_config *c,
                                cairn_error *err)
{
    part p;
    int64_t units = 0, batch = 0, seed = 0;
    const char *kind = NULL;
    cairn_status st = open_part(path, meta, "config", &p, err);
    if (st == CAIRN_OK)
        st = read_int(&p, "num_units", 1, MLP_MAX_UNITS, &units);
    if (st == CAIRN_OK)
        st = read_int(&p, "batch_size", 1, MLP_MAX_BATCH, &batch);
    if (st == CAIRN_OK)
        st = read_int(&p, "seed", 0, INT64_MAX, &seed);
    if (st == CAIRN_OK)
        st = read_float(&p, "dropout", 0.0, 1.0, &c->dropout);
    if (st == CAIRN_OK)
        st = read_float(&p, "lr", 0.0, DBL_MAX, &c->lr);
    if (st == CAIRN_OK)
        st = read_string(&p, "optimizer", &kind);
    if (st == CAIRN_OK && !optim_kind_parse(kind, &c->optimizer))
        st = bad(&p, "optimizer", "names no optimizer this program knows");
    if (st != CAIRN_OK)
        return st;
    c->num_units = (int)units;
    c->batch_size = (int)batch;
    c->seed = (uint64_t)seed;
    c->momentum = 0.0; /* the optimizer part has it */
    const char *problem = train_config_problem(c);
    return problem ? fail(err, CAIRN_E_CORRUPT, "%s: metadata 'config': %s", path, problem)
                   : CAIRN_OK;
}

/* The momentum lives with the optimizer's other scalars. */
static cairn_status read_momentum(const char *path, const cairn_value *meta, train_config *c,
                                  cairn_error *err)
{
    part p;
    cairn_status st = open_part(path, meta, "optimizer", &p, err);
    if (st == CAIRN_OK && c->optimizer == OPTIM_SGD)
        st = read_float(&p, "momentum", 0.0, 1.0, &c->momentum);
    return st;
}

static cairn_status check_schema(const char *path, const cairn_value *meta, cairn_error *err)
{
    part p;
    int64_t version = 0;
    cairn_status st = open_part(path, meta, "type_tag", &p, err);
    if (st == CAIRN_OK)
        st = read_int(&p, "schema_version", 1, INT64_MAX, &version);
    if (st == CAIRN_OK && version != MLP_SCHEMA_VERSION)
        st = fail(err, CAIRN_E_UNSUPPORTED,
                  "%s: an 'mlp' checkpoint of schema version %" PRId64
                  "; this program reads version %d",
                  path, version, MLP_SCHEMA_VERSION);
    return st;
}

/* -------------------------------------------------------- compatibility */

static cairn_status differs(const char *path, const char *option, const char *have,
                            const char *want, cairn_error *err)
{
    return fail(err, CAIRN_E_MISMATCH,
                "%s was trained with %s %s, but this run asks for %s %s; a resumed run keeps "
                "its checkpoint's configuration (leave the option out to use it)",
                path, option, have, option, want);
}

static cairn_status differs_int(const char *path, const char *option, int64_t have,
                                int64_t want, cairn_error *err)
{
    char h[24], w[24];
    snprintf(h, sizeof h, "%" PRId64, have);
    snprintf(w, sizeof w, "%" PRId64, want);
    return differs(path, option, h, w, err);
}

/* The shortest of %.15g and %.17g that reads back as the same double:
 * "0.1", not "0.10000000000000001", yet 0.1 and its neighbour stay distinct. */
static void format_real(char *buf, size_t size, double v)
{
    snprintf(buf, size, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, size, "%.17g", v);
}

static cairn_status differs_real(const char *path, const char *option, double have,
                                 double want, cairn_error *err)
{
    char h[32], w[32];
    format_real(h, sizeof h, have);
    format_real(w, sizeof w, want);
    return differs(path, option, h, w, err);
}

/* Options given on the command line must agree with the checkpoint: a
 * silent override would make "resume" mean a different run. */
static cairn_status check_compatible(const char *path, const train_config *have,
                                     const train_config *want, unsigned given, cairn_error *err)
{
    if ((given & GIVEN_NUM_UNITS) && have->num_units != want->num_units)
        return differs_int(path, "--num-units", have->num_units, want->num_units, err);
    if ((given & GIVEN_OPTIMIZER) && have->optimizer != want->optimizer)
        return differs(path, "--optimizer", optim_kind_name(have->optimizer),
                       optim_kind_name(want->optimizer), err);
    if ((given & GIVEN_BATCH_SIZE) && have->batch_size != want->batch_size)
        return differs_int(path, "--batch-size", have->batch_size, want->batch_size, err);
    if ((given & GIVEN_LR) && have->lr != want->lr)
        return differs_real(path, "--lr", have->lr, want->lr, err);
    if ((given & GIVEN_MOMENTUM) && have->optimizer != OPTIM_SGD)
        return fail(err, CAIRN_E_MISMATCH, "%s was trained with --optimizer %s, which has no "
                    "--momentum", path, optim_kind_name(have->optimizer));
    if ((given & GIVEN_MOMENTUM) && have->momentum != want->momentum)
        return differs_real(path, "--momentum", have->momentum, want->momentum, err);
    if ((given & GIVEN_SEED) && have->seed != want->seed)
        return differs_int(path, "--seed", (int64_t)have->seed, (int64_t)want->seed, err);
    return CAIRN_OK;
}

/* The data set is rebuilt, not stored; its fingerprint proves it is the same. */
static cairn_status check_data(const char *path, const cairn_value *meta, const trainer *t,
                               cairn_error *err)
{
    part config, data;
    const char *have = NULL;
    char want[32];
    snprintf(want, sizeof want, "fnv1a64:%016" PRIx64, t->data.fingerprint);
    cairn_status st = open_part(path, meta, "config", &config, err);
    if (st == CAIRN_OK)
        st = open_part(path, config.map, "data", &data, err);
    if (st == CAIRN_OK)
        st = read_string(&data, "fingerprint", &have);
    if (st == CAIRN_OK && strcmp(have, want) != 0)
        st = fail(err, CAIRN_E_MISMATCH,
                  "%s was trained on a data set with fingerprint %s; this build generates %s",
                  path, have, want);
    return st;
}

/* -------------------------------------------------------------- restoring */

static cairn_status restore_optimizer(const char *path, const cairn_value *meta, optim *o,
                                      cairn_error *err)
{
    part p;
    const char *kind = NULL;
    cairn_status st = open_part(path, meta, "optimizer", &p, err);
    if (st == CAIRN_OK)
        st = read_string(&p, "kind", &kind);
    if (st == CAIRN_OK && strcmp(kind, optim_kind_name(o->kind)) != 0)
        st = bad(&p, "kind", "disagrees with 'config.optimizer'");
    if (st == CAIRN_OK)
        st = read_float(&p, "lr", 0.0, DBL_MAX, &o->lr);
    if (st == CAIRN_OK)
        st = read_float(&p, "weight_decay", 0.0, DBL_MAX, &o->weight_decay);
    if (st == CAIRN_OK)
        st = read_int(&p, "step", 0, INT64_MAX, &o->step);
    if (st == CAIRN_OK && o->kind == OPTIM_SGD)
        st = read_float(&p, "momentum", 0.0, 1.0, &o->momentum);
    if (st == CAIRN_OK && o->kind == OPTIM_ADAM) {
        const cairn_value *betas = cairn_value_get(p.map, "betas");
        if (cairn_value_get_type(betas) != CAIRN_VALUE_LIST || cairn_value_count(betas) != 2 ||
            cairn_value_get_float(cairn_value_at(betas, 0), &o->beta1) != CAIRN_OK ||
            cairn_value_get_float(cairn_value_at(betas, 1), &o->beta2) != CAIRN_OK ||
            !(o->beta1 >= 0.0 && o->beta1 < 1.0 && o->beta2 >= 0.0 && o->beta2 < 1.0))
            st = bad(&p, "betas", "is not a list of two floats in [0, 1)");
        if (st == CAIRN_OK)
            st = read_float(&p, "eps", 0.0, DBL_MAX, &o->eps);
    }
    return st;
}

static cairn_status restore_history(const char *path, const cairn_value *meta, trainer *t,
                                    cairn_error *err)
{
    const cairn_value *h = cairn_value_get(meta, "history");
    if (cairn_value_get_type(h) != CAIRN_VALUE_LIST)
        return fail(err, CAIRN_E_CORRUPT, "%s: metadata 'history' is %s", path,
                    h ? "not a list" : "missing");
    if ((int64_t)cairn_value_count(h) != t->epoch)
        return fail(err, CAIRN_E_CORRUPT, "%s: the history has %zu epochs, the data position %" PRId64,
                    path, cairn_value_count(h), t->epoch);
    for (size_t i = 0; i < cairn_value_count(h); i++) {
        int64_t epoch;
        if (cairn_value_get_int(cairn_value_get(cairn_value_at(h, i), "epoch"), &epoch) !=
                CAIRN_OK ||
            epoch != (int64_t)i + 1)
            return fail(err, CAIRN_E_CORRUPT, "%s: metadata 'history[%zu].epoch' is not %zu",
                        path, i, i + 1);
    }
    cairn_value *copy = cairn_value_clone(h);
    if (!copy)
        return fail(err, CAIRN_E_NOMEM, "%s: out of memory copying the history", path);
    cairn_value_free(t->history);
    t->history = copy;
    return CAIRN_OK;
}

/* Everything but the tensors, from the metadata of a loaded checkpoint. */
cairn_status checkpoint_restore(const char *path, const cairn_value *meta, trainer *t,
                                cairn_error *err)
{
    part rngs, position;
    int64_t batch;
    cairn_status st = restore_optimizer(path, meta, &t->opt, err);
    if (st == CAIRN_OK)
        st = open_part(path, meta, "rng", &rngs, err);
    if (st == CAIRN_OK)
        st = read_rng(&rngs, "dropout", &t->model_rng);
    if (st == CAIRN_OK)
        st = open_part(path, meta, "data_position", &position, err);
    if (st == CAIRN_OK)
        st = read_int(&position, "epoch", 0, INT64_MAX - 1, &t->epoch);
    if (st == CAIRN_OK)
        st = read_int(&position, "batch", 0, 0, &batch); /* saves happen between epochs */
    if (st == CAIRN_OK)
        st = read_rng(&position, "shuffle_rng", &t->shuffle_rng);
    if (st == CAIRN_OK)
        st = restore_history(path, meta, t, err);
    return st;
}

/* The configuration a checkpoint was written with, checked against the
 * options this run was given. */
static cairn_status checkpoint_config(const char *path, const cairn_value *meta,
                                      const train_config *want, unsigned given, train_config *c,
                                      cairn_error *err)
{
    cairn_status st = check_schema(path, meta, err);
    if (st == CAIRN_OK)
        st = read_config(path, meta, c, err);
    if (st == CAIRN_OK)
        st = read_momentum(path, meta, c, err);
    if (st == CAIRN_OK)
        st = check_compatible(path, c, want, given, err);
    return st;
}

cairn_status checkpoint_prepare(const char *path, const cairn_value *meta,
                                const train_config *want, unsigned given, trainer **out,
                                cairn_error *err)
{
    train_config cfg;
    trainer *t = NULL;
    *out = NULL;
    cairn_status st = checkpoint_config(path, meta, want, given, &cfg, err);
    if (st == CAIRN_OK)
        st = trainer_new(&cfg, &t, err);
    if (st == CAIRN_OK)
        st = check_data(path, meta, t, err);
    if (st != CAIRN_OK) {
        trainer_free(t);
        return st;
    }
    *out = t;
    return CAIRN_OK;
}

cairn_model_parts checkpoint_tensor_parts(trainer *t)
{
    /* Passing the kind makes the library refuse an archive of another kind
     * (or none) right away. */
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = MLP_KIND};
    if (t) {
        parts.params = t->params;
        parts.optimizer_tensors = t->optim_state;
    }
    return parts;
}

cairn_load_opts checkpoint_load_opts(void)
{
    /* Strict, so a missing or misshapen tensor fails the whole load, and
     * verified, so a damaged payload is caught before any buffer is written. */
    return (cairn_load_opts){.struct_size = sizeof(cairn_load_opts),
                             .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
}

cairn_status checkpoint_load(const char *path, const train_config *want, unsigned given,
                             trainer **out, cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    trainer *t = NULL;
    *out = NULL;
    cairn_status st = cairn_file_open(path, NULL, &f, err);
    /* First the metadata alone, because the buffers cannot be allocated
     * before the config says how big the network is ... */
    cairn_model_parts peek = checkpoint_tensor_parts(NULL);
    if (st == CAIRN_OK)
        st = cairn_model_load(f, &peek, NULL, &meta, err);
    if (st == CAIRN_OK)
        st = checkpoint_prepare(path, meta, want, given, &t, err);
    /* ... then the tensors, into the fresh buffers, then the rest. */
    cairn_model_parts parts = checkpoint_tensor_parts(t);
    cairn_load_opts opts = checkpoint_load_opts();
    if (st == CAIRN_OK)
        st = cairn_model_load(f, &parts, &opts, NULL, err);
    if (st == CAIRN_OK)
        st = checkpoint_restore(path, meta, t, err);
    cairn_value_free(meta);
    cairn_file_close(f);
    if (st != CAIRN_OK) {
        trainer_free(t);
        return st;
    }
    *out = t;
    return CAIRN_OK;
}

/* A friendlier message than a shape mismatch when the file says which
 * network it was saved from. */
static cairn_status check_units(const char *path, const cairn_value *meta, const trainer *t,
                                cairn_error *err)
{
    int64_t units;
    if (cairn_value_get_int(cairn_value_get(cairn_value_get(meta, "config"), "num_units"),
                            &units) != CAIRN_OK ||
        units == t->cfg.num_units)
        return CAIRN_OK;
    return fail(err, CAIRN_E_MISMATCH,
                "%s holds a network with %" PRId64 " hidden units; this one has %d "
                "(pass --num-units %" PRId64 ")",
                path, units, t->cfg.num_units, units);
}

cairn_status params_load(trainer *t, const char *path, cairn_error *err)
{
    cairn_file *f = NULL;
    cairn_value *meta = NULL;
    cairn_load_opts opts = {.struct_size = sizeof opts,
                            .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
    cairn_status st = cairn_file_open(path, NULL, &f, err);
    if (st == CAIRN_OK)
        st = cairn_file_read_metadata(f, &meta, err);
    if (st == CAIRN_OK)
        st = check_units(path, meta, t, err);
    if (st == CAIRN_OK && cairn_value_get(meta, "type_tag")) {
        /* A whole checkpoint: take its params part. */
        cairn_model_parts parts = {.struct_size = sizeof parts, .kind = MLP_KIND,
                                   .params = t->params};
        st = cairn_model_load(f, &parts, &opts, NULL, err);
    } else if (st == CAIRN_OK) {
        st = cairn_params_load(t->params, f, &opts, NULL, err);
    }
    cairn_value_free(meta);
    cairn_file_close(f);
    return st;
}
