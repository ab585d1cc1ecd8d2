/* mlp.c -- the command line: train, checkpoint, resume, export, predict.
 *
 *   mlp --epochs 4 --save a.cairn                    four epochs, whole state saved
 *   mlp --epochs 2 --save b.cairn                    two epochs ...
 *   mlp --load b.cairn --epochs 2 --save c.cairn     ... and two more: c == a, bit for bit
 *   mlp --save-params p.cairn --predict              train, export params, predict
 *   mlp --load-params p.cairn --predict              a fresh model predicts the same bits
 *
 *   mlp --ckpt-dir exp --epochs 10                   checkpoints whenever valid_loss improves,
 *                                                    and one at train end
 *   mlp --ckpt-dir exp --resume --epochs 5           epochs 11..15, from the newest valid one
 *   mlp --ckpt-dir exp --load-best --predict         the best checkpoint predicts
 *
 *   mlp --load-torch params.pt --predict-npy X.npy   a skorch/PyTorch state_dict predicts
 *   mlp --load-params p.cairn --export p.pt          the parameters for torch.load
 *
 * Results go to stdout (the epoch table, predictions); what the program did
 * with files goes to stderr. Exit status: 0 ok, 1 bad input (a checkpoint
 * that is corrupt, of another kind, or incompatible with the options),
 * 2 usage error, 3 I/O error or out of memory -- as for the cairn tool.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "mlp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2, EXIT_IO = 3 };
enum { PREDICT_ROWS = 20 };

static const char synopsis[] =
    "usage: mlp [--epochs N] [--lr X] [--optimizer sgd|adam] [--momentum X] [--num-units N]\n"
    "           [--batch-size N] [--seed S] [--save PATH] [--load PATH]\n"
    "           [--save-params PATH] [--load-params PATH] [--load-torch PATH.pt]\n"
    "           [--export PATH.safetensors|PATH.pt] [--predict] [--predict-npy X.npy]\n"
    "           [--ckpt-dir DIR [--prefix P] [--monitor NAME|none] [--every N]\n"
    "            [--keep-best K] [--keep-last N] [--async]\n"
    "            [--train-end-prefix P | --no-train-end]\n"
    "            [--resume | --resume-from latest|best] [--resume-prefix P] [--load-best]]\n";

static const char help[] =
    "\n"
    "Trains skorch's documentation model in plain C and checkpoints it with libcairn:\n"
    "  Linear(10, N) ReLU Dropout(0.2) Linear(N, 10) Linear(10, 2) Softmax, NLL loss,\n"
    "on a fixed make_classification-like data set (1,000 rows, 10 features, 5 informative,\n"
    "2 classes; 800 train, 200 validation), in shuffled mini-batches.\n"
    "\n"
    "training:\n"
    "  --epochs N          epochs to train (default 10; after --load or --resume, N more)\n"
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
    "  --load-torch PATH   load a PyTorch state_dict (torch.save of module.state_dict(),\n"
    "                      skorch's save_params f_params) into a fresh model and evaluate\n"
    "                      it; no training. The hidden width comes from 0.weight's shape;\n"
    "                      nothing in the file is executed (cairn's restricted reader)\n"
    "  --export PATH       after training or loading, save the parameters only for other\n"
    "                      tools: PATH.safetensors (metadata: plain strings format pt,\n"
    "                      module, num_units) or PATH.pt / PATH.pth (the bare state_dict,\n"
    "                      for torch.load(PATH, weights_only=True) and load_state_dict)\n"
    "\n"
    "a checkpoint directory (libcairn's checkpoint manager, docs/CHECKPOINTS.md):\n"
    "  --ckpt-dir DIR      keep checkpoints of the whole training state (what --save writes)\n"
    "                      in DIR, as files <prefix>ckpt-<seq>.cairn. At each epoch's end the\n"
    "                      manager saves when the monitored metric improved; the table's cp\n"
    "                      column shows '+'. On SIGTERM or SIGINT it saves at the end of the\n"
    "                      current epoch, and the run stops cleanly with exit status 0\n"
    "  --prefix P          the file name prefix of this run's checkpoints (default none)\n"
    "  --monitor NAME      valid_loss (the default) or train_loss: lower is better;\n"
    "                      valid_acc: higher is better; none: save every epoch (with --every N,\n"
    "                      every N epochs)\n"
    "  --every N           (also) save every N epochs\n"
    "  --keep-best K       keep the K best checkpoints by the monitor, and\n"
    "  --keep-last N       the N newest ones; a checkpoint that either keeps stays, and so\n"
    "                      does the newest (default: keep every checkpoint)\n"
    "  --async             write checkpoints in a background thread: training goes on as soon\n"
    "                      as the state is copied; the exit waits until the last one is on disk\n"
    "  --train-end-prefix P  at the end of training (also after a signal) save one more\n"
    "                      checkpoint as P + ckpt-<seq>.cairn, like skorch's\n"
    "                      TrainEndCheckpoint (default train_end_)\n"
    "  --no-train-end      no train-end checkpoint\n"
    "  --resume            go on from the newest checkpoint that verifies (newer damaged ones\n"
    "                      are skipped, with the reason on stderr) for --epochs more; the\n"
    "                      epochs go on from its epoch. With no checkpoint yet, start a fresh\n"
    "                      run: the same command starts and continues a run (skorch's\n"
    "                      LoadInitState); if every checkpoint is damaged, exit 1. Options\n"
    "                      given must match the checkpoint as with --load, but for --lr: it\n"
    "                      sets the optimizer's new learning rate\n"
    "  --resume-from WHICH latest (the same as --resume) or best (by --monitor)\n"
    "  --resume-prefix P   resume from (and --load-best from) P + ckpt-*.cairn while this run\n"
    "                      saves under --prefix (default: --prefix)\n"
    "  --load-best         load the best checkpoint (by --monitor) into a fresh model and\n"
    "                      evaluate it; no training. With --predict, prints what --load-params\n"
    "                      of that file prints\n"
    "\n"
    "output:\n"
    "  --predict           print the validation score and the class probabilities of the\n"
    "                      first 20 validation rows, as %.9g and as exact hex floats\n"
    "  --predict-npy X.npy print the class probabilities of each row of X ([rows, 10]\n"
    "                      float array) in eval mode: one line per row, space-separated,\n"
    "                      %.9g (what skorch's predict_proba(X) gives)\n"
    "  -h, --help          this text\n"
    "\n"
    "exit status: 0 ok (also after a signal stopped training), 1 bad input (corrupt,\n"
    "             foreign or incompatible checkpoint), 2 usage error, 3 I/O error or out\n"
    "             of memory (also when a background checkpoint save failed)\n";

typedef struct options {
    train_config cfg;
    unsigned given; /* GIVEN_* */
    int epochs, epochs_given;
    const char *save, *load, *save_params, *load_params, *export_path;
    const char *load_torch, *predict_npy;
    int predict;
    ckpt_config ck;
    int load_best, no_train_end;
    const char *dir_option; /* the first option given that needs --ckpt-dir */
    const char *monitor;    /* as given; NULL = the default */
    int sleep_ms;           /* hidden, for tests: a slow epoch to send a signal into */
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
    OPT_SAVE, OPT_LOAD, OPT_SAVE_PARAMS, OPT_LOAD_PARAMS, OPT_EXPORT, OPT_PREDICT, OPT_HELP,
    OPT_LOAD_TORCH, OPT_PREDICT_NPY,
    OPT_CKPT_DIR, OPT_PREFIX, OPT_MONITOR, OPT_EVERY, OPT_KEEP_BEST, OPT_KEEP_LAST, OPT_ASYNC,
    OPT_TRAIN_END_PREFIX, OPT_NO_TRAIN_END, OPT_RESUME, OPT_RESUME_FROM, OPT_RESUME_PREFIX,
    OPT_LOAD_BEST, OPT_SLEEP
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
    {"--export", OPT_EXPORT, 1},
    {"--predict", OPT_PREDICT, 0},
    {"--load-torch", OPT_LOAD_TORCH, 1},
    {"--predict-npy", OPT_PREDICT_NPY, 1},
    {"--help", OPT_HELP, 0},
    {"-h", OPT_HELP, 0},
    {"--ckpt-dir", OPT_CKPT_DIR, 1},
    {"--prefix", OPT_PREFIX, 1},
    {"--monitor", OPT_MONITOR, 1},
    {"--every", OPT_EVERY, 1},
    {"--keep-best", OPT_KEEP_BEST, 1},
    {"--keep-last", OPT_KEEP_LAST, 1},
    {"--async", OPT_ASYNC, 0},
    {"--train-end-prefix", OPT_TRAIN_END_PREFIX, 1},
    {"--no-train-end", OPT_NO_TRAIN_END, 0},
    {"--resume", OPT_RESUME, 0},
    {"--resume-from", OPT_RESUME_FROM, 1},
    {"--resume-prefix", OPT_RESUME_PREFIX, 1},
    {"--load-best", OPT_LOAD_BEST, 0},
    /* Not in --help: sleeps this many milliseconds before each epoch, so
     * that tests (and the demo) can signal or kill a run mid-training. */
    {"--sleep-per-epoch", OPT_SLEEP, 1},
};

