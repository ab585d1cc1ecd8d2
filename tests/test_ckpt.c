/* test_ckpt.c -- the checkpoint manager: monitored saves, composable
 * retention (also after a restart), resume with the epoch count going on,
 * fallback past a corrupt newest checkpoint, leftover cleanup, async saves
 * (buffers reusable at once, background errors surface, the writer's low
 * priority), signals, a full disk. */
#include "testutil.h"

#include "ckpt/ckpt_internal.h"

#include <cairn.h>
#include <linux/ioprio.h>
#include <sched.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sys/mount.h>

static char base[4096];

typedef struct net {
    float w[64];
    int64_t step;
} net;

typedef struct run {
    net n;
    cairn_params *p;
    cairn_model_parts parts;
} run;

static void run_init(run *r, float v)
{
    for (int i = 0; i < 64; i++)
        r->n.w[i] = v;
    r->n.step = 0;
    r->p = cairn_params_new();
    cairn_error err;
    uint64_t d = 64;
    CHECK_OK(cairn_params_add(r->p, "w", CAIRN_F32, 1, &d, r->n.w, &err));
    CHECK_OK(cairn_params_add(r->p, "step", CAIRN_I64, 0, NULL, &r->n.step, &err));
    r->parts = (cairn_model_parts){.struct_size = sizeof r->parts, .kind = "toy",
                                   .params = r->p};
}

static cairn_value *metrics(double loss)
{
    cairn_error err;
    cairn_value *m = cairn_value_map();
    cairn_value_set(m, "valid_loss", cairn_value_float(loss), &err);
    return m;
}

static char *dir_named(const char *name)
{
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", base, name);
    return buf[k];
}

static cairn_ckpt *open_mgr(const char *dir, const char *monitor, unsigned flags, uint32_t best,
                            uint32_t last, uint32_t every)
{
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir, .monitor = monitor,
                         .flags = flags | CAIRN_CKPT_NO_SYNC, .keep_best = best,
                         .keep_last = last, .keep_every = every};
    cairn_ckpt *m = NULL;
    cairn_error err;
    CHECK_OK(cairn_ckpt_open(&o, &m, &err));
    if (!m)
        fprintf(stderr, "open: %s\n", err.message);
    return m;
}

/* Epochs of the checkpoints the manager lists, as "1,2,4". */
static const char *epochs_of(const cairn_ckpt *m)
{
    static char buf[256];
    buf[0] = '\0';
    for (size_t i = 0; i < cairn_ckpt_count(m); i++) {
        cairn_ckpt_info info;
        cairn_error err;
        cairn_ckpt_info_at(m, i, &info, &err);
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%llu%s", i ? "," : "",
                 (unsigned long long)info.epoch, info.valid ? "" : "!");
    }
    return buf;
}

