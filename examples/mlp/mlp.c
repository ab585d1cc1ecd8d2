/* mlp.c -- the command line: train, checkpoint, resume, export, predict.
 *
 *   mlp --epochs 4 --save a.cairn                    four epochs, whole state saved
 *   mlp --epochs 2 --save b.cairn                    two epochs ...
 *   mlp --load b.cairn --epochs 2 --save c.cairn     ... and two more: c == a, bit for bit
 *   mlp --save-params p.cairn --predict              train, export params, predict
 *   mlp --load-params p.cairn --predict              a fresh model predicts the same bits
 *
 * Results go to stdout (the epoch table, predictions); what the program did
 * with files goes to stderr. Exit status: 0 ok, 1 bad input (a checkpoint
 * that is corrupt, of another kind, or incompatible with the options),
 * 2 usage error, 3 I/O error or out of memory -- as for the cairn tool.
 */
#include "mlp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2, EXIT_IO = 3 };
enum { PREDICT_ROWS = 20 };

static const char synopsis[] =
    "usage: mlp [--epochs N] [--lr X] [--optimizer sgd|adam] [--momentum X] [--num-units N]\n"
    "           [--batch-size N] [--seed S] [--save PATH] [--load PATH]\n"
    "           [--save-params PATH] [--load-params PATH] [--predict]\n";

static const char help[] =
    "\n"
    "Trains skorch's documentation model in plain C and checkpoints it with libcairn:\n"
    "  Linear(10, N) ReLU Dropout(0.2) Linear(N, 10) Linear(10, 2) Softmax, NLL loss,\n"
    "on a fixed make_classification-like data set (1,000 rows, 10 features, 5 informative,\n"
    "2 classes; 800 train, 200 validation), in shuffled mini-batches.\n"
    "\n"
    "training:\n"
    "  --epochs N          epochs to train (default 10; after --load, N more)\n"
    "  --lr X              learning rate (default 0.1 for sgd, 0.01 for adam)\n"
    "  --optimizer NAME    sgd (with momentum) or adam (default sgd)\n"
    "  --momentum X        SGD momentum (default 0.9)\n"
    "  --num-units N       units of the first Linear layer (default 10)\n"
    "  --batch-size N      rows per batch (default 128)\n"
    "  --seed S            seeds weight init, dropout and shuffling (default 0)\n"
    "\n"
    "checkpoints:\n"
    "  --save PATH         after training, save the whole training state: parameters,\n"
    "                      optimizer state, generator states, data position, epoch, history\n"
    "  --load PATH         restore a --save checkpoint and go on with the next epoch; options\n"
    "                      given with it must match the checkpoint's\n"
    "  --save-params PATH  after training, save the parameters only (skorch's f_params)\n"
    "  --load-params PATH  load parameters (from either kind of file) into a fresh model\n"
    "                      and evaluate it; no training\n"
    "\n"
    "output:\n"
    "  --predict           print the validation score and the class probabilities of the\n"
    "                      first 20 validation rows, as %.9g and as exact hex floats\n"
    "  -h, --help          this text\n"
    "\n"
    "exit status: 0 ok, 1 bad input (corrupt, foreign or incompatible checkpoint),\n"
    "             2 usage error, 3 I/O error or out of memory\n";

typedef struct options {
    train_config cfg;
    unsigned given; /* GIVEN_* */
    int epochs, epochs_given;
    const char *save, *load, *save_params, *load_params;
    int predict;
} options;

/* ---------------------------------------------------------- command line */

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("mlp: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s(run 'mlp --help' for details)\n", synopsis);
    return EXIT_USAGE;
}

static int parse_int(const char *option, const char *text, int64_t min, int64_t max,
                     int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < min || v > max)
        return usage_error("%s wants an integer from %" PRId64 " to %" PRId64 ", got '%s'",
                           option, min, max, text);
    *out = v;
    return EXIT_OK;
}

static int parse_real(const char *option, const char *text, double *out)
{
    char *end;
    *out = strtod(text, &end);
    if (end == text || *end)
        return usage_error("%s wants a number, got '%s'", option, text);
    return EXIT_OK;
}

typedef enum opt_id {
    OPT_EPOCHS, OPT_LR, OPT_OPTIMIZER, OPT_MOMENTUM, OPT_NUM_UNITS, OPT_BATCH_SIZE, OPT_SEED,
    OPT_SAVE, OPT_LOAD, OPT_SAVE_PARAMS, OPT_LOAD_PARAMS, OPT_PREDICT, OPT_HELP
} opt_id;

