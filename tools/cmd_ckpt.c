/* cmd_ckpt.c -- `cairn ckpt ls|best|verify|prune DIR`: a checkpoint
 * directory seen through the library's checkpoint manager. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ckpt_help[] =
    "usage: cairn ckpt ls DIR [--json]\n"
    "       cairn ckpt best DIR\n"
    "       cairn ckpt verify DIR\n"
    "       cairn ckpt prune DIR [--keep-best K] [--keep-last N] [--keep-every M] [--dry-run]\n"
    "common options: --prefix P (the checkpoints' fn_prefix, default none),\n"
    "                --monitor NAME [--max] (default: what the checkpoints recorded)\n"
    "\n"
    "ls      every checkpoint: seq, epoch, step, metric, bytes, valid, why it was saved;\n"
    "        marks the latest and the best\n"
    "best    prints the path of the best valid checkpoint (by the monitored metric;\n"
    "        the latest when there is none)\n"
    "verify  checks every byte of every checkpoint; exit 1 if the newest is not valid\n"
    "prune   removes what no retention policy keeps (never the newest valid one);\n"
    "        refused while a training run writes DIR (ls, best, verify and\n"
    "        prune --dry-run only read, and never wait)\n"
    "ls, best and verify also read DIR's distributed checkpoints (ckpt-N/ directories\n"
    "of the MPI manager, docs/DISTRIBUTED.md), without MPI; prune leaves them alone.\n"
    "See docs/CHECKPOINTS.md for the layout and the commit protocol.\n";

typedef struct ckpt_args {
    const char *action, *dir, *prefix, *monitor;
    int max, json, dry_run;
    uint32_t keep_best, keep_last, keep_every;
} ckpt_args;

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > UINT32_MAX)
        return cli_usage_error("expected a count, got '%s'", s);
    *out = (uint32_t)v;
    return EXIT_OK;
}

static int parse_args(int argc, char **argv, ckpt_args *a)
{
    memset(a, 0, sizeof *a);
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int has_value = i + 1 < argc;
        int rc = EXIT_OK;
        if (!strcmp(s, "--json"))
            a->json = 1;
        else if (!strcmp(s, "--dry-run"))
            a->dry_run = 1;
        else if (!strcmp(s, "--max"))
            a->max = 1;
        else if (!strcmp(s, "--prefix") && has_value)
            a->prefix = argv[++i];
        else if (!strcmp(s, "--monitor") && has_value)
            a->monitor = argv[++i];
        else if (!strcmp(s, "--keep-best") && has_value)
            rc = parse_u32(argv[++i], &a->keep_best);
        else if (!strcmp(s, "--keep-last") && has_value)
            rc = parse_u32(argv[++i], &a->keep_last);
        else if (!strcmp(s, "--keep-every") && has_value)
            rc = parse_u32(argv[++i], &a->keep_every);
        else if (s[0] == '-' && s[1] != '-')
            rc = cli_usage_error("ckpt: unknown option '%s'", s);
        else
            rc = cli_other_arg("ckpt", argc, argv, &i, NULL, pos, &npos, 2);
        if (rc != EXIT_OK)
            return rc;
    }
    a->action = pos[0];
    a->dir = pos[1];
    if (!a->action || !a->dir)
        return cli_usage_error("%s", "ckpt: needs an action (ls, best, verify, prune) and DIR");
    return EXIT_OK;
}

/* Reads which metric the newest checkpoint was ranked by, so `best` and
 * `prune --keep-best` need no --monitor. */
