/* test_ckpt_lock.c -- one writer per checkpoint series, and no checkpoint
 * is ever replaced (docs/CHECKPOINTS.md, "Two runs, one directory").
 *
 * 1. Two processes on one directory: the second writer is refused
 *    (CAIRN_E_BUSY, naming the directory and the holder's PID) while the
 *    first lives; a reader is not; after the first is SIGKILLed the second
 *    proceeds.
 * 2. A lock file left behind (by a killed process, or naming a live PID)
 *    never blocks.
 * 3. Locking disabled (test_no_lock): two writers, in turn and at the same
 *    time in two processes, never replace each other's files, and neither's
 *    retention removes the other's checkpoints.
 * 4. Readers during a write see only complete checkpoints, and never
 *    disturb the writer.
 * 5. Retention keeps what an earlier run left unless told otherwise;
 *    CAIRN_WRITE_NO_REPLACE underneath; read-only managers; old struct_size. */
#include "testutil.h"

#include <cairn.h>
#include <dirent.h>
#include <signal.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

enum { N = 4096 };

typedef struct toy {
    float w[N];
    int64_t writer; /* who saved it: every weight equals writer * 1000 + epoch */
    cairn_params *p;
    cairn_model_parts parts;
} toy;

static void toy_init(toy *t)
{
    cairn_error err;
    memset(t->w, 0, sizeof t->w);
    t->writer = 0;
    t->p = cairn_params_new();
    uint64_t d = N;
    CHECK_OK(cairn_params_add(t->p, "w", CAIRN_F32, 1, &d, t->w, &err));
    CHECK_OK(cairn_params_add(t->p, "writer", CAIRN_I64, 0, NULL, &t->writer, &err));
    t->parts = (cairn_model_parts){.struct_size = sizeof t->parts, .kind = "toy", .params = t->p};
}

static void toy_set(toy *t, int64_t writer, uint64_t epoch)
{
    t->writer = writer;
    for (int i = 0; i < N; i++)
        t->w[i] = (float)(writer * 1000 + (int64_t)epoch);
}

static char *dir_named(const char *name)
{
    static char bufs[8][4200];
    static int k;
    char *d = bufs[k++ % 8];
    snprintf(d, 4200, "%s/%s", tu_tmpdir("test_ckpt_lock"), name);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    CHECK(system(cmd) == 0);
    return d;
}

static cairn_status open_mgr(const char *dir, unsigned flags, uint32_t keep_last, int no_lock,
                             cairn_ckpt **m, cairn_error *err)
{
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir,
                         .flags = flags | CAIRN_CKPT_NO_SYNC, .keep_last = keep_last,
                         .test_no_lock = no_lock};
    return cairn_ckpt_open(&o, m, err);
}

/* Loads checkpoint i and checks it is whole: returns its writer, or -1. */
static int64_t whole_writer(cairn_ckpt *m, size_t i, toy *t)
{
    cairn_error err;
    cairn_ckpt_info info;
    cairn_load_opts lo = {.struct_size = sizeof lo, .flags = CAIRN_LOAD_STRICT | CAIRN_LOAD_VERIFY};
    if (cairn_ckpt_info_at(m, i, &info, &err) != CAIRN_OK || !info.valid ||
        cairn_ckpt_load(m, i, &t->parts, &lo, NULL, &err) != CAIRN_OK) {
        fprintf(stderr, "checkpoint %zu: %s\n", i, err.message);
        return -1;
    }
    float want = (float)(t->writer * 1000 + (int64_t)info.epoch);
    for (int k = 0; k < N; k++)
        if (t->w[k] != want) {
            fprintf(stderr, "%s: weight %d is %g, not %g\n", info.path, k, t->w[k], want);
            return -1;
        }
    return t->writer;
}

/* A child that opens `dir` for writing, reports the outcome through `fd`
 * ('L' locked, 'B' busy), then saves `saves` checkpoints (forever if 0) and
 * exits 0. */