/* The options of the checkpoint directory; returns -1 to go on, or an exit
 * code. Each of them but --ckpt-dir needs --ckpt-dir. */
static int apply_ckpt(options *o, opt_id id, const char *name, const char *value)
{
    int64_t n = 0;
    int rc = EXIT_OK;
    if (id != OPT_CKPT_DIR && !o->dir_option)
        o->dir_option = name;
    switch (id) {
    case OPT_CKPT_DIR: o->ck.dir = value; break;
    case OPT_PREFIX: o->ck.prefix = value; break;
    case OPT_RESUME_PREFIX: o->ck.resume_prefix = value; break;
    case OPT_TRAIN_END_PREFIX: o->ck.train_end_prefix = value; break;
    case OPT_NO_TRAIN_END: o->no_train_end = 1; break;
    case OPT_ASYNC: o->ck.async = 1; break;
    case OPT_LOAD_BEST: o->load_best = 1; break;
    case OPT_RESUME: o->ck.resume = RESUME_LATEST; break;
    case OPT_RESUME_FROM:
        if (strcmp(value, "latest") != 0 && strcmp(value, "best") != 0)
            return usage_error("--resume-from wants latest or best, got '%s'", value);
        o->ck.resume = value[0] == 'b' ? RESUME_BEST : RESUME_LATEST;
        break;
    case OPT_MONITOR:
        if (strcmp(value, "none") != 0 && strcmp(value, "valid_loss") != 0 &&
            strcmp(value, "train_loss") != 0 && strcmp(value, "valid_acc") != 0)
            return usage_error("--monitor wants valid_loss, train_loss, valid_acc or none, "
                               "got '%s'", value);
        o->monitor = value;
        break;
    case OPT_EVERY:
        rc = parse_int(name, value, 1, UINT32_MAX, &n);
        o->ck.every = (uint32_t)n;
        break;
    case OPT_KEEP_BEST:
        rc = parse_int(name, value, 1, UINT32_MAX, &n);
        o->ck.keep_best = (uint32_t)n;
        break;
    case OPT_KEEP_LAST:
        rc = parse_int(name, value, 1, UINT32_MAX, &n);
        o->ck.keep_last = (uint32_t)n;
        break;
    default: break;
    }
    return rc == EXIT_OK ? -1 : rc;
}

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
    case OPT_SLEEP:
        rc = parse_int(name, value, 0, 3600 * 1000, &n);
        o->sleep_ms = (int)n;
        break;
    case OPT_SAVE: o->save = value; break;
    case OPT_LOAD: o->load = value; break;
    case OPT_SAVE_PARAMS: o->save_params = value; break;
    case OPT_LOAD_PARAMS: o->load_params = value; break;
    case OPT_EXPORT: o->export_path = value; break;
    case OPT_PREDICT: o->predict = 1; break;
    case OPT_LOAD_TORCH: o->load_torch = value; break;
    case OPT_PREDICT_NPY: o->predict_npy = value; break;
    case OPT_HELP: printf("%s%s", synopsis, help); return EXIT_OK;
    default: return apply_ckpt(o, id, name, value);
    }
    return rc == EXIT_OK ? -1 : rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Defaults and combinations of the checkpoint directory's options. Returns
 * -1 to go on, or an exit code. */