static void test_monitor_and_retention(void)
{
    const char *dir = dir_named("monitor");
    cairn_ckpt *m = open_mgr(dir, "valid_loss", 0, 2, 0, 0);
    run r;
    run_init(&r, 0);
    const double losses[6] = {1.0, 0.8, 0.9, 0.7, 0.75, 0.6};
    const int want_saved[6] = {1, 1, 0, 1, 0, 1};
    cairn_error err;
    for (int e = 1; e <= 5; e++) {
        cairn_value *mt = metrics(losses[e - 1]);
        int saved;
        r.n.w[0] = (float)e;
        CHECK_OK(cairn_ckpt_step(m, (uint64_t)e, (uint64_t)e * 10, mt, &r.parts, 0, &saved, &err));
        CHECK(saved == want_saved[e - 1]);
        cairn_value_free(mt);
    }
    /* keep_best 2: epoch 1 (1.0) went when epoch 4 (0.7) came */
    CHECK(strcmp(epochs_of(m), "2,4") == 0);
    size_t best, latest;
    CHECK_OK(cairn_ckpt_best(m, &best, &err));
    CHECK_OK(cairn_ckpt_latest(m, &latest, &err));
    cairn_ckpt_info info;
    CHECK_OK(cairn_ckpt_info_at(m, best, &info, &err));
    CHECK(info.epoch == 4 && info.has_metric && info.metric == 0.7 && info.valid);
    CHECK(strcmp(info.reasons, "improved") == 0);
    CHECK_OK(cairn_ckpt_close(m, &err));

    /* a restarted manager rebuilds everything from the directory: 0.75 is
     * still no improvement over 0.7, and 0.6 is; it resumes the run, so its
     * retention covers the checkpoints it found */
    m = open_mgr(dir, "valid_loss", CAIRN_CKPT_PRUNE_EARLIER, 2, 0, 0);
    CHECK(strcmp(epochs_of(m), "2,4") == 0);
    cairn_value *mt = metrics(0.75);
    int saved;
    CHECK_OK(cairn_ckpt_step(m, 5, 50, mt, &r.parts, 0, &saved, &err));
    CHECK(saved == CAIRN_SAVED_NO);
    cairn_value_free(mt);
    mt = metrics(0.6);
    CHECK_OK(cairn_ckpt_step(m, 6, 60, mt, &r.parts, 0, &saved, &err));
    CHECK(saved == CAIRN_SAVED_YES);
    cairn_value_free(mt);
    CHECK(strcmp(epochs_of(m), "4,6") == 0);
    /* a missing metric is the caller's error, not a silent skip */
    cairn_value *empty = cairn_value_map();
    CHECK_ST(cairn_ckpt_step(m, 7, 70, empty, &r.parts, 0, &saved, &err), CAIRN_E_ARG);
    CHECK(strstr(err.message, "valid_loss") != NULL);
    cairn_value_free(empty);
    CHECK_OK(cairn_ckpt_close(m, &err));

    /* an invalid checkpoint (its record disagrees with its name) with a
     * much better metric must not stop real improvements from saving */
    const char *other = dir_named("monitor-other");
    m = open_mgr(other, "valid_loss", 0, 0, 0, 0);
    mt = metrics(0.01);
    CHECK_OK(cairn_ckpt_step(m, 1, 1, mt, &r.parts, 0, &saved, &err));
    cairn_value_free(mt);
    CHECK_OK(cairn_ckpt_close(m, &err));
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s/ckpt-00000001.cairn' '%s/ckpt-00000099.cairn'", other, dir);
    CHECK(system(cmd) == 0);
    m = open_mgr(dir, "valid_loss", CAIRN_CKPT_PRUNE_EARLIER, 2, 0, 0);
    CHECK(strcmp(epochs_of(m), "4,6,1!") == 0); /* readable, but seq 1 != 99 */
    mt = metrics(0.5);
    CHECK_OK(cairn_ckpt_step(m, 7, 70, mt, &r.parts, 0, &saved, &err));
    CHECK(saved == CAIRN_SAVED_YES); /* 0.5 beats 0.6, the best valid one */
    cairn_value_free(mt);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(r.p);
}

static void test_composed_policies(void)
{
    const char *dir = dir_named("composed");
    /* every epoch saves (no monitor, no trigger); keep last 2 and every 5th */
    cairn_ckpt *m = open_mgr(dir, NULL, 0, 0, 2, 5);
    run r;
    run_init(&r, 1);
    cairn_error err;
    for (int e = 1; e <= 12; e++)
        CHECK_OK(cairn_ckpt_step(m, (uint64_t)e, (uint64_t)e, NULL, &r.parts, 0, NULL, &err));
    CHECK(strcmp(epochs_of(m), "5,10,11,12") == 0);
    /* prune by hand, dry run first */
    size_t removed;
    CHECK_OK(cairn_ckpt_prune(m, 0, 1, 0, 1, &removed, &err));
    CHECK(removed == 3 && strcmp(epochs_of(m), "5,10,11,12") == 0);
    CHECK_OK(cairn_ckpt_prune(m, 0, 1, 0, 0, &removed, &err));
    CHECK(removed == 3 && strcmp(epochs_of(m), "12") == 0);
    CHECK_OK(cairn_ckpt_close(m, &err));

    /* every_epochs as the only trigger, with train-end forcing */
    m = open_mgr(dir_named("every3"), NULL, 0, 0, 0, 0);
    cairn_ckpt_close(m, &err);
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir_named("every3"),
                         .flags = CAIRN_CKPT_NO_SYNC, .every_epochs = 3};
    CHECK_OK(cairn_ckpt_open(&o, &m, &err));
    for (int e = 1; e <= 7; e++)
        CHECK_OK(cairn_ckpt_step(m, (uint64_t)e, 0, NULL, &r.parts, e == 7 ? CAIRN_STEP_FORCE : 0,
                                 NULL, &err));
    CHECK(strcmp(epochs_of(m), "3,6,7") == 0);
    cairn_ckpt_info info;
    CHECK_OK(cairn_ckpt_info_at(m, 2, &info, &err));
    CHECK(strcmp(info.reasons, "forced") == 0);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(r.p);
}

