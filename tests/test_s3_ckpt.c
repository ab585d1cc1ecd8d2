/*
 * test_s3_ckpt.c -- the checkpoint manager on an object-storage prefix
 * (moto with SigV4 enforced, under tests/s3_harness.py): retention by
 * listing, resume, two managers (in one process, and in two processes at
 * once) racing for one sequence number (one takes it, the other the next:
 * nothing is overwritten), and writer
 * processes SIGKILLed at random instants during their uploads.
 */
#include "s3util.h"

#include <signal.h>
#include <time.h>

#define W_COUNT ((size_t)3 << 20) /* floats: 12 MiB, two parts */

typedef struct run {
    float *w;
    int64_t step;
    cairn_params *p;
    cairn_model_parts parts;
} run;

static void run_init(run *r, float v)
{
    cairn_error err;
    uint64_t d = W_COUNT;
    r->w = malloc(W_COUNT * sizeof *r->w);
    for (size_t i = 0; i < W_COUNT; i++)
        r->w[i] = v + (float)(i % 1000);
    r->step = 0;
    r->p = cairn_params_new();
    CHECK_EOK(cairn_params_add(r->p, "w", CAIRN_F32, 1, &d, r->w, &err));
    CHECK_EOK(cairn_params_add(r->p, "step", CAIRN_I64, 0, NULL, &r->step, &err));
    r->parts = (cairn_model_parts){.struct_size = sizeof r->parts, .kind = "toy", .params = r->p};
}

static void run_free(run *r)
{
    cairn_params_free(r->p);
    free(r->w);
}

static void set_run(run *r, int64_t step)
{
    r->step = step;
    for (size_t i = 0; i < W_COUNT; i += 4096)
        r->w[i] = (float)step;
}

static cairn_ckpt *open_mgr(const char *dir, const char *monitor, uint32_t best, uint32_t last)
{
    cairn_error err;
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir, .monitor = monitor,
                         .keep_best = best, .keep_last = last};
    cairn_ckpt *m = NULL;
    CHECK_EOK(cairn_ckpt_open(&o, &m, &err));
    return m;
}

static cairn_value *metrics(double loss)
{
    cairn_error err;
    cairn_value *m = cairn_value_map();
    cairn_value_set(m, "valid_loss", cairn_value_float(loss), &err);
    return m;
}

static int count_keys(void *ctx, const char *key, uint64_t size)
{
    (*(int *)ctx)++;
    return 0;
}

static int keys_under(const char *prefix)
{
    cairn__s3 *s = open_s3(0, 3);
    int n = 0;
    cairn_error err;
    CHECK_EOK(cairn__s3_list(s, bucket, prefix, count_keys, &n, &err));
    cairn__s3_close(s);
    return n;
}

static int remote_uploads(const char *prefix)
{
    if (!server_has("uploads"))
        return 0; /* s3rver: no listing (s3_test_setup said so) */
    cairn__s3 *s = open_s3(0, 3);
    int n = uploads_under(s, prefix);
    cairn__s3_close(s);
    return n;
}