static void recorded_monitor(cairn_ckpt *m, char *name, size_t size, int *max)
{
    size_t latest;
    cairn_error err;
    cairn_ckpt_info info;
    name[0] = '\0';
    if (cairn_ckpt_latest(m, &latest, &err) != CAIRN_OK ||
        cairn_ckpt_info_at(m, latest, &info, &err) != CAIRN_OK)
        return;
    cairn_file *f;
    if (cairn_file_open(info.path, NULL, &f, &err) != CAIRN_OK)
        return;
    cairn_value *meta;
    if (cairn_file_read_metadata(f, &meta, &err) == CAIRN_OK) {
        const cairn_value *rec = cairn_value_get(meta, "checkpoint");
        const void *s;
        size_t n;
        if (cairn_value_get_data(cairn_value_get(rec, "monitor"), &s, &n) == CAIRN_OK && n < size) {
            memcpy(name, s, n);
            name[n] = '\0';
        }
        if (cairn_value_get_data(cairn_value_get(rec, "mode"), &s, &n) == CAIRN_OK)
            *max = n == 3 && !memcmp(s, "max", 3);
        cairn_value_free(meta);
    }
    cairn_file_close(f);
}

/* Readers take no lock and never wait for a training run; only a prune
 * that removes files is a writer (and is refused while a run writes). */