static void flip_byte(const char *path, long offset)
{
    FILE *fp = fopen(path, "r+b");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fseek(fp, offset, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, offset, SEEK_SET);
    fputc(c ^ 0x40, fp);
    fclose(fp);
}

static void test_resume_and_fallback(void)
{
    const char *dir = dir_named("resume");
    cairn_ckpt *m = open_mgr(dir, NULL, 0, 0, 0, 0);
    run r;
    run_init(&r, 0);
    cairn_error err;
    for (int e = 1; e <= 3; e++) {
        for (int i = 0; i < 64; i++)
            r.n.w[i] = (float)(e * 100 + i);
        r.n.step = e * 1000;
        CHECK_OK(cairn_ckpt_step(m, (uint64_t)e, (uint64_t)e * 1000, NULL, &r.parts, 0, NULL, &err));
    }
    cairn_ckpt_info newest;
    CHECK_OK(cairn_ckpt_info_at(m, 2, &newest, &err));
    char newest_path[4300];
    snprintf(newest_path, sizeof newest_path, "%s", newest.path);
    CHECK_OK(cairn_ckpt_close(m, &err));

    /* a fresh process resumes: the count goes on at epoch 4 */
    run back;
    run_init(&back, -1);
    m = open_mgr(dir, NULL, 0, 0, 0, 0);
    cairn_ckpt_resume_info ri;
    cairn_value *meta;
    cairn_load_opts lo = {.struct_size = sizeof lo, .flags = CAIRN_LOAD_STRICT};
    CHECK_OK(cairn_ckpt_resume(m, &back.parts, &lo, &meta, &ri, &err));
    CHECK(ri.next_epoch == 4 && ri.skipped == 0 && back.n.step == 3000 && back.n.w[5] == 305);
    CHECK(cairn_value_get(meta, "checkpoint") != NULL);
    cairn_value_free(meta);
    CHECK_OK(cairn_ckpt_close(m, &err));

    /* flip one payload byte of the newest: resume falls back to epoch 2 and says why */
    flip_byte(newest_path, 64 + 7);
    m = open_mgr(dir, NULL, 0, 0, 0, 0);
    CHECK_OK(cairn_ckpt_resume(m, &back.parts, &lo, NULL, &ri, &err));
    CHECK(ri.next_epoch == 3 && ri.skipped == 1 && back.n.step == 2000);
    CHECK(strstr(ri.why, "ckpt-00000003.cairn") && strstr(ri.why, "checksum"));
    /* a model that does not match is an error, not a reason to fall back */
    run other;
    run_init(&other, 0);
    cairn_model_parts wrong = other.parts;
    wrong.kind = "resnet";
    CHECK_ST(cairn_ckpt_resume(m, &wrong, &lo, NULL, &ri, &err), CAIRN_E_MISMATCH);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(other.p);

    /* truncated newest + a leftover temp file: listed invalid / removed */
    const char *dir2 = dir_named("leftovers");
    m = open_mgr(dir2, NULL, 0, 0, 0, 0);
    CHECK_OK(cairn_ckpt_step(m, 1, 1, NULL, &r.parts, 0, NULL, &err));
    CHECK_OK(cairn_ckpt_step(m, 2, 2, NULL, &r.parts, 0, NULL, &err));
    CHECK_OK(cairn_ckpt_close(m, &err));
    char p[4400];
    snprintf(p, sizeof p, "%s/ckpt-00000002.cairn", dir2);
    CHECK(truncate(p, 300) == 0);
    snprintf(p, sizeof p, "%s/.ckpt-00000003.cairn.cairn-tmp-0123456789abcdef", dir2);
    FILE *fp = fopen(p, "w");
    fputs("half a checkpoint", fp);
    fclose(fp);
    m = open_mgr(dir2, NULL, CAIRN_CKPT_PRUNE_EARLIER, 0, 1, 0);
    CHECK(access(p, F_OK) != 0);
    CHECK(strcmp(epochs_of(m), "1,0!") == 0); /* its epoch is unknown: unreadable */
    size_t latest;
    CHECK_OK(cairn_ckpt_latest(m, &latest, &err));
    CHECK(latest == 0);
    CHECK_OK(cairn_ckpt_resume(m, &back.parts, &lo, NULL, &ri, &err));
    CHECK(ri.next_epoch == 2 && ri.skipped == 1);
    /* the next save gets a fresh sequence number; retention (keep last 1)
     * removes epoch 1 but never the invalid file */
    CHECK_OK(cairn_ckpt_step(m, 2, 2, NULL, &r.parts, 0, NULL, &err));
    CHECK(strcmp(epochs_of(m), "0!,2") == 0);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(r.p);
    cairn_params_free(back.p);
}