static const struct {
    const char *name;
    opt_id id;
    int takes_value;
} option_table[] = {
    {"--epochs", OPT_EPOCHS, 1},
    {"--lr", OPT_LR, 1},
    {"--optimizer", OPT_OPTIMIZER, 1},
    {"--momentum", OPT_MOMENTUM, 1},
    {"--num-units", OPT_NUM_UNITS, 1},
    {"--batch-size", OPT_BATCH_SIZE, 1},
    {"--seed", OPT_SEED, 1},
    {"--save", OPT_SAVE, 1},
    {"--load", OPT_LOAD, 1},
    {"--save-params", OPT_SAVE_PARAMS, 1},
    {"--load-params", OPT_LOAD_PARAMS, 1},
    {"--predict", OPT_PREDICT, 0},
    {"--help", OPT_HELP, 0},
    {"-h", OPT_HELP, 0},
};

/* Applies one option; returns -1 to go on, or an exit code. */
static int apply(options *o, opt_id id, const char *name, const char *value)
{
    int64_t n = 0;
    int rc = EXIT_OK;
    switch (id) {
    case OPT_EPOCHS:
        rc = parse_int(name, value, 0, 1000000, &n);
        o->epochs = (int)n;
        o->epochs_given = 1;
        break;
    case OPT_LR:
        rc = parse_real(name, value, &o->cfg.lr);
        o->given |= GIVEN_LR;
        break;
    case OPT_MOMENTUM:
        rc = parse_real(name, value, &o->cfg.momentum);
        o->given |= GIVEN_MOMENTUM;
        break;
    case OPT_OPTIMIZER:
        if (!optim_kind_parse(value, &o->cfg.optimizer))
            return usage_error("--optimizer wants sgd or adam, got '%s'", value);
        o->given |= GIVEN_OPTIMIZER;
        break;
    case OPT_NUM_UNITS:
        rc = parse_int(name, value, 1, MLP_MAX_UNITS, &n);
        o->cfg.num_units = (int)n;
        o->given |= GIVEN_NUM_UNITS;
        break;
    case OPT_BATCH_SIZE:
        rc = parse_int(name, value, 1, MLP_MAX_BATCH, &n);
        o->cfg.batch_size = (int)n;
        o->given |= GIVEN_BATCH_SIZE;
        break;
    case OPT_SEED:
        rc = parse_int(name, value, 0, INT64_MAX, &n);
        o->cfg.seed = (uint64_t)n;
        o->given |= GIVEN_SEED;
        break;
    case OPT_SAVE: o->save = value; break;
    case OPT_LOAD: o->load = value; break;
    case OPT_SAVE_PARAMS: o->save_params = value; break;
    case OPT_LOAD_PARAMS: o->load_params = value; break;
    case OPT_PREDICT: o->predict = 1; break;
    case OPT_HELP: printf("%s%s", synopsis, help); return EXIT_OK;
    }
    return rc == EXIT_OK ? -1 : rc;
}

/* Defaults that depend on other options, then the combinations that make
 * no sense. Returns -1 to go on, or an exit code. */
static int finish_options(options *o)
{
    if (!(o->given & GIVEN_LR))
        o->cfg.lr = o->cfg.optimizer == OPTIM_ADAM ? 0.01 : 0.1;
    if (o->cfg.optimizer == OPTIM_ADAM) {
        if ((o->given & GIVEN_MOMENTUM) && !o->load)
            return usage_error("--momentum is for --optimizer sgd");
        o->cfg.momentum = 0.0;
    }
    if (o->load && o->load_params)
        return usage_error("--load and --load-params exclude each other");
    if (o->load_params && (o->epochs_given || o->save))
        return usage_error("--load-params loads a model to evaluate, not to train; "
                           "resume training with --load");
    const char *problem = train_config_problem(&o->cfg);
    if (problem)
        return usage_error("%s", problem);
    return -1;
}

/* "--name value" or "--name=value". Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.cfg = {.num_units = 10, .dropout = 0.2, .batch_size = 128,
                           .optimizer = OPTIM_SGD, .momentum = 0.9, .seed = 0},
                   .epochs = 10};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t k = 0, count = sizeof option_table / sizeof option_table[0];
        while (k < count && !(strlen(option_table[k].name) == len &&
                              strncmp(option_table[k].name, arg, len) == 0))
            k++;
        if (k == count)
            return usage_error("unknown option '%s'", arg);
        const char *name = option_table[k].name, *value = NULL;
        if (option_table[k].takes_value) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return usage_error("%s needs a value", name);
        } else if (eq) {
            return usage_error("%s takes no value", name);
        }
        int rc = apply(o, option_table[k].id, name, value);
        if (rc >= 0)
            return rc;
    }
    return finish_options(o);
}

/* --------------------------------------------------------------- output */

