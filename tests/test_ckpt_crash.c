/* test_ckpt_crash.c -- crash injection for the checkpoint manager.
 *
 * 1. Random kills: a child saves checkpoints in a loop (retention on) and is
 *    SIGKILLed at a random instant; CAIRN_CKPT_TRIALS trials (default 200;
 *    10,000 for the long mode).
 * 2. Kills at each syscall of the commit protocol: this program is linked
 *    with -Wl,--wrap for write, fsync, rename, renameat2 and linkat (the
 *    no-replace commits) and unlink, so the library's
 *    calls go through counters here; the child kills itself right before the
 *    k-th such call, for every k of a save-with-retention cycle.
 *
 * After every kill: the manager opens the directory; the newest valid
 * checkpoint loads and verifies and holds a consistent state; nothing
 * half-written is taken for a checkpoint; once a checkpoint was committed,
 * there is always a valid one (retention never removed the last). */
#include "testutil.h"

#include <cairn.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

/* ------------------------------------------------- syscall kill switch */

static long kill_at = -1; /* kill right before this call number; -1 = never */
static long calls;

ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_fsync(int fd);
int __real_rename(const char *a, const char *b);
int __real_renameat2(int da, const char *a, int db, const char *b, unsigned flags);
int __real_linkat(int da, const char *a, int db, const char *b, int flags);
int __real_unlink(const char *p);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
int __wrap_fsync(int fd);
int __wrap_rename(const char *a, const char *b);
int __wrap_renameat2(int da, const char *a, int db, const char *b, unsigned flags);
int __wrap_linkat(int da, const char *a, int db, const char *b, int flags);
int __wrap_unlink(const char *p);

static void count_call(void)
{
    if (kill_at >= 0 && calls++ == kill_at)
        kill(getpid(), SIGKILL);
}
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    count_call();
    return __real_write(fd, buf, n);
}
int __wrap_fsync(int fd)
{
    count_call();
    return __real_fsync(fd);
}
int __wrap_rename(const char *a, const char *b)
{
    count_call();
    return __real_rename(a, b);
}
int __wrap_renameat2(int da, const char *a, int db, const char *b, unsigned flags)
{
    count_call();
    return __real_renameat2(da, a, db, b, flags);
}
int __wrap_linkat(int da, const char *a, int db, const char *b, int flags)
{
    count_call();
    return __real_linkat(da, a, db, b, flags);
}
int __wrap_unlink(const char *p)
{
    count_call();
    return __real_unlink(p);
}

/* ---------------------------------------------------------- the model */

enum { N = 16384 }; /* 64 KiB of weights */

typedef struct model {
    float w[N];
    int64_t epoch; /* every weight equals the epoch: a torn state shows */
} model;

static cairn_ckpt *open_mgr(const char *dir, cairn_error *err)
{
    /* each child resumes the run of the one before: retention covers its
     * checkpoints too */
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir, .monitor = "loss",
                         .keep_best = 1, .keep_last = 2, .flags = CAIRN_CKPT_PRUNE_EARLIER};
    cairn_ckpt *m = NULL;
    return cairn_ckpt_open(&o, &m, err) == CAIRN_OK ? m : NULL;
}

/* The child: resume if possible, then save epochs forever. */
static void child_loop(const char *dir, uint64_t seed)
{
    static model mdl;
    cairn_error err;
    cairn_ckpt *m = open_mgr(dir, &err);
    if (!m)
        _exit(3);
    cairn_params *p = cairn_params_new();
    uint64_t d = N;
    cairn_params_add(p, "w", CAIRN_F32, 1, &d, mdl.w, &err);
    cairn_params_add(p, "epoch", CAIRN_I64, 0, NULL, &mdl.epoch, &err);
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = "crash", .params = p};
    cairn_ckpt_resume_info ri;
    uint64_t epoch = cairn_ckpt_resume(m, &parts, NULL, NULL, &ri, &err) == CAIRN_OK ? ri.next_epoch : 1;
    for (;; epoch++) {
        for (int i = 0; i < N; i++)
            mdl.w[i] = (float)epoch;
        mdl.epoch = (int64_t)epoch;
        cairn_value *mt = cairn_value_map();
        cairn_value_set(mt, "loss", cairn_value_float((double)(tu_rand(&seed) % 1000)), &err);
        cairn_status st = cairn_ckpt_step(m, epoch, epoch, mt, &parts, CAIRN_STEP_FORCE, NULL, &err);
        cairn_value_free(mt);
        if (st != CAIRN_OK)
            _exit(4);
    }
}