static int open_manager(const ckpt_args *a, cairn_ckpt **m)
{
    cairn_error err = {0};
    char recorded[256];
    int max = a->max;
    unsigned access = !strcmp(a->action, "prune") && !a->dry_run ? 0 : CAIRN_CKPT_READ_ONLY;
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = a->dir, .fn_prefix = a->prefix,
                         .flags = CAIRN_CKPT_READ_ONLY};
    cairn_status st = cairn_ckpt_open(&o, m, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    const char *monitor = a->monitor;
    if (!monitor) {
        recorded_monitor(*m, recorded, sizeof recorded, &max);
        monitor = recorded[0] ? recorded : NULL;
    }
    if (!monitor && access)
        return EXIT_OK;
    cairn_ckpt_close(*m, NULL);
    o.monitor = monitor;
    o.flags = (max && monitor ? CAIRN_CKPT_MODE_MAX : 0) | access;
    st = cairn_ckpt_open(&o, m, &err);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

static int do_ls(cairn_ckpt *m, const ckpt_args *a)
{
    size_t best = SIZE_MAX, latest = SIZE_MAX;
    cairn_error err;
    cairn_ckpt_best(m, &best, &err);
    cairn_ckpt_latest(m, &latest, &err);
    json_t *list = a->json ? json_array() : NULL;
    if (!a->json)
        printf("%-6s %-6s %-8s %-14s %12s  %-5s %-10s %s\n", "seq", "epoch", "step", "metric",
               "bytes", "valid", "saved for", "path");
    for (size_t i = 0; i < cairn_ckpt_count(m); i++) {
        cairn_ckpt_info in;
        cairn_ckpt_info_at(m, i, &in, &err);
        if (a->json) {
            json_t *o = json_pack("{s:I, s:I, s:I, s:f, s:I, s:b, s:s, s:s, s:b, s:b}", "seq",
                                  (json_int_t)in.seq, "epoch", (json_int_t)in.epoch, "step",
                                  (json_int_t)in.step, "time", in.time, "bytes",
                                  (json_int_t)in.bytes, "valid", in.valid, "reasons", in.reasons,
                                  "path", in.path, "latest", i == latest, "best", i == best);
            if (in.has_metric)
                json_object_set_new(o, "metric", json_real(in.metric));
            json_array_append_new(list, o);
            continue;
        }
        char metric[32] = "-", path[CLI_SAFE_MAX], why[CLI_SAFE_MAX];
        if (in.has_metric)
            snprintf(metric, sizeof metric, "%.6g", in.metric);
        printf("%-6" PRIu64 " %-6" PRIu64 " %-8" PRIu64 " %-14s %12" PRIu64 "  %-5s %-10s %s%s%s\n",
               in.seq, in.epoch, in.step, metric, in.bytes, in.valid ? "yes" : "NO",
               in.reasons[0] ? cli_safe(in.reasons, strlen(in.reasons), why, sizeof why) : "-",
               cli_safe(in.path, strlen(in.path), path, sizeof path), i == latest ? "  (latest)" : "",
               i == best && best != latest ? "  (best)" : i == best ? " (best)" : "");
    }
    return a->json ? cli_print_json(list) : EXIT_OK;
}

static int do_best(cairn_ckpt *m)
{
    size_t best;
    cairn_error err = {0};
    cairn_status st = cairn_ckpt_best(m, &best, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    cairn_ckpt_info in;
    cairn_ckpt_info_at(m, best, &in, &err);
    puts(in.path);
    return EXIT_OK;
}

/* Every byte of every checkpoint; the newest decides the exit code. */
static int do_verify(cairn_ckpt *m)
{
    size_t n = cairn_ckpt_count(m);
    int newest_ok = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        cairn_ckpt_info in;
        cairn_error err = {0};
        cairn_ckpt_info_at(m, i, &in, &err);
        cairn_file *f = NULL;
        cairn_status st = cairn_file_open(in.path, NULL, &f, &err);
        if (st == CAIRN_OK)
            st = cairn_file_verify(f, &err);
        cairn_file_close(f);
        if (st == CAIRN_OK && !in.valid)
            st = CAIRN_E_CORRUPT, snprintf(err.message, sizeof err.message,
                                           "%s: no checkpoint record", in.path);
        char path[CLI_SAFE_MAX], why[4 * sizeof err.message + 8];
        cli_safe(in.path, strlen(in.path), path, sizeof path);
        if (st == CAIRN_OK)
            printf("ok   %s\n", path);
        else
            printf("BAD  %s: %s\n", path, cli_safe(err.message, strlen(err.message), why,
                                                   sizeof why)), bad++;
        if (i == n - 1)
            newest_ok = st == CAIRN_OK;
    }
    if (n == 0) {
        fprintf(stderr, "%s: no checkpoints\n", cli_prog);
        return EXIT_BAD_INPUT;
    }
    printf("%zu checkpoints, %d bad; the newest is %s\n", n, bad, newest_ok ? "valid" : "NOT valid");
    return newest_ok ? EXIT_OK : EXIT_BAD_INPUT;
}

static int do_prune(cairn_ckpt *m, const ckpt_args *a)
{
    size_t removed = 0, before = cairn_ckpt_count(m);
    cairn_error err = {0};
    cairn_status st = cairn_ckpt_prune(m, a->keep_best, a->keep_last, a->keep_every, a->dry_run,
                                       &removed, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    printf("%s %zu of %zu checkpoints\n", a->dry_run ? "would remove" : "removed", removed, before);
    return EXIT_OK;
}

static int run(int argc, char **argv)
{
    ckpt_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc;
    int known = !strcmp(a.action, "ls") || !strcmp(a.action, "best") ||
                !strcmp(a.action, "verify") || !strcmp(a.action, "prune");
    if (!known)
        return cli_usage_error("ckpt: unknown action '%s' (ls, best, verify, prune)", a.action);
    if (!strcmp(a.action, "prune") && !a.keep_best && !a.keep_last && !a.keep_every)
        return cli_usage_error("%s", "ckpt prune: give --keep-best, --keep-last or --keep-every");
    cairn_ckpt *m;
    if ((rc = open_manager(&a, &m)) != EXIT_OK)
        return rc;
    if (!strcmp(a.action, "ls"))
        rc = do_ls(m, &a);
    else if (!strcmp(a.action, "best"))
        rc = do_best(m);
    else if (!strcmp(a.action, "verify"))
        rc = do_verify(m);
    else
        rc = do_prune(m, &a);
    cairn_error err = {0};
    cairn_status st = cairn_ckpt_close(m, &err);
    return rc == EXIT_OK && st != CAIRN_OK ? cli_report(st, &err) : rc;
}

const cli_command cli_cmd_ckpt = {
    "ckpt",
    "  ckpt ls|best|verify|prune DIR   inspect and prune a checkpoint directory\n",
    ckpt_help,
    run,
};