static void writer_child(const char *dir, int fd, int writer, int saves, uint32_t keep_last,
                         int no_lock)
{
    toy t;
    toy_init(&t);
    cairn_ckpt *m;
    cairn_error err;
    cairn_status st = open_mgr(dir, 0, keep_last, no_lock, &m, &err);
    char c = st == CAIRN_OK ? 'L' : st == CAIRN_E_BUSY ? 'B' : 'E';
    if (write(fd, &c, 1) != 1 || st != CAIRN_OK)
        _exit(st == CAIRN_E_BUSY ? 5 : 3);
    for (uint64_t e = 1; !saves || e <= (uint64_t)saves; e++) {
        toy_set(&t, writer, e);
        if (cairn_ckpt_step(m, e, e, NULL, &t.parts, 0, NULL, &err) != CAIRN_OK) {
            fprintf(stderr, "writer %d: %s\n", writer, err.message);
            _exit(4);
        }
    }
    _exit(cairn_ckpt_close(m, &err) == CAIRN_OK ? 0 : 6);
}

static pid_t spawn_writer(const char *dir, int writer, int saves, uint32_t keep_last, int no_lock,
                          char *outcome)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        writer_child(dir, p[1], writer, saves, keep_last, no_lock);
    }
    close(p[1]);
    if (read(p[0], outcome, 1) != 1)
        *outcome = '?';
    close(p[0]);
    return pid;
}

static void test_second_writer_refused(void)
{
    const char *dir = dir_named("two");
    char outcome;
    pid_t first = spawn_writer(dir, 1, 0, 3, 0, &outcome);
    CHECK(outcome == 'L');
    /* a second writer process is refused while the first lives */
    char outcome2;
    pid_t second = spawn_writer(dir, 2, 1, 0, 0, &outcome2);
    int status;
    waitpid(second, &status, 0);
    CHECK(outcome2 == 'B' && WIFEXITED(status) && WEXITSTATUS(status) == 5);
    /* so is a second manager in this process, with a message naming the
     * directory and the holder */
    cairn_ckpt *m = NULL;
    cairn_error err;
    CHECK_ST(open_mgr(dir, 0, 0, 0, &m, &err), CAIRN_E_BUSY);
    CHECK(m == NULL);
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "process %d", (int)first);
    CHECK(strstr(err.message, dir) != NULL && strstr(err.message, pid_text) != NULL);
    if (!strstr(err.message, pid_text))
        fprintf(stderr, "message: %s\n", err.message);
    /* a reader is never blocked */
    CHECK_OK(open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err));
    toy t;
    toy_init(&t);
    CHECK_ST(cairn_ckpt_step(m, 1, 1, NULL, &t.parts, 0, NULL, &err), CAIRN_E_STATE);
    CHECK_OK(cairn_ckpt_close(m, &err));
    /* the kernel drops the lock of a killed writer (killed once it has
     * committed a checkpoint, however slow the machine) */
    for (int i = 0, n = 0; i < 3000 && n == 0; i++) {
        CHECK_OK(open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err));
        n = (int)cairn_ckpt_count(m);
        CHECK_OK(cairn_ckpt_close(m, &err));
        if (n == 0)
            usleep(10000);
    }
    kill(first, SIGKILL);
    waitpid(first, &status, 0);
    CHECK(WIFSIGNALED(status));
    pid_t third = spawn_writer(dir, 3, 2, 0, 0, &outcome);
    waitpid(third, &status, 0);
    CHECK(outcome == 'L' && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* it went on after the killed writer's checkpoints and left them alone */
    CHECK_OK(open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err));
    size_t n = cairn_ckpt_count(m);
    CHECK(n >= 3);
    CHECK(whole_writer(m, n - 1, &t) == 3 && whole_writer(m, n - 2, &t) == 3);
    CHECK(whole_writer(m, 0, &t) == 1);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(t.p);
}

