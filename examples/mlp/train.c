/* train.c -- a training run: the state that changes while it trains, and
 * one epoch the way skorch runs it (shuffled mini-batches, then a pass over
 * the validation rows in eval mode). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "mlp.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *train_config_problem(const train_config *c)
{
    if (c->num_units < 1 || c->num_units > MLP_MAX_UNITS)
        return "num_units must be between 1 and 4096";
    if (c->batch_size < 1 || c->batch_size > MLP_MAX_BATCH)
        return "batch_size must be between 1 and 4096";
    if (!(c->dropout >= 0.0 && c->dropout < 1.0))
        return "dropout must be in [0, 1)";
    if (!(c->lr > 0.0 && c->lr <= 1e6))
        return "lr must be positive (and at most 1e6)";
    if (!(c->momentum >= 0.0 && c->momentum < 1.0))
        return "momentum must be in [0, 1)";
    if (c->seed > INT64_MAX)
        return "seed must be between 0 and 2^63 - 1";
    return NULL;
}

void trainer_free(trainer *t)
{
    if (!t)
        return;
    mlp_free(&t->net);
    optim_free(&t->opt);
    cairn_value_free(t->history);
    cairn_params_free(t->params);
    cairn_params_free(t->optim_state);
    free(t->order);
    free(t->batch_x);
    free(t->batch_y);
    free(t);
}

static cairn_status out_of_memory(cairn_error *err)
{
    return fail(err, CAIRN_E_NOMEM, "out of memory setting up the training run");
}

/* The run's own buffers; the network and the optimizer allocate theirs. */
static cairn_status alloc_buffers(trainer *t, cairn_error *err)
{
    size_t batch = (size_t)t->cfg.batch_size;
    t->order = calloc(DATA_TRAIN_ROWS, sizeof *t->order);
    t->batch_x = calloc(batch * DATA_FEATURES, sizeof *t->batch_x);
    t->batch_y = calloc(batch, sizeof *t->batch_y);
    t->history = cairn_value_list();
    t->params = cairn_params_new();
    t->optim_state = cairn_params_new();
    if (!t->order || !t->batch_x || !t->batch_y || !t->history || !t->params || !t->optim_state)
        return out_of_memory(err);
    return CAIRN_OK;
}

cairn_status trainer_new(const train_config *cfg, trainer **out, cairn_error *err)
{
    *out = NULL;
    trainer *t = calloc(1, sizeof *t);
    if (!t)
        return out_of_memory(err);
    t->cfg = *cfg;
    data_make(&t->data, DATA_SEED);
    /* Two generators from one seed, so that turning shuffling off (or
     * changing the batch size) would not change the dropout masks. */
    rng gen[2];
    rng_seed(cfg->seed, gen, 2);
    t->model_rng = gen[0];
    t->shuffle_rng = gen[1];
    cairn_status st = alloc_buffers(t, err);
    if (st == CAIRN_OK)
        st = mlp_init(&t->net, cfg->num_units, cfg->dropout, cfg->batch_size, &t->model_rng, err);
    if (st == CAIRN_OK)
        st = optim_init(&t->opt, cfg->optimizer, cfg->lr, cfg->momentum, &t->net, err);
    /* The state dicts borrow the buffers: one registration serves every
     * save and load of this run. */
    if (st == CAIRN_OK)
        st = mlp_register(&t->net, t->params, err);
    if (st == CAIRN_OK)
        st = optim_register(&t->opt, t->optim_state, err);
    if (st != CAIRN_OK) {
        trainer_free(t);
        return st;
    }
    *out = t;
    return CAIRN_OK;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* iterator_train__shuffle=True: a fresh permutation of the training rows
 * each epoch (Fisher-Yates from the identity, so the order depends on the
 * generator state alone). */
static void shuffle_rows(trainer *t)
{
    for (int i = 0; i < DATA_TRAIN_ROWS; i++)
        t->order[i] = i;
    for (int i = DATA_TRAIN_ROWS - 1; i > 0; i--) {
        int j = (int)rng_below(&t->shuffle_rng, (uint64_t)i + 1);
        int32_t tmp = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = tmp;
    }
}

/* Copies rows order[first .. first+rows-1] into the batch buffers. */
static void gather(trainer *t, int first, int rows)
{
    for (int r = 0; r < rows; r++) {
        int src = t->order[first + r];
        memcpy(t->batch_x + (size_t)r * DATA_FEATURES, t->data.x[src], sizeof t->data.x[src]);
        t->batch_y[r] = t->data.y[src];
    }
}

/* One pass over the shuffled training rows; returns the mean loss, each
 * batch weighted by its size as skorch does (the last batch is smaller). */
static double train_pass(trainer *t)
{
    double loss_sum = 0.0;
    shuffle_rows(t);
    for (int first = 0; first < DATA_TRAIN_ROWS; first += t->cfg.batch_size) {
        int rows = DATA_TRAIN_ROWS - first < t->cfg.batch_size ? DATA_TRAIN_ROWS - first
                                                                : t->cfg.batch_size;
        gather(t, first, rows);
        mlp_forward(&t->net, t->batch_x, rows, &t->model_rng);
        loss_sum += mlp_loss(&t->net, t->batch_y, rows) * rows;
        mlp_backward(&t->net, t->batch_x, t->batch_y, rows);
        optim_step(&t->opt);
    }
    return loss_sum / DATA_TRAIN_ROWS;
}

void trainer_validate(trainer *t, double *loss, double *acc)
{
    const int valid_rows = DATA_ROWS - DATA_TRAIN_ROWS;
    double loss_sum = 0.0;
    int correct = 0;
    for (int first = DATA_TRAIN_ROWS; first < DATA_ROWS; first += t->cfg.batch_size) {
        int rows = DATA_ROWS - first < t->cfg.batch_size ? DATA_ROWS - first : t->cfg.batch_size;
        mlp_forward(&t->net, t->data.x[first], rows, NULL);
        loss_sum += mlp_loss(&t->net, &t->data.y[first], rows) * rows;
        for (int r = 0; r < rows; r++)
            correct += mlp_predicted_class(&t->net, r) == t->data.y[first + r];
    }
    *loss = loss_sum / valid_rows;
    *acc = (double)correct / valid_rows;
}

cairn_status trainer_epoch(trainer *t, epoch_stats *out, cairn_error *err)
{
    double start = seconds_now();
    epoch_stats s = {.epoch = t->epoch + 1};
    s.train_loss = train_pass(t);
    trainer_validate(t, &s.valid_loss, &s.valid_acc);
    s.dur = seconds_now() - start;
    cairn_status st = history_append(t->history, &s, err);
    if (st != CAIRN_OK)
        return st;
    t->epoch = s.epoch;
    *out = s;
    return CAIRN_OK;
}
