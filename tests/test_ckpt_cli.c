/* test_ckpt_cli.c -- `cairn ckpt ls|best|verify|prune` against directories
 * written by the library's checkpoint manager: output, exit codes, and that
 * the CLI finds the monitored metric on its own. */
#include "testutil.h"

#include <cairn.h>
#include <stdarg.h>
#include <sys/wait.h>

static const char *cli;

/* Runs a shell command, captures stdout into out; returns the exit code. */
static int run(char *out, size_t size, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int status = p ? pclose(p) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void make_run(const char *dir)
{
    float w[8] = {0};
    uint64_t d = 8;
    cairn_error err;
    cairn_params *p = cairn_params_new();
    CHECK_OK(cairn_params_add(p, "w", CAIRN_F32, 1, &d, w, &err));
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = "toy", .params = p};
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir, .monitor = "valid_acc",
                         .flags = CAIRN_CKPT_MODE_MAX | CAIRN_CKPT_NO_SYNC, .every_epochs = 1};
    cairn_ckpt *m;
    CHECK_OK(cairn_ckpt_open(&o, &m, &err));
    const double acc[5] = {0.5, 0.7, 0.9, 0.6, 0.8};
    for (int e = 1; e <= 5; e++) {
        cairn_value *mt = cairn_value_map();
        cairn_value_set(mt, "valid_acc", cairn_value_float(acc[e - 1]), &err);
        w[0] = (float)e;
        CHECK_OK(cairn_ckpt_step(m, (uint64_t)e, (uint64_t)e * 8, mt, &parts, 0, NULL, &err));
        cairn_value_free(mt);
    }
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(p);
}

int main(void)
{
    cli = getenv("CAIRN_CLI");
    const char *py = getenv("CAIRN_PYTHON");
    if (!cli) {
        fprintf(stderr, "CAIRN_CLI unset: skipped\n");
        return 77;
    }
    char dir[4200], out[65536];
    snprintf(dir, sizeof dir, "%s/run", tu_tmpdir("test_ckpt_cli"));
    make_run(dir);

    CHECK(run(out, sizeof out, "%s ckpt ls %s", cli, dir) == 0);
    CHECK(strstr(out, "ckpt-00000003.cairn  (best)") != NULL);
    CHECK(strstr(out, "ckpt-00000005.cairn  (latest)") != NULL);
    CHECK(run(out, sizeof out, "%s ckpt best %s", cli, dir) == 0);
    CHECK(strstr(out, "/ckpt-00000003.cairn\n") != NULL); /* max mode found on its own */
    CHECK(run(out, sizeof out, "%s ckpt ls %s --json", cli, dir) == 0);
    if (py && access(py, X_OK) == 0) {
        char check[9000];
        snprintf(check, sizeof check,
                 "%s ckpt ls %s --json | %s -c \"import json,sys; l=json.load(sys.stdin); "
                 "assert [c['epoch'] for c in l]==[1,2,3,4,5]; "
                 "assert [c['best'] for c in l]==[0,0,1,0,0]; assert l[4]['latest']; "
                 "assert abs(l[2]['metric']-0.9)<1e-12 and all(c['valid'] for c in l)\"",
                 cli, dir, py);
        CHECK(system(check) == 0);
    }
    CHECK(run(out, sizeof out, "%s ckpt verify %s", cli, dir) == 0);
    CHECK(strstr(out, "5 checkpoints, 0 bad; the newest is valid") != NULL);

    /* prune: dry run, then for real; the best and the newest survive */
    CHECK(run(out, sizeof out, "%s ckpt prune %s --keep-best 1 --keep-last 1 --dry-run", cli,
              dir) == 0);
    CHECK(strstr(out, "would remove 3 of 5") != NULL);
    CHECK(run(out, sizeof out, "%s ckpt prune %s --keep-best 1 --keep-last 1", cli, dir) == 0);
    CHECK(strstr(out, "removed 3 of 5") != NULL);
    CHECK(run(out, sizeof out, "%s ckpt ls %s", cli, dir) == 0);
    CHECK(strstr(out, "ckpt-00000003") && strstr(out, "ckpt-00000005") &&
          !strstr(out, "ckpt-00000004"));

    /* damage the newest: verify says so and exits 1 */
    char path[4400];
    snprintf(path, sizeof path, "%s/ckpt-00000005.cairn", dir);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 70, SEEK_SET);
    fputc(0x55, fp);
    fclose(fp);
    CHECK(run(out, sizeof out, "%s ckpt verify %s", cli, dir) == 1);
    CHECK(strstr(out, "BAD") && strstr(out, "checksum") && strstr(out, "NOT valid"));

    /* usage errors */
    CHECK(run(out, sizeof out, "%s ckpt 2>/dev/null", cli) == 2);
    CHECK(run(out, sizeof out, "%s ckpt frob %s 2>/dev/null", cli, dir) == 2);
    CHECK(run(out, sizeof out, "%s ckpt prune %s 2>/dev/null", cli, dir) == 2);
    CHECK(run(out, sizeof out, "%s ckpt ls %s --bogus 2>/dev/null", cli, dir) == 2);
    CHECK(run(out, sizeof out, "%s ckpt --help", cli) == 0 && strstr(out, "prune"));
    TEST_MAIN_END();
}