static void test_stale_lock_file(void)
{
    const char *dir = dir_named("stale");
    CHECK(mkdir(dir, 0777) == 0);
    char lock[4400];
    snprintf(lock, sizeof lock, "%s/.ckpt.cairn-lock", dir);
    /* it names a live process (pid 1) that holds no lock */
    CHECK(tu_write_file(lock, "pid 1\n", 6) == 0);
    cairn_ckpt *m;
    cairn_error err;
    CHECK_OK(open_mgr(dir, 0, 0, 0, &m, &err));
    char buf[64] = {0}, want[64];
    FILE *fp = fopen(lock, "r");
    CHECK(fp && fread(buf, 1, sizeof buf - 1, fp) > 0);
    if (fp)
        fclose(fp);
    snprintf(want, sizeof want, "pid %d\n", (int)getpid());
    CHECK(strcmp(buf, want) == 0);
    CHECK_OK(cairn_ckpt_close(m, &err));
    /* closed: unlocked, and another prefix is another series */
    CHECK_OK(open_mgr(dir, 0, 0, 0, &m, &err));
    cairn_ckpt_opts o = {.struct_size = sizeof o, .dirname = dir, .fn_prefix = "end_"};
    cairn_ckpt *m2;
    CHECK_OK(cairn_ckpt_open(&o, &m2, &err));
    CHECK_OK(cairn_ckpt_close(m2, &err));
    CHECK_OK(cairn_ckpt_close(m, &err));
    /* a writer killed while holding the lock leaves the file, not the lock */
    char outcome;
    pid_t pid = spawn_writer(dir, 1, 0, 0, 0, &outcome);
    CHECK(outcome == 'L');
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(access(lock, F_OK) == 0);
    CHECK_OK(open_mgr(dir, 0, 0, 0, &m, &err));
    CHECK_OK(cairn_ckpt_close(m, &err));
}

/* Sequence numbers of the checkpoint files in dir, counted per writer. */
static void count_writers(const char *dir, int *per_writer, int max_writer, int *bad)
{
    cairn_ckpt *m;
    cairn_error err;
    toy t;
    toy_init(&t);
    CHECK_OK(open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err));
    for (size_t i = 0; m && i < cairn_ckpt_count(m); i++) {
        int64_t w = whole_writer(m, i, &t);
        if (w >= 1 && w <= max_writer)
            per_writer[w]++;
        else
            (*bad)++;
    }
    cairn_ckpt_close(m, &err);
    cairn_params_free(t.p);
}

static void test_no_lock_never_replaces(void)
{
    /* in turn: both start at seq 1; the second to commit takes the next */
    const char *dir = dir_named("nolock");
    cairn_ckpt *a, *b;
    cairn_error err;
    CHECK_OK(open_mgr(dir, 0, 0, 1, &a, &err));
    CHECK_OK(open_mgr(dir, CAIRN_CKPT_ASYNC, 0, 1, &b, &err));
    toy ta, tb;
    toy_init(&ta);
    toy_init(&tb);
    for (uint64_t e = 1; e <= 3; e++) {
        toy_set(&ta, 1, e);
        toy_set(&tb, 2, e);
        CHECK_OK(cairn_ckpt_step(a, e, e, NULL, &ta.parts, 0, NULL, &err));
        CHECK_OK(cairn_ckpt_step(b, e, e, NULL, &tb.parts, 0, NULL, &err));
        CHECK_OK(cairn_ckpt_wait(b, &err));
    }
    cairn_ckpt_info ia, ib;
    CHECK_OK(cairn_ckpt_info_at(a, cairn_ckpt_count(a) - 1, &ia, &err));
    CHECK_OK(cairn_ckpt_info_at(b, cairn_ckpt_count(b) - 1, &ib, &err));
    CHECK(ia.seq == 5 && ib.seq == 6);
    CHECK_OK(cairn_ckpt_close(a, &err));
    CHECK_OK(cairn_ckpt_close(b, &err));
    int per[3] = {0}, bad = 0;
    count_writers(dir, per, 2, &bad);
    CHECK(per[1] == 3 && per[2] == 3 && bad == 0);

    /* at once, in two processes, with retention: each keeps its own 3
     * newest and removes none of the other's */
    dir = dir_named("nolock-race");
    CHECK(mkdir(dir, 0777) == 0);
    enum { SAVES = 15 };
    char o1, o2;
    pid_t p1 = spawn_writer(dir, 1, SAVES, 3, 1, &o1);
    pid_t p2 = spawn_writer(dir, 2, SAVES, 3, 1, &o2);
    int s1, s2;
    waitpid(p1, &s1, 0);
    waitpid(p2, &s2, 0);
    CHECK(o1 == 'L' && o2 == 'L');
    CHECK(WIFEXITED(s1) && WEXITSTATUS(s1) == 0 && WIFEXITED(s2) && WEXITSTATUS(s2) == 0);
    memset(per, 0, sizeof per);
    bad = 0;
    count_writers(dir, per, 2, &bad);
    CHECK(per[1] == 3 && per[2] == 3 && bad == 0);
    if (per[1] != 3 || per[2] != 3)
        fprintf(stderr, "race: writer 1 left %d, writer 2 left %d, %d bad\n", per[1], per[2], bad);
    cairn_params_free(ta.p);
    cairn_params_free(tb.p);
}