static void test_manager(void)
{
    char dir[256];
    cairn_error err;
    snprintf(dir, sizeof dir, "s3://%s/run1/", bucket);
    run r;
    run_init(&r, 1);
    cairn_ckpt *m = open_mgr(dir, "valid_loss", 1, 2);
    static const double losses[] = {0.9, 0.5, 0.7, 0.8, 0.6};
    for (int e = 0; e < 5 && m; e++) {
        set_run(&r, 100 * (e + 1));
        cairn_value *mt = metrics(losses[e]);
        int saved = 0;
        CHECK_EOK(cairn_ckpt_step(m, (uint64_t)e, (uint64_t)e * 100, mt, &r.parts,
                                  CAIRN_STEP_FORCE, &saved, &err));
        CHECK(saved);
        cairn_value_free(mt);
    }
    /* Kept: the best (epoch 1, loss 0.5) and the 2 newest (epochs 3, 4). */
    CHECK(m && cairn_ckpt_count(m) == 3);
    CHECK(keys_under("run1/") == 3);
    CHECK_EOK(cairn_ckpt_close(m, &err));

    /* A fresh manager rebuilds everything from the listing. */
    m = open_mgr(dir, "valid_loss", 1, 2);
    size_t best, latest;
    CHECK_EOK(cairn_ckpt_best(m, &best, &err));
    CHECK_EOK(cairn_ckpt_latest(m, &latest, &err));
    cairn_ckpt_info bi, li;
    CHECK_EOK(cairn_ckpt_info_at(m, best, &bi, &err));
    CHECK_EOK(cairn_ckpt_info_at(m, latest, &li, &err));
    CHECK(bi.epoch == 1 && bi.valid && li.epoch == 4 && li.valid);
    CHECK(li.bytes > W_COUNT * sizeof(float));
    CHECK(strstr(li.path, "s3://cairn-test/run1/ckpt-00000005.cairn") == li.path);
    run back;
    run_init(&back, -1);
    cairn_ckpt_resume_info ri;
    cairn_load_opts lo = {.struct_size = sizeof lo, .flags = CAIRN_LOAD_STRICT};
    CHECK_EOK(cairn_ckpt_resume(m, &back.parts, &lo, NULL, &ri, &err));
    CHECK(ri.next_epoch == 5 && back.step == 500 && back.w[4096] == 500.0f);
    CHECK(memcmp(back.w + 1, r.w + 1, 1000 * sizeof(float)) == 0);
    CHECK_EOK(cairn_ckpt_close(m, &err));

    /* Two managers that both think seq 6 is next: the first takes it, the
     * second finds the key taken (a create-only upload refused) and saves
     * as 7; nothing is overwritten. */
    if (!server_has("conditional")) {
        run_free(&r);
        run_free(&back);
        return;
    }
    cairn_ckpt *a = open_mgr(dir, NULL, 0, 0), *b = open_mgr(dir, NULL, 0, 0);
    int saved = 0;
    set_run(&r, 900);
    set_run(&back, 901);
    CHECK_EOK(cairn_ckpt_step(a, 9, 900, NULL, &r.parts, CAIRN_STEP_FORCE, &saved, &err));
    CHECK_EOK(cairn_ckpt_step(b, 9, 901, NULL, &back.parts, CAIRN_STEP_FORCE, &saved, &err));
    cairn_ckpt_info ia, ib;
    CHECK_EOK(cairn_ckpt_info_at(a, cairn_ckpt_count(a) - 1, &ia, &err));
    CHECK_EOK(cairn_ckpt_info_at(b, cairn_ckpt_count(b) - 1, &ib, &err));
    CHECK(ia.seq == 6 && ib.seq == 7);
    CHECK_EOK(cairn_ckpt_close(a, &err));
    CHECK_EOK(cairn_ckpt_close(b, &err));
    a = open_mgr(dir, NULL, 0, 0);
    CHECK_EOK(cairn_ckpt_load(a, cairn_ckpt_count(a) - 2, &back.parts, NULL, NULL, &err));
    CHECK(back.step == 900);
    CHECK_EOK(cairn_ckpt_load(a, cairn_ckpt_count(a) - 1, &back.parts, NULL, NULL, &err));
    CHECK(back.step == 901);
    CHECK_EOK(cairn_ckpt_close(a, &err));
    CHECK(remote_uploads("run1/") == 0);
    run_free(&r);
    run_free(&back);
}

/* Two processes open managers on one prefix and save at the same moment:
 * both pick the same sequence number; the create-only upload lets exactly
 * one have it, the other saves under the next number; both checkpoints
 * hold their own writer's state and nothing was overwritten. */
static void test_two_processes(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "s3://%s/duel", bucket);
    for (int round = 0; round < 3; round++) {
        int go[2];
        CHECK(pipe(go) == 0);
        pid_t pid[2];
        for (int i = 0; i < 2; i++) {
            fflush(NULL);
            pid[i] = fork();
            if (pid[i] == 0) {
                run r;
                run_init(&r, 0);
                set_run(&r, 1000 * (i + 1) + round);
                cairn_ckpt *m = open_mgr(dir, NULL, 0, 0);
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) < 0) /* both start saving when the pipe closes */
                    _exit(2);
                cairn_error err;
                cairn_status st = m ? cairn_ckpt_step(m, (uint64_t)round, 0, NULL, &r.parts,
                                                      CAIRN_STEP_FORCE, NULL, &err)
                                    : CAIRN_E_IO;
                _exit(st == CAIRN_OK ? 0 : 1);
            }
        }
        close(go[0]);
        usleep(300000); /* both managers open and listed */
        close(go[1]);
        for (int i = 0; i < 2; i++) {
            int status;
            waitpid(pid[i], &status, 0);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        /* Two new checkpoints, one per writer. */
        cairn_error err;
        cairn_ckpt *m = open_mgr(dir, NULL, 0, 0);
        CHECK(m && cairn_ckpt_count(m) == 2 * ((size_t)round + 1));
        run back;
        run_init(&back, -1);
        int seen = 0;
        for (size_t k = m ? cairn_ckpt_count(m) - 2 : 0; m && k < cairn_ckpt_count(m); k++) {
            CHECK_EOK(cairn_ckpt_load(m, k, &back.parts, NULL, NULL, &err));
            seen |= back.step == 1000 + round ? 1 : back.step == 2000 + round ? 2 : 4;
        }
        CHECK(seen == 3);
        run_free(&back);
        cairn_ckpt_close(m, &err);
    }
    CHECK(remote_uploads("duel/") == 0);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The writer: saves checkpoints of step 1, 2, ... until killed. */
