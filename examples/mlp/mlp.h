/*
 * mlp.h -- the pieces of examples/mlp, a small training program that uses
 * libcairn the way a real one would: skorch's documentation model
 *
 *     nn.Sequential(Linear(10, U), ReLU(), Dropout(0.2),
 *                   Linear(U, 10), Linear(10, 2), Softmax(dim=-1))
 *
 * trained with NLL loss on a make_classification-like data set, in plain C,
 * with checkpoints that resume bit for bit.
 *
 *   rng.c         xoshiro256** seeded by splitmix64, uniform and normal draws
 *   data.c        the synthetic data set and its fingerprint
 *   model.c       the network: init, forward, loss, backward, its state dict
 *   optim.c       SGD with momentum and Adam, with their state dicts
 *   train.c       a trainer: everything that changes while training, one epoch
 *   checkpoint.c  the whole training state to and from a cairn archive
 *   manager.c     the same state through libcairn's checkpoint manager: a
 *                 directory of checkpoints, saved when a metric improves,
 *                 resumed from the newest one that verifies
 *   torch_import.c  a PyTorch/skorch state_dict (.pt) into the network, and
 *                 predictions for the rows of an .npy file
 *   mlp.c         the command line
 *
 * Errors travel as cairn_error all the way up, also for failures that are not
 * the library's (a config mismatch, out of memory), so main() has one way to
 * print them and pick an exit code.
 */
#ifndef MLP_H
#define MLP_H

#include <cairn.h>

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------- rng.c */

/* xoshiro256** (Blackman & Vigna): 256 bits of state, all of which a
 * checkpoint stores, so a resumed run draws exactly what the first would have. */
typedef struct rng {
    uint64_t s[4];
} rng;

enum { RNG_STATE_BYTES = 32 };

/* Fills each generator's state with four successive splitmix64 outputs,
 * starting from `seed` (the reference way to seed xoshiro). */