/* A writer saves while this process lists and loads: every checkpoint a
 * reader lists is complete, and readers never disturb the writer. */
static void test_readers_during_write(void)
{
    const char *dir = dir_named("readers");
    char outcome;
    pid_t pid = spawn_writer(dir, 7, 300, 0, 0, &outcome);
    CHECK(outcome == 'L');
    toy t;
    toy_init(&t);
    int opens = 0, seen = 0, incomplete = 0, finished = 0;
    while (!finished) {
        finished = waitpid(pid, &(int){0}, WNOHANG) == pid;
        cairn_ckpt *m;
        cairn_error err;
        if (open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err) != CAIRN_OK) {
            incomplete++;
            continue;
        }
        opens++;
        size_t n = cairn_ckpt_count(m);
        for (size_t i = 0; i < n; i++) {
            cairn_ckpt_info info;
            cairn_ckpt_info_at(m, i, &info, &err);
            incomplete += !info.valid;
        }
        if (n) {
            seen++;
            incomplete += whole_writer(m, n - 1, &t) != 7;
        }
        cairn_ckpt_close(m, &err);
    }
    int status = 0;
    if (!finished)
        waitpid(pid, &status, 0);
    fprintf(stderr, "readers: %d opens (%d with checkpoints) during the write, %d incomplete\n",
            opens, seen, incomplete);
    CHECK(incomplete == 0 && opens > 1);
    /* the writer finished all 300 saves: no reader removed its temporary
     * files or held it up */
    cairn_ckpt *m;
    cairn_error err;
    CHECK_OK(open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err));
    CHECK(cairn_ckpt_count(m) == 300);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(t.p);
}

static void test_retention_ownership(void)
{
    const char *dir = dir_named("owner");
    cairn_ckpt *m;
    cairn_error err;
    toy t;
    toy_init(&t);
    /* run 1 leaves epochs 1..3 */
    CHECK_OK(open_mgr(dir, 0, 0, 0, &m, &err));
    for (uint64_t e = 1; e <= 3; e++) {
        toy_set(&t, 1, e);
        CHECK_OK(cairn_ckpt_step(m, e, e, NULL, &t.parts, 0, NULL, &err));
    }
    CHECK_OK(cairn_ckpt_close(m, &err));
    /* run 2, keep_last 1, not resuming: removes only its own */
    CHECK_OK(open_mgr(dir, 0, 1, 0, &m, &err));
    for (uint64_t e = 1; e <= 3; e++) {
        toy_set(&t, 2, e);
        CHECK_OK(cairn_ckpt_step(m, e, e, NULL, &t.parts, 0, NULL, &err));
    }
    CHECK(cairn_ckpt_count(m) == 4);
    CHECK(whole_writer(m, 0, &t) == 1 && whole_writer(m, 2, &t) == 1);
    CHECK(whole_writer(m, 3, &t) == 2);
    /* an explicit prune is a policy for the whole series */
    size_t removed;
    CHECK_OK(cairn_ckpt_prune(m, 0, 2, 0, 0, &removed, &err));
    CHECK(removed == 2 && cairn_ckpt_count(m) == 2);
    CHECK_OK(cairn_ckpt_close(m, &err));
    /* run 3 resumes: CAIRN_CKPT_PRUNE_EARLIER lets retention go on */
    CHECK_OK(open_mgr(dir, CAIRN_CKPT_PRUNE_EARLIER, 1, 0, &m, &err));
    toy_set(&t, 3, 9);
    CHECK_OK(cairn_ckpt_step(m, 9, 9, NULL, &t.parts, 0, NULL, &err));
    CHECK(cairn_ckpt_count(m) == 1 && whole_writer(m, 0, &t) == 3);
    CHECK_OK(cairn_ckpt_close(m, &err));
    cairn_params_free(t.p);
}