/* Prints a failed call's message and picks the exit code like the cairn
 * tool: 3 when the system failed us (I/O, memory), 1 for bad input. */
static int report(cairn_status st, const cairn_error *err)
{
    fprintf(stderr, "mlp: %s\n", err->message[0] ? err->message : cairn_strerror(st));
    return st == CAIRN_E_IO || st == CAIRN_E_NOMEM ? EXIT_IO : EXIT_BAD_INPUT;
}

/* The table skorch prints, one row per epoch as it finishes. */
static void print_table_header(void)
{
    printf("  epoch    train_loss    valid_acc    valid_loss     dur\n"
           "-------  ------------  -----------  ------------  ------\n");
}

static void print_table_row(const epoch_stats *s)
{
    printf("%7" PRId64 "  %12.4f  %11.4f  %12.4f  %6.4f\n", s->epoch, s->train_loss,
           s->valid_acc, s->valid_loss, s->dur);
    fflush(stdout);
}

/* The score, then the probabilities of the first validation rows: to 9
 * significant digits (enough to tell any two floats apart) and as the exact
 * hex float, so a diff of two outputs compares the bits. */
static void print_predictions(trainer *t, int rows)
{
    double loss, acc;
    trainer_validate(t, &loss, &acc);
    printf("valid_acc %.4f  valid_loss %.9g  (%d validation rows, eval mode)\n", acc, loss,
           DATA_ROWS - DATA_TRAIN_ROWS);
    if (rows > 0)
        printf("  row  label  pred  p(0)            p(1)            p(0) exact       p(1) exact\n");
    /* In pieces of at most one batch: the network holds that many rows. */
    for (int first = 0; first < rows; first += t->net.capacity) {
        int n = rows - first < t->net.capacity ? rows - first : t->net.capacity;
        mlp_forward(&t->net, t->data.x[DATA_TRAIN_ROWS + first], n, NULL);
        for (int r = 0; r < n; r++) {
            const float *p = t->net.proba + (size_t)r * MLP_OUT;
            printf("%5d  %5d  %4d  %-14.9g  %-14.9g  %-15a  %a\n", first + r,
                   t->data.y[DATA_TRAIN_ROWS + first + r], mlp_predicted_class(&t->net, r),
                   (double)p[0], (double)p[1], (double)p[0], (double)p[1]);
        }
    }
}

/* ------------------------------------------------------------------ run */

static cairn_status train(trainer *t, int epochs, cairn_error *err)
{
    if (epochs > 0)
        print_table_header();
    for (int e = 0; e < epochs; e++) {
        epoch_stats s;
        cairn_status st = trainer_epoch(t, &s, err);
        if (st != CAIRN_OK)
            return st;
        print_table_row(&s);
    }
    return CAIRN_OK;
}

/* A trainer to start from: restored, fresh with loaded params, or fresh. */
static cairn_status start(const options *o, trainer **t, cairn_error *err)
{
    if (o->load) {
        cairn_status st = checkpoint_load(o->load, &o->cfg, o->given, t, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: resumed %s after epoch %" PRId64 " (%s, lr %g, %d units)\n",
                    o->load, (*t)->epoch, optim_kind_name((*t)->cfg.optimizer), (*t)->cfg.lr,
                    (*t)->cfg.num_units);
        return st;
    }
    cairn_status st = trainer_new(&o->cfg, t, err);
    if (st == CAIRN_OK && o->load_params) {
        st = params_load(*t, o->load_params, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: loaded the parameters of %s into a fresh model\n",
                    o->load_params);
    }
    return st;
}

static cairn_status finish(const options *o, trainer *t, cairn_error *err)
{
    cairn_status st = CAIRN_OK;
    if (o->save) {
        st = checkpoint_save(t, o->save, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: saved the training state after epoch %" PRId64 " to %s\n",
                    t->epoch, o->save);
    }
    if (st == CAIRN_OK && o->save_params) {
        st = params_save(t, o->save_params, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: saved the parameters to %s\n", o->save_params);
    }
    if (st == CAIRN_OK && (o->predict || o->load_params))
        print_predictions(t, o->predict ? PREDICT_ROWS : 0);
    return st;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    cairn_error err = {0};
    trainer *t = NULL;
    cairn_status st = start(&o, &t, &err);
    if (st == CAIRN_OK && !o.load_params)
        st = train(t, o.epochs, &err);
    if (st == CAIRN_OK)
        st = finish(&o, t, &err);
    rc = st == CAIRN_OK ? EXIT_OK : report(st, &err);
    trainer_free(t);
    return rc;
}