static int finish_ckpt_options(options *o)
{
    ckpt_config *c = &o->ck;
    if (!c->dir)
        return o->dir_option ? usage_error("%s needs --ckpt-dir", o->dir_option) : -1;
    if (!c->prefix)
        c->prefix = "";
    if (!c->resume_prefix)
        c->resume_prefix = c->prefix;
    /* skorch's Checkpoint monitors valid_loss_best by default. */
    c->monitor = !o->monitor ? "valid_loss" : strcmp(o->monitor, "none") == 0 ? NULL : o->monitor;
    if (c->keep_best && !c->monitor)
        return usage_error("--keep-best ranks by the monitor: not with --monitor none");
    if (o->no_train_end && c->train_end_prefix)
        return usage_error("--train-end-prefix and --no-train-end exclude each other");
    if (!o->no_train_end && !c->train_end_prefix)
        c->train_end_prefix = "train_end_";
    if (c->train_end_prefix && strcmp(c->train_end_prefix, c->prefix) == 0)
        return usage_error("the train-end checkpoints need a prefix of their own, not '%s'",
                           c->prefix);
    if (o->load_params || o->load_torch)
        return usage_error("%s evaluates one file: not with --ckpt-dir (to evaluate the best "
                           "checkpoint, use --load-best)",
                           o->load_params ? "--load-params" : "--load-torch");
    if (c->resume && o->load)
        return usage_error("--resume restores from --ckpt-dir: not with --load");
    if (o->load_best && (c->resume || o->load || o->load_params || o->epochs_given || o->save))
        return usage_error("--load-best loads a model to evaluate, not to train; to train on "
                           "from the best checkpoint use --resume-from best");
    return -1;
}

