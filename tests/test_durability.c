/* test_durability.c -- a save is all-or-nothing: kill the writer at random
 * instants (fork + SIGKILL), run out of space (RLIMIT_FSIZE, and a real full
 * tmpfs when we may mount one), abort, fail mid-way — and check the previous
 * good file is intact and no partial file ever sits under the target name. */
#include "testutil.h"

#include <cairn.h>
#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

static const char *dir;

/* linkat as the library sees it (-Wl,--wrap=linkat): with refuse_empty_path
 * set, AT_EMPTY_PATH fails with ENOENT, as it does on kernels before 6.10
 * for a process without CAP_DAC_READ_SEARCH. */
static int refuse_empty_path;
int __real_linkat(int da, const char *a, int db, const char *b, int flags);
int __wrap_linkat(int da, const char *a, int db, const char *b, int flags);
int __wrap_linkat(int da, const char *a, int db, const char *b, int flags)
{
    if (refuse_empty_path && (flags & AT_EMPTY_PATH)) {
        errno = ENOENT;
        return -1;
    }
    return __real_linkat(da, a, db, b, flags);
}

static char *path_in(const char *d, const char *name)
{
    static char buf[2][4096];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", d, name);
    return buf[k];
}

/* Saves `n` tensors of `elems` floats whose values all equal `generation`. */
static cairn_status save_generation(const char *path, int generation, int n, size_t elems,
                                    cairn_error *err)
{
    float *v = malloc(elems * sizeof *v);
    for (size_t i = 0; i < elems; i++)
        v[i] = (float)generation;
    cairn_writer *w;
    cairn_status st = cairn_writer_open_path(path, NULL, &w, err);
    for (int t = 0; t < n && st == CAIRN_OK; t++) {
        char name[32];
        uint64_t d = elems;
        snprintf(name, sizeof name, "t%03d", t);
        st = cairn_writer_add(w, name, CAIRN_F32, 1, &d, v, err);
    }
    if (st == CAIRN_OK) {
        cairn_value *m = cairn_value_map();
        cairn_value_set(m, "generation", cairn_value_int(generation), err);
        st = cairn_writer_set_metadata(w, m, err);
        cairn_value_free(m);
    }
    st = st == CAIRN_OK ? cairn_writer_commit(w, err) : (cairn_writer_abort(w), st);
    free(v);
    return st;
}

/* Returns the generation a complete, verified file holds, or -1. */
static int generation_of(const char *path)
{
    cairn_file *f;
    cairn_error err;
    cairn_open_opts opts = {.struct_size = sizeof opts, .flags = CAIRN_OPEN_VERIFY, .format = CAIRN_FORMAT_AUTO};
    if (cairn_file_open(path, &opts, &f, &err) != CAIRN_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    cairn_value *m;
    int64_t g = -1;
    if (cairn_file_read_metadata(f, &m, &err) == CAIRN_OK) {
        cairn_value_get_int(cairn_value_get(m, "generation"), &g);
        cairn_value_free(m);
    }
    /* every tensor must hold the same generation as the metadata */
    float x;
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        const void *p;
        cairn_tensor_info_at(f, i, &t, &err);
        cairn_tensor_data(f, i, &p, &err);
        memcpy(&x, (const char *)p + t.raw_size - 4, 4);
        if (x != (float)g)
            g = -1;
    }
    cairn_file_close(f);
    return (int)g;
}

static int count_temp_files(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        if (strstr(e->d_name, ".cairn-tmp-"))
            n++;
    if (dp)
        closedir(dp);
    return n;
}