void rng_seed(uint64_t seed, rng *out, size_t count);
uint64_t rng_next(rng *r);
/* Uniform in [0, 1): the top 53 bits of one draw. */
double rng_uniform(rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias (rejection). */
uint64_t rng_below(rng *r, uint64_t n);
/* Standard normal: Box-Muller with two uniform draws, cosine branch only. */
double rng_normal(rng *r);
/* The state as 32 bytes, each word little-endian, and back. */
void rng_to_bytes(const rng *r, uint8_t out[RNG_STATE_BYTES]);
void rng_from_bytes(rng *r, const uint8_t in[RNG_STATE_BYTES]);

/* ------------------------------------------------------------------ data.c */

enum {
    DATA_ROWS = 1000,
    DATA_FEATURES = 10,
    DATA_INFORMATIVE = 5,
    DATA_REDUNDANT = 2, /* linear combinations of the informative features */
    DATA_CLASSES = 2,
    DATA_CLUSTERS_PER_CLASS = 2,
    DATA_TRAIN_ROWS = 800 /* the first 800 rows train, the last 200 validate */
};
#define DATA_SEED 0u         /* the data set is fixed; --seed varies the training run */
#define DATA_FLIP_Y 0.01     /* fraction of labels replaced by random ones */
#define DATA_CLASS_SEP 1.0   /* half the edge of the hypercube of cluster centres */

typedef struct dataset {
    float x[DATA_ROWS][DATA_FEATURES];
    int32_t y[DATA_ROWS];
    /* FNV-1a 64 of x and y: a checkpoint records it so that resuming on a
     * different data set (another libm, a changed generator) is refused. */
    uint64_t fingerprint;
} dataset;

void data_make(dataset *d, uint64_t seed);

/* ----------------------------------------------------------------- model.c */

enum {
    MLP_IN = DATA_FEATURES,
    MLP_MID = 10, /* Linear(U, 10) */
    MLP_OUT = DATA_CLASSES,
    MLP_LAYERS = 3,
    MLP_PARAMS = 2 * MLP_LAYERS /* a weight and a bias per layer */
};

/* A Linear layer in PyTorch's layout: weight [out, in], bias [out],
 * y = x W^T + b; with room for the gradients of both. */
typedef struct linear {
    int in, out;
    float *weight, *bias;
    float *grad_weight, *grad_bias;
} linear;

typedef struct mlp {
    int num_units;
    double dropout;
    /* nn.Sequential indices 0, 3 and 4 (1 is ReLU, 2 Dropout, 5 Softmax),
     * so the tensor names match the PyTorch state_dict: "0.weight", ... */
    linear fc[MLP_LAYERS];
    /* Activations of the last forward pass, for backward; `capacity` rows. */
    int capacity;
    float *h1;    /* [rows, U]  Linear 0 output, before ReLU */
    float *keep;  /* [rows, U]  dropout multiplier: 0 or 1/(1-p) */
    float *a1;    /* [rows, U]  after ReLU and dropout */
    float *h3;    /* [rows, 10] Linear 3 output */
    float *proba; /* [rows, 2]  softmax output */
    float *g_h3, *g_a1, *g_z; /* backward scratch */
} mlp;

/* One parameter as a state dict entry sees it. */
typedef struct mlp_param {
    char name[16]; /* "0.weight" */
    uint32_t rank;
    uint64_t dims[2];
    size_t count;
    float *data, *grad;
} mlp_param;

/* Allocates a network for batches of up to `capacity` rows and initialises
 * it like PyTorch (U(-1/sqrt(in), 1/sqrt(in)) for weights and biases) from
 * `r`. Returns CAIRN_E_NOMEM (with a message) when memory runs out. */
cairn_status mlp_init(mlp *m, int num_units, double dropout, int capacity, rng *r,
                      cairn_error *err);
void mlp_free(mlp *m);
/* The i-th parameter, 0 <= i < MLP_PARAMS, in state_dict order. */
mlp_param mlp_param_at(const mlp *m, int i);
/* Registers every parameter under its PyTorch name: the model's state dict. */
cairn_status mlp_register(const mlp *m, cairn_params *p, cairn_error *err);
/* Runs `rows` rows of x (row-major [rows, 10]) through the network into
 * m->proba. With a dropout generator the model is in training mode and draws
 * one uniform number per hidden unit per row; with NULL it is in eval mode. */
void mlp_forward(mlp *m, const float *x, int rows, rng *dropout);
/* The NLL loss of the last forward pass against labels y, averaged over the
 * rows, on log(p + FLT_EPSILON) as skorch does for a softmax output. */
double mlp_loss(const mlp *m, const int32_t *y, int rows);
/* The class of row `row` of the last forward pass. */
int mlp_predicted_class(const mlp *m, int row);
/* Gradients of that loss for the last (training) forward pass. */
void mlp_backward(mlp *m, const float *x, const int32_t *y, int rows);

/* ----------------------------------------------------------------- optim.c */

typedef enum optim_kind { OPTIM_SGD, OPTIM_ADAM } optim_kind;

/* torch.optim.SGD / torch.optim.Adam for our six parameters. Every field is
 * part of a checkpoint: the hyperparameters as scalars, the per-parameter
 * buffers as tensors. */
typedef struct optim {
    optim_kind kind;
    double lr, weight_decay;
    double momentum;            /* SGD */
    double beta1, beta2, eps;   /* Adam */
    int64_t step;               /* optimizer steps taken (Adam's t) */
    mlp_param param[MLP_PARAMS];
    float *buf[MLP_PARAMS][2];  /* SGD: momentum_buffer; Adam: exp_avg, exp_avg_sq */
} optim;

const char *optim_kind_name(optim_kind kind);
/* Parses "sgd" / "adam"; returns 0 when the name is neither. */
int optim_kind_parse(const char *name, optim_kind *out);
/* Zeroed state with PyTorch's default hyperparameters for `kind` (SGD's
 * momentum and the learning rate are the caller's). */
cairn_status optim_init(optim *o, optim_kind kind, double lr, double momentum, const mlp *m,
                        cairn_error *err);
void optim_free(optim *o);
/* One update of every parameter from its gradient. */
void optim_step(optim *o);
/* The optimizer's tensors under torch's state names: "0.weight.momentum_buffer",
 * or "0.weight.exp_avg" and "0.weight.exp_avg_sq". */
cairn_status optim_register(const optim *o, cairn_params *p, cairn_error *err);

/* ----------------------------------------------------------------- train.c */

/* Bounds that keep every buffer size far from overflow, for options and for
 * the config read from a checkpoint alike. */
enum { MLP_MAX_UNITS = 4096, MLP_MAX_BATCH = 4096 };

/* What the user chooses; a checkpoint stores it and a resumed run keeps it. */
typedef struct train_config {
    int num_units;
    double dropout;
    int batch_size;
    optim_kind optimizer;
    double lr;
    double momentum; /* SGD only */
    uint64_t seed;   /* weight init, dropout masks, shuffling */
} train_config;

/* NULL if the config is usable, else what is wrong with it. */
const char *train_config_problem(const train_config *cfg);

/* One row of the history, as skorch keeps it. */
typedef struct epoch_stats {
    int64_t epoch;
    double train_loss, valid_acc, valid_loss, dur;
} epoch_stats;

/* Everything a training run owns. The network, the optimizer, both
 * generators, the epoch counter and the history are the training state; the
 * data set is rebuilt from DATA_SEED and checked against its fingerprint. */
typedef struct trainer {
    train_config cfg;
    dataset data;
    mlp net;
    optim opt;
    rng model_rng;   /* weight init, then one draw per dropout unit */
    rng shuffle_rng; /* one permutation of the training rows per epoch */
    int64_t epoch;   /* epochs completed */
    cairn_value *history;        /* list of per-epoch maps */
    cairn_params *params;        /* the model's state dict (borrowed buffers) */
    cairn_params *optim_state;   /* the optimizer's tensors (borrowed buffers) */
    int32_t *order;  /* [DATA_TRAIN_ROWS] this epoch's row order */
    float *batch_x;  /* [batch_size, 10] gathered rows */
    int32_t *batch_y;
} trainer;

/* A fresh run: data, a network initialised from cfg->seed, zeroed optimizer
 * state, empty history. The caller frees *out with trainer_free. */
cairn_status trainer_new(const train_config *cfg, trainer **out, cairn_error *err);
void trainer_free(trainer *t);
/* Trains one epoch (shuffle, forward, backward, step per batch), validates,
 * appends the epoch to the history and returns its row. */
cairn_status trainer_epoch(trainer *t, epoch_stats *out, cairn_error *err);
/* Validation loss and accuracy in eval mode (no dropout). */
void trainer_validate(trainer *t, double *loss, double *acc);

/* ------------------------------------------------------------ checkpoint.c */

/* Fills err (if not NULL) and returns `status`: errors of our own look like
 * the library's. */
cairn_status fail(cairn_error *err, cairn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends one epoch's map {epoch, train_loss, valid_acc, valid_loss, dur}. */
cairn_status history_append(cairn_value *history, const epoch_stats *s, cairn_error *err);

/* Which options the user gave explicitly: on --load they must agree with the
 * checkpoint, the rest comes from it. */
enum {
    GIVEN_NUM_UNITS = 1u << 0,
    GIVEN_BATCH_SIZE = 1u << 1,
    GIVEN_OPTIMIZER = 1u << 2,
    GIVEN_LR = 1u << 3,
    GIVEN_MOMENTUM = 1u << 4,
    GIVEN_SEED = 1u << 5
};

/* The whole training state as the parts of one archive, kind "mlp",
 * schema_version 1: what --save writes and what every checkpoint of the
 * manager holds. The parts borrow t's buffers and history and the metadata
 * values below, which checkpoint_parts_free frees. */
typedef struct checkpoint_parts {
    cairn_model_parts parts;
    cairn_value *config, *optimizer, *rng, *position;
} checkpoint_parts;

cairn_status checkpoint_parts_make(const trainer *t, checkpoint_parts *out, cairn_error *err);
void checkpoint_parts_free(checkpoint_parts *cp);
/* The whole training state to `path`. */
cairn_status checkpoint_save(const trainer *t, const char *path, cairn_error *err);
/* Rebuilds a trainer from a checkpoint. `want` holds the options of this
 * run; those flagged in `given` must match the checkpoint's config. */
cairn_status checkpoint_load(const char *path, const train_config *want, unsigned given,
                             trainer **out, cairn_error *err);

/* checkpoint_load in its three steps, for checkpoints that come from
 * elsewhere (the checkpoint manager). The buffers cannot be allocated before
 * the config says how big the network is, so:
 *   1. load the metadata alone, with checkpoint_tensor_parts(NULL) (the kind
 *      only, which the library checks), then checkpoint_prepare: a fresh
 *      trainer of the checkpoint's config;
 *   2. load the tensors with checkpoint_tensor_parts(t) and
 *      checkpoint_load_opts() (strict and verified);
 *   3. checkpoint_restore: generators, optimizer scalars, epoch, history.
 * `path` only names the checkpoint in messages. */
cairn_status checkpoint_prepare(const char *path, const cairn_value *meta,
                                const train_config *want, unsigned given, trainer **out,
                                cairn_error *err);
cairn_model_parts checkpoint_tensor_parts(trainer *t);
cairn_load_opts checkpoint_load_opts(void);
cairn_status checkpoint_restore(const char *path, const cairn_value *meta, trainer *t,
                                cairn_error *err);

/* The parameters only (skorch's f_params), with the config as metadata. */
cairn_status params_save(const trainer *t, const char *path, cairn_error *err);
/* The parameters only, for other tools: the format follows the extension.
 * .safetensors gets flat string metadata {format: pt, module, num_units};
 * .pt/.pth gets none, so torch.load gives the plain state_dict that
 * module.load_state_dict takes. */
cairn_status params_export(const trainer *t, const char *path, cairn_error *err);
/* Loads parameters into t's network: from a params file, or the params part
 * of a whole checkpoint. Strict: every tensor must be there with its shape. */
cairn_status params_load(trainer *t, const char *path, cairn_error *err);

/* ---------------------------------------------------------- torch_import.c */

/* A fresh trainer of `cfg` whose network has the hidden width of the
 * state_dict in `path` (a .pt from torch.save or skorch's save_params; any
 * file cairn reads will do) and its parameters: all six, strictly, converted
 * to float32 if stored otherwise. */
cairn_status torch_load(const train_config *cfg, const char *path, trainer **out,
                        cairn_error *err);
/* Prints one line per row of the [rows, 10] array in `path` (.npy or any
 * one-tensor file): the class probabilities in eval mode, space-separated,
 * as %.9g. */
cairn_status predict_npy(trainer *t, const char *path, cairn_error *err);

/* --------------------------------------------------------------- manager.c */

/* Where to resume from in a checkpoint directory. */
typedef enum resume_from { RESUME_NONE, RESUME_LATEST, RESUME_BEST } resume_from;

/* The checkpoint options of one run (--ckpt-dir and the rest). */
typedef struct ckpt_config {
    const char *dir;              /* NULL: no checkpoint manager */
    const char *prefix;           /* the monitored checkpoints' fn_prefix ("" by default) */
    const char *resume_prefix;    /* where --resume and --load-best look (default: prefix) */
    const char *train_end_prefix; /* the train-end checkpoints' fn_prefix; NULL: none */
    const char *monitor;          /* train_loss, valid_loss, valid_acc; NULL: none */
    uint32_t keep_best, keep_last, every;
    int async;
    resume_from resume;
} ckpt_config;

/* 1 for a metric that improves upwards (valid_acc). */
int monitor_is_max(const char *monitor);

/* The managers a training run writes to: the monitored one and the
 * train-end one (either may be NULL). */
typedef struct run_ckpts {
    cairn_ckpt *main, *train_end;
    const char *dir;
    size_t saved; /* checkpoints the main manager saved in this run */
} run_ckpts;

/* Opens the managers that c asks for (none without c->dir). */
cairn_status ckpts_open(const ckpt_config *c, run_ckpts *out, cairn_error *err);
/* At the end of an epoch: offers the whole state to the monitored manager.
 * *saved is CAIRN_SAVED_NO, _YES or _SIGNAL (a signal arrived: stop). */
cairn_status ckpts_epoch_end(run_ckpts *r, const trainer *t, const epoch_stats *s, int *saved,
                             cairn_error *err);
/* At the end of training: the train-end checkpoint (forced). */
cairn_status ckpts_train_end(run_ckpts *r, const trainer *t, cairn_error *err);
/* Closes both managers, waiting for background saves; the first error wins. */
cairn_status ckpts_close(run_ckpts *r, cairn_error *err);

/* --resume: restores the newest checkpoint of c->resume_prefix that verifies
 * (or the best, with RESUME_BEST) as checkpoint_load does, and says which on
 * stderr. *out is NULL when the directory holds no checkpoint of that prefix
 * at all: the caller starts fresh. */
cairn_status ckpt_resume(const ckpt_config *c, const train_config *want, unsigned given,
                         trainer **out, cairn_error *err);
/* --load-best: the best checkpoint of c->resume_prefix by c->monitor, restored
 * the same way (CAIRN_E_NOT_FOUND when there is none). */
cairn_status ckpt_load_best(const ckpt_config *c, const train_config *want, unsigned given,
                            trainer **out, cairn_error *err);

#endif /* MLP_H */