/* Checks the directory after a kill. Returns the number of valid
 * checkpoints, or -1 when something is wrong. */
static int check_dir(const char *dir, int committed_before)
{
    cairn_error err;
    cairn_ckpt *m = open_mgr(dir, &err);
    if (!m) {
        fprintf(stderr, "manager cannot open %s: %s\n", dir, err.message);
        return -1;
    }
    int valid = 0;
    for (size_t i = 0; i < cairn_ckpt_count(m); i++) {
        cairn_ckpt_info info;
        cairn_ckpt_info_at(m, i, &info, &err);
        valid += info.valid;
    }
    static model mdl;
    cairn_params *p = cairn_params_new();
    uint64_t d = N;
    cairn_params_add(p, "w", CAIRN_F32, 1, &d, mdl.w, &err);
    cairn_params_add(p, "epoch", CAIRN_I64, 0, NULL, &mdl.epoch, &err);
    cairn_model_parts parts = {.struct_size = sizeof parts, .kind = "crash", .params = p};
    cairn_ckpt_resume_info ri;
    cairn_load_opts lo = {.struct_size = sizeof lo, .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
    cairn_status st = cairn_ckpt_resume(m, &parts, &lo, NULL, &ri, &err);
    int bad = 0;
    if (st == CAIRN_OK) {
        for (int i = 0; i < N; i++)
            bad |= mdl.w[i] != (float)mdl.epoch;
        bad |= ri.next_epoch != (uint64_t)mdl.epoch + 1;
        bad |= ri.skipped != 0; /* a kill never damages a committed checkpoint */
        if (bad)
            fprintf(stderr, "torn or skipped state: %s\n", ri.why);
    } else if (committed_before || st != CAIRN_E_NOT_FOUND) {
        fprintf(stderr, "resume failed: %s\n", err.message);
        bad = 1;
    }
    cairn_params_free(p);
    cairn_ckpt_close(m, &err);
    /* no temporary file may survive a manager open */
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        if (strstr(e->d_name, ".cairn-tmp-")) {
            fprintf(stderr, "leftover %s survived open\n", e->d_name);
            bad = 1;
        }
    if (dp)
        closedir(dp);
    return bad ? -1 : valid;
}

static void random_kills(const char *dir, long trials)
{
    uint64_t rng = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    int committed = 0, failures = 0, killed_mid = 0;
    for (long t = 0; t < trials; t++) {
        pid_t pid = fork();
        if (pid == 0)
            child_loop(dir, rng + (uint64_t)t);
        usleep((useconds_t)(tu_rand(&rng) % 20000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            fprintf(stderr, "child exited with %d before the kill\n", WEXITSTATUS(status));
            failures++;
            continue;
        }
        int valid = check_dir(dir, committed);
        if (valid < 0)
            failures++;
        if (valid > 0)
            committed = 1;
        killed_mid += valid >= 0;
    }
    fprintf(stderr, "random kills: %ld trials, %d failures\n", trials, failures);
    CHECK(failures == 0);
    CHECK(committed);
}

/* Kills before each write/fsync/rename/renameat2/linkat/unlink of one save
 * cycle. */
static void syscall_kills(const char *dir)
{
    /* Each child starts from the state the previous kill left and dies right
     * before its k-th counted call, so k = 0..399 walks the kill point
     * through several complete save-and-retain cycles. */
    int failures = 0;
    long k;
    for (k = 0; k < 400; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            calls = 0;
            kill_at = k;
            child_loop(dir, (uint64_t)k);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "child for k=%ld was not killed (status %d)\n", k, status);
            failures++;
            break;
        }
        if (check_dir(dir, 1) < 0) {
            fprintf(stderr, "after a kill at syscall %ld\n", k);
            failures++;
        }
    }
    fprintf(stderr, "syscall kills: %ld points, %d failures\n", k, failures);
    CHECK(failures == 0);
}

int main(void)
{
    const char *tmp = tu_tmpdir("test_ckpt_crash");
    char dir[4300];
    long trials = getenv("CAIRN_CKPT_TRIALS") ? atol(getenv("CAIRN_CKPT_TRIALS")) : 200;
    snprintf(dir, sizeof dir, "%s/random", tmp);
    random_kills(dir, trials);
    snprintf(dir, sizeof dir, "%s/syscalls", tmp);
    /* start from a directory with two committed checkpoints */
    pid_t pid = fork();
    if (pid == 0) {
        kill_at = 60;
        child_loop(dir, 1);
    }
    waitpid(pid, NULL, 0);
    syscall_kills(dir);
    TEST_MAIN_END();
}