static void test_no_replace_commit(void)
{
    const char *dir = dir_named("noreplace");
    CHECK(mkdir(dir, 0777) == 0);
    char path[4400];
    snprintf(path, sizeof path, "%s/x.cairn", dir);
    CHECK(tu_write_file(path, "precious", 8) == 0);
    cairn_write_opts wo = {.struct_size = sizeof wo, .flags = CAIRN_WRITE_NO_REPLACE};
    cairn_writer *w;
    cairn_error err;
    CHECK_OK(cairn_writer_open_path(path, &wo, &w, &err));
    float v = 1;
    uint64_t d = 1;
    CHECK_OK(cairn_writer_add(w, "v", CAIRN_F32, 1, &d, &v, &err));
    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_EXISTS);
    CHECK(strstr(err.message, "x.cairn") != NULL);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 8);
    DIR *dp = opendir(dir);
    struct dirent *e;
    int files = 0;
    while (dp && (e = readdir(dp)))
        files += e->d_name[0] != '.' || strstr(e->d_name, "tmp") != NULL;
    if (dp)
        closedir(dp);
    CHECK(files == 1); /* the temporary file is gone */
    /* a new name commits as usual */
    snprintf(path, sizeof path, "%s/y.cairn", dir);
    CHECK_OK(cairn_writer_open_path(path, &wo, &w, &err));
    CHECK_OK(cairn_writer_add(w, "v", CAIRN_F32, 1, &d, &v, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK(access(path, F_OK) == 0);
}

static void test_read_only_and_sizes(void)
{
    cairn_ckpt *m = NULL;
    cairn_error err;
    /* a reader creates nothing */
    const char *dir = dir_named("absent");
    CHECK_ST(open_mgr(dir, CAIRN_CKPT_READ_ONLY, 0, 0, &m, &err), CAIRN_E_IO);
    CHECK(access(dir, F_OK) != 0);
    CHECK_ST(open_mgr(dir, CAIRN_CKPT_READ_ONLY | CAIRN_CKPT_ASYNC, 0, 0, &m, &err), CAIRN_E_ARG);
    /* a caller built before test_no_lock existed: locked, as by default */
    cairn_ckpt_opts o = {.struct_size = offsetof(cairn_ckpt_opts, test_no_lock), .dirname = dir};
    CHECK_OK(cairn_ckpt_open(&o, &m, &err));
    cairn_ckpt *m2 = NULL;
    CHECK_ST(open_mgr(dir, 0, 0, 0, &m2, &err), CAIRN_E_BUSY);
    CHECK_OK(cairn_ckpt_close(m, &err));
    o.struct_size = offsetof(cairn_ckpt_opts, dirname);
    CHECK_ST(cairn_ckpt_open(&o, &m, &err), CAIRN_E_ARG);
    CHECK(strcmp(cairn_strerror(CAIRN_E_BUSY), "locked by another process") == 0);
}

int main(void)
{
    test_second_writer_refused();
    test_stale_lock_file();
    test_no_lock_never_replaces();
    test_readers_during_write();
    test_retention_ownership();
    test_no_replace_commit();
    test_read_only_and_sizes();
    TEST_MAIN_END();
}