static void test_kill_at_random_points(void)
{
    const char *target = path_in(dir, "ckpt.cairn");
    cairn_error err;
    CHECK_OK(save_generation(target, 1, 8, 1 << 18, &err));
    CHECK(generation_of(target) == 1);
    uint64_t rng = (uint64_t)time(NULL);
    int last_good = 1, saw_old = 0, saw_new = 0;
    for (int round = 0; round < 40; round++) {
        int next = last_good + 1;
        pid_t pid = fork();
        if (pid == 0) {
            cairn_error cerr;
            _exit(save_generation(target, next, 8, 1 << 18, &cerr) == CAIRN_OK ? 0 : 1);
        }
        /* kill somewhere between "just started" and "probably finished" */
        usleep((useconds_t)(tu_rand(&rng) % 30000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        int g = generation_of(target);
        CHECK(g == last_good || g == next);
        if (g == next) {
            saw_new++;
            last_good = next;
        } else {
            saw_old++;
        }
    }
    fprintf(stderr, "kill test: %d rounds kept the old file, %d completed the new one\n", saw_old,
            saw_new);
    CHECK(saw_old > 0); /* the kills did land mid-save */
    /* leftovers are only ever temporary names, which a later save ignores */
    fprintf(stderr, "kill test: %d temporary files left behind\n", count_temp_files(dir));
    CHECK_OK(save_generation(target, 100, 2, 16, &err));
    CHECK(generation_of(target) == 100);
}

static void test_abort_and_failure_leave_nothing(void)
{
    const char *target = path_in(dir, "aborted.cairn");
    cairn_writer *w;
    cairn_error err;
    float x = 1;
    CHECK_OK(cairn_writer_open_path(target, NULL, &w, &err));
    CHECK_OK(cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, &x, &err));
    cairn_writer_abort(w);
    CHECK(access(target, F_OK) != 0);
    CHECK_OK(cairn_writer_open_path(target, NULL, &w, &err));
    CHECK_ST(cairn_writer_add(w, "x", (cairn_dtype)0, 0, NULL, &x, &err), CAIRN_E_ARG);
    CHECK_ST(cairn_writer_commit(w, &err), CAIRN_E_STATE);
    CHECK(access(target, F_OK) != 0);
    CHECK(count_temp_files(dir) == 0);
}

/* RLIMIT_FSIZE makes write() fail with EFBIG past the limit: a disk that
 * fills up mid-save, without needing privileges. Run in a child so the
 * limit does not leak into the rest of the test. */
static void test_file_size_limit(void)
{
    const char *target = path_in(dir, "limited.cairn");
    cairn_error err;
    CHECK_OK(save_generation(target, 5, 2, 1000, &err));
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1 << 20, 1 << 20};
        setrlimit(RLIMIT_FSIZE, &rl);
        cairn_error cerr;
        cairn_status st = save_generation(target, 6, 8, 1 << 18, &cerr);
        int ok = st == CAIRN_E_IO && strstr(cerr.message, "limited.cairn") != NULL;
        if (!ok)
            fprintf(stderr, "unexpected: status %d: %s\n", (int)st, cerr.message);
        _exit(ok ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(generation_of(target) == 5);
    CHECK(count_temp_files(dir) == 0); /* the failed save removed its temporary file */
}

/* A real full file system: a 1 MiB tmpfs. Needs root and mount rights;
 * skipped (with a message) where they are missing. */
static void test_full_tmpfs(void)
{
    char mnt[4096];
    snprintf(mnt, sizeof mnt, "%s/tmpfs", dir);
    mkdir(mnt, 0777);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") != 0) {
        fprintf(stderr, "full-disk test skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
        return;
    }
    const char *target = path_in(mnt, "model.cairn");
    cairn_error err;
    CHECK_OK(save_generation(target, 1, 2, 20000, &err)); /* ~160 KB */
    CHECK_ST(save_generation(target, 2, 8, 100000, &err), CAIRN_E_IO); /* 3.2 MB: ENOSPC */
    CHECK(strstr(err.message, "No space") != NULL || strstr(err.message, "space") != NULL);
    CHECK(generation_of(target) == 1);
    CHECK(count_temp_files(mnt) == 0); /* the failed save cleaned up after itself */
    /* and with the space back, saving works again */
    CHECK_OK(save_generation(target, 3, 2, 20000, &err));
    CHECK(generation_of(target) == 3);
    umount2(mnt, MNT_DETACH);
}

/* Without /proc and without linkat(AT_EMPTY_PATH) the unnamed temporary
 * file cannot be linked in: the commit copies it to a named temporary and
 * renames that (a new target and one that exists). Run in a child with a
 * private mount namespace where /proc is unmounted; needs root. */
static void test_no_proc(void)
{
    const char *target = path_in(dir, "noproc.cairn");
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            umount2("/proc", MNT_DETACH) != 0 || access("/proc/self/fd", F_OK) == 0)
            _exit(77);
        refuse_empty_path = 1;
        cairn_error err;
        if (save_generation(target, 7, 3, 50000, &err) != CAIRN_OK ||
            save_generation(target, 8, 3, 50000, &err) != CAIRN_OK) {
            fprintf(stderr, "save without /proc: %s\n", err.message);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        fprintf(stderr, "no-/proc test skipped: needs root (a private mount namespace)\n");
        return;
    }
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(generation_of(target) == 8);
    CHECK(count_temp_files(dir) == 0);
}

int main(void)
{
    dir = tu_tmpdir("test_durability");
    test_abort_and_failure_leave_nothing();
    test_file_size_limit();
    test_full_tmpfs();
    test_no_proc();
    test_kill_at_random_points();
    TEST_MAIN_END();
}