static void test_async(void)
{
    const char *dir = dir_named("async");
    cairn_ckpt *m = open_mgr(dir, NULL, CAIRN_CKPT_ASYNC, 0, 0, 0);
    run r;
    run_init(&r, 0);
    cairn_error err;
    for (int e = 1; e <= 5; e++) {
        for (int i = 0; i < 64; i++)
            r.n.w[i] = (float)e;
        CHECK_OK(cairn_ckpt_step(m, (uint64_t)e, 0, NULL, &r.parts, 0, NULL, &err));
        /* the caller may reuse its buffers as soon as step returns */
        for (int i = 0; i < 64; i++)
            r.n.w[i] = -999;
    }
    CHECK_OK(cairn_ckpt_wait(m, &err));
    CHECK(cairn_ckpt_count(m) == 5);
    for (size_t k = 0; k < 5; k++) {
        run back;
        run_init(&back, 0);
        CHECK_OK(cairn_ckpt_load(m, k, &back.parts, NULL, NULL, &err));
        CHECK(back.n.w[0] == (float)(k + 1) && back.n.w[63] == (float)(k + 1));
        cairn_params_free(back.p);
    }
    /* a background failure surfaces: the directory disappears under us */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(cairn_ckpt_step(m, 6, 0, NULL, &r.parts, 0, NULL, &err)); /* copied, queued */
    int saved;
    cairn_status st = cairn_ckpt_step(m, 7, 0, NULL, &r.parts, 0, &saved, &err);
    CHECK(st == CAIRN_E_IO && saved == CAIRN_SAVED_NO);
    CHECK(strstr(err.message, "ckpt-00000006") != NULL);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(r.p);
}

static void test_signal(void)
{
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir_named("signal"),
                         .monitor = "valid_loss", .flags = CAIRN_CKPT_NO_SYNC | CAIRN_CKPT_SIGNALS};
    cairn_ckpt *m;
    cairn_error err;
    CHECK_OK(cairn_ckpt_open(&o, &m, &err));
    run r;
    run_init(&r, 0);
    cairn_value *mt = metrics(1.0);
    int saved;
    CHECK_OK(cairn_ckpt_step(m, 1, 1, mt, &r.parts, 0, &saved, &err));
    CHECK(saved == CAIRN_SAVED_YES);
    CHECK_OK(cairn_ckpt_step(m, 2, 2, mt, &r.parts, 0, &saved, &err)); /* no improvement */
    CHECK(saved == CAIRN_SAVED_NO);
    raise(SIGTERM); /* handled: the process goes on */
    CHECK_OK(cairn_ckpt_step(m, 3, 3, mt, &r.parts, 0, &saved, &err));
    CHECK(saved == CAIRN_SAVED_SIGNAL);
    CHECK_OK(cairn_ckpt_step(m, 4, 4, mt, &r.parts, 0, &saved, &err));
    CHECK(saved == CAIRN_SAVED_NO);
    cairn_value_free(mt);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(r.p);
}