static void writer_child(const char *dir, int64_t first)
{
    run r;
    run_init(&r, 0);
    cairn_ckpt *m = open_mgr(dir, NULL, 0, 2);
    for (int64_t s = first;; s++) {
        cairn_error err;
        set_run(&r, s);
        if (!m || cairn_ckpt_step(m, (uint64_t)s, (uint64_t)s, NULL, &r.parts, CAIRN_STEP_FORCE,
                                  NULL, &err) != CAIRN_OK)
            _exit(3);
    }
}

/* Every checkpoint under the prefix opens and verifies, and holds the
 * step of its epoch. Returns how many there are. */
static int all_complete(const char *dir)
{
    cairn_error err;
    cairn_ckpt *m = open_mgr(dir, NULL, 0, 0);
    int n = m ? (int)cairn_ckpt_count(m) : 0;
    run back;
    run_init(&back, -1);
    for (int i = 0; m && i < n; i++) {
        cairn_ckpt_info info;
        CHECK_EOK(cairn_ckpt_info_at(m, (size_t)i, &info, &err));
        CHECK(info.valid);
        CHECK_EOK(cairn_ckpt_load(m, (size_t)i, &back.parts, NULL, NULL, &err));
        CHECK(back.step == (int64_t)info.epoch && back.w[4096] == (float)info.epoch);
    }
    run_free(&back);
    cairn_ckpt_close(m, &err);
    return n;
}

/* Writer processes SIGKILLed at random instants during their uploads: the
 * prefix holds only complete checkpoints, the next manager resumes from the
 * newest, and (since opening a prefix aborts stale uploads, and moto dates
 * every upload 2010) no multipart upload is left. */
static void test_sigkill(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "s3://%s/kill", bucket);
    uint64_t seed = (uint64_t)time(NULL);
    int trials = 30, killed_mid_upload = 0;
    int64_t next = 1;
    double t0 = mono();
    for (int t = 0; t < trials; t++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            writer_child(dir, next);
        /* 0.03 .. 0.9 s: before, during and between uploads. */
        unsigned ms = 30 + (unsigned)(tu_rand(&seed) % 870);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        killed_mid_upload += remote_uploads("kill/") > 0;
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Resume as the next run would: the newest complete checkpoint. */
        cairn_error err;
        cairn_ckpt *m = open_mgr(dir, NULL, 0, 0);
        CHECK(remote_uploads("kill/") == 0);
        run back;
        run_init(&back, -1);
        cairn_ckpt_resume_info ri;
        cairn_status st = m ? cairn_ckpt_resume(m, &back.parts, NULL, NULL, &ri, &err) : CAIRN_E_IO;
        CHECK(st == CAIRN_OK || st == CAIRN_E_NOT_FOUND);
        if (st == CAIRN_OK) {
            CHECK(ri.skipped == 0 && back.step == (int64_t)ri.next_epoch - 1);
            next = (int64_t)ri.next_epoch;
        }
        run_free(&back);
        cairn_ckpt_close(m, &err);
    }
    int n = all_complete(dir);
    fprintf(stderr, "sigkill: %d trials in %.1f s, %d killed with an upload open, %d checkpoints "
            "left, resumed at epoch %lld\n", trials, mono() - t0, killed_mid_upload, n,
            (long long)next);
    CHECK(n > 0 && (killed_mid_upload > 0 || !server_has("uploads")));
}

int main(int argc, char **argv)
{
    if (!s3_test_setup(argv[0]))
        return 77;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_manager();
    if (server_has("conditional"))
        test_two_processes();
    test_sigkill();
    curl_global_cleanup();
    TEST_MAIN_END();
}