/* Defaults that depend on other options, then the combinations that make
 * no sense. Returns -1 to go on, or an exit code. */
static int finish_options(options *o)
{
    if (!(o->given & GIVEN_LR))
        o->cfg.lr = o->cfg.optimizer == OPTIM_ADAM ? 0.01 : 0.1;
    if (o->cfg.optimizer == OPTIM_ADAM) {
        if ((o->given & GIVEN_MOMENTUM) && !o->load && !o->ck.resume)
            return usage_error("--momentum is for --optimizer sgd");
        o->cfg.momentum = 0.0;
    }
    if (o->load && o->load_params)
        return usage_error("--load and --load-params exclude each other");
    if (o->load_torch && (o->load || o->load_params))
        return usage_error("--load-torch and %s exclude each other",
                           o->load ? "--load" : "--load-params");
    if ((o->load_params || o->load_torch) && (o->epochs_given || o->save))
        return usage_error("%s loads a model to evaluate, not to train; resume training "
                           "with --load", o->load_params ? "--load-params" : "--load-torch");
    if (o->export_path && !ends_with(o->export_path, ".safetensors") &&
        !ends_with(o->export_path, ".pt") && !ends_with(o->export_path, ".pth"))
        return usage_error("--export writes safetensors or a PyTorch state_dict: the path must "
                           "end in .safetensors, .pt or .pth (--save-params writes a cairn "
                           "file)");
    const char *problem = train_config_problem(&o->cfg);
    if (problem)
        return usage_error("%s", problem);
    return finish_ckpt_options(o);
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
 * tool: 3 when the system failed us (I/O, memory, a store's refusal), 1 for
 * bad input. */
static int report(cairn_status st, const cairn_error *err)
{
    fprintf(stderr, "mlp: %s\n", err->message[0] ? err->message : cairn_strerror(st));
    return st == CAIRN_E_IO || st == CAIRN_E_AUTH || st == CAIRN_E_NOMEM ? EXIT_IO
                                                                         : EXIT_BAD_INPUT;
}

/* The table skorch prints, one row per epoch as it finishes; with a
 * checkpoint directory, skorch's cp column too: '+' where a checkpoint was
 * saved. */
static void print_table_header(int with_cp)
{
    if (with_cp)
        printf("  epoch    train_loss    valid_acc    valid_loss    cp     dur\n"
               "-------  ------------  -----------  ------------  ----  ------\n");
    else
        printf("  epoch    train_loss    valid_acc    valid_loss     dur\n"
               "-------  ------------  -----------  ------------  ------\n");
}

/* cp: NULL for no cp column, else the cell ("+" or ""). */
static void print_table_row(const epoch_stats *s, const char *cp)
{
    printf("%7" PRId64 "  %12.4f  %11.4f  %12.4f  ", s->epoch, s->train_loss, s->valid_acc,
           s->valid_loss);
    if (cp)
        printf("%4s  ", cp);
    printf("%6.4f\n", s->dur);
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

/* --sleep-per-epoch: a signal cuts the sleep short, which is what we want. */
static void pause_ms(int ms)
{
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Trains o->epochs epochs, offering the state to the checkpoint managers at
 * each epoch's end; stops early (cleanly) when a signal made them save. */
static cairn_status train(const options *o, trainer *t, run_ckpts *ck, cairn_error *err)
{
    if (o->epochs > 0)
        print_table_header(ck->main != NULL);
    for (int e = 0; e < o->epochs; e++) {
        epoch_stats s;
        int saved = CAIRN_SAVED_NO;
        pause_ms(o->sleep_ms);
        cairn_status st = trainer_epoch(t, &s, err);
        if (st == CAIRN_OK)
            st = ckpts_epoch_end(ck, t, &s, &saved, err);
        if (st != CAIRN_OK)
            return st;
        print_table_row(&s, !ck->main ? NULL : saved != CAIRN_SAVED_NO ? "+" : "");
        if (saved == CAIRN_SAVED_SIGNAL) {
            fprintf(stderr, "mlp: signal received: saved a checkpoint in %s after epoch %" PRId64
                    "; stopping\n", ck->dir, t->epoch);
            break;
        }
    }
    return ckpts_train_end(ck, t, err);
}

/* --resume: the checkpoint directory's state, or a fresh one when it has
 * none yet. --lr is allowed: it changes the optimizer's learning rate from
 * here on (skorch's "resume with a lower lr"). */
static cairn_status start_resumed(const options *o, trainer **t, cairn_error *err)
{
    cairn_status st = ckpt_resume(&o->ck, &o->cfg, o->given & ~GIVEN_LR, t, err);
    if (st != CAIRN_OK)
        return st;
    if (!*t)
        return trainer_new(&o->cfg, t, err);
    if ((o->given & GIVEN_LR) && (*t)->opt.lr != o->cfg.lr) {
        fprintf(stderr, "mlp: learning rate %g -> %g (--lr)\n", (*t)->opt.lr, o->cfg.lr);
        (*t)->cfg.lr = (*t)->opt.lr = o->cfg.lr;
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
    if (o->ck.resume)
        return start_resumed(o, t, err);
    if (o->load_best)
        return ckpt_load_best(&o->ck, &o->cfg, o->given & ~GIVEN_LR, t, err);
    if (o->load_torch) {
        cairn_status st = torch_load(&o->cfg, o->load_torch, t, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: loaded the PyTorch state_dict %s (%d hidden units) into a "
                    "fresh model\n", o->load_torch, (*t)->cfg.num_units);
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
    if (st == CAIRN_OK && o->export_path) {
        st = params_export(t, o->export_path, err);
        if (st == CAIRN_OK)
            fprintf(stderr, "mlp: exported the parameters to %s\n", o->export_path);
    }
    /* --predict-npy alone keeps stdout to its rows, for other programs. */
    int evaluates = o->load_params || o->load_best || o->load_torch;
    if (st == CAIRN_OK && (o->predict || (evaluates && !o->predict_npy)))
        print_predictions(t, o->predict ? PREDICT_ROWS : 0);
    if (st == CAIRN_OK && o->predict_npy)
        st = predict_npy(t, o->predict_npy, err);
    return st;
}

/* Start, train (with the checkpoint managers open), finish. */
static int run(const options *o)
{
    cairn_error err = {0}, close_err = {0};
    trainer *t = NULL;
    run_ckpts ck = {0};
    int trains = !o->load_params && !o->load_best && !o->load_torch;
    cairn_status st = start(o, &t, &err);
    if (st == CAIRN_OK && trains)
        st = ckpts_open(&o->ck, &ck, &err);
    if (st == CAIRN_OK && trains)
        st = train(o, t, &ck, &err);
    /* Closing waits for a background save and returns its error: a run
     * whose last checkpoint did not reach the disk has failed (I/O). */
    cairn_status closed = ckpts_close(&ck, &close_err);
    if (st == CAIRN_OK)
        st = finish(o, t, &err);
    int rc = st == CAIRN_OK ? EXIT_OK : report(st, &err);
    if (closed != CAIRN_OK) {
        if (st == CAIRN_OK || closed != st)
            report(closed, &close_err);
        rc = EXIT_IO;
    }
    trainer_free(t);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    return rc >= 0 ? rc : run(&o);
}