static void test_disk_full(void)
{
    char mnt[4300];
    snprintf(mnt, sizeof mnt, "%s/tmpfs", base);
    mkdir(mnt, 0777);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=512k") != 0) {
        fprintf(stderr, "disk-full test skipped: cannot mount a tmpfs (%s); run as root\n",
                strerror(errno));
        return;
    }
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = mnt, .keep_last = 1};
    cairn_ckpt *m;
    cairn_error err;
    CHECK_OK(cairn_ckpt_open(&o, &m, &err));
    run small, big;
    run_init(&small, 3);
    float *huge = calloc(200000, sizeof(float));
    cairn_params *hp = cairn_params_new();
    uint64_t d = 200000;
    CHECK_OK(cairn_params_add(hp, "w", CAIRN_F32, 1, &d, huge, &err));
    big.parts = (cairn_model_parts){.struct_size = sizeof big.parts, .kind = "toy", .params = hp};
    CHECK_OK(cairn_ckpt_step(m, 1, 1, NULL, &small.parts, 0, NULL, &err));
    CHECK_ST(cairn_ckpt_step(m, 2, 2, NULL, &big.parts, 0, NULL, &err), CAIRN_E_IO);
    CHECK(strstr(err.message, "space") != NULL);
    CHECK(strcmp(epochs_of(m), "1") == 0);
    CHECK_OK(cairn_ckpt_close(m, &err));
    m = open_mgr(mnt, NULL, 0, 0, 0, 0);
    run back;
    run_init(&back, 0);
    cairn_ckpt_resume_info ri;
    CHECK_OK(cairn_ckpt_resume(m, &back.parts, NULL, NULL, &ri, &err));
    CHECK(ri.next_epoch == 2 && back.n.w[0] == 3);
    CHECK(cairn_ckpt_count(m) == 1); /* no leftover from the failed save */
    CHECK_OK(cairn_ckpt_close(m, &err));
    umount2(mnt, MNT_DETACH);
    free(huge);
    cairn_params_free(hp);
    cairn_params_free(small.p);
    cairn_params_free(back.p);
}

/* Once a save is handed over, the background writer yields: SCHED_IDLE (or
 * SCHED_BATCH where idle is a one-way door) and the lowest best-effort I/O
 * priority; a caller waiting for a save gives it back its priorities. */
static void test_writer_priority(void)
{
    cairn_ckpt *m = open_mgr(dir_named("priority"), NULL, CAIRN_CKPT_ASYNC, 0, 0, 0);
    run r;
    run_init(&r, 1);
    cairn_error err;
    pid_t tid = m->writer_tid;
    int before = sched_getscheduler(tid);
    CHECK(tid > 0 && before != SCHED_IDLE && before != SCHED_BATCH);
    CHECK_OK(cairn_ckpt_step(m, 1, 0, NULL, &r.parts, 0, NULL, &err));
    /* it lowers itself when it takes the job, and stays low while idle */
    int policy = before;
    for (int i = 0; i < 500 && policy == before; i++) {
        usleep(10000);
        policy = sched_getscheduler(tid);
    }
    CHECK(policy == m->low_policy && (policy == SCHED_IDLE || policy == SCHED_BATCH));
    long io = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, (int)tid);
    CHECK(io == IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, IOPRIO_NR_LEVELS - 1));
    CHECK_OK(cairn_ckpt_wait(m, &err));
    CHECK(cairn_ckpt_count(m) == 1);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(r.p);
}

int main(void)
{
    snprintf(base, sizeof base, "%s", tu_tmpdir("test_ckpt"));
    test_monitor_and_retention();
    test_composed_policies();
    test_resume_and_fallback();
    test_async();
    test_writer_priority();
    test_signal();
    test_disk_full();
    TEST_MAIN_END();
}
