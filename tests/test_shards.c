/* test_shards.c -- sharded safetensors saves through the library
 * (cairn_write_opts.shard_size): layout, reading back through the index,
 * misuse, and that no failed or killed save ever leaves a set of shards
 * that reads as a mix of two saves. */
#include "testutil.h"

#include <signal.h>

static const char *tmp;
static char *P(const char *name);

#define N_TENSORS 5
static const char *names[N_TENSORS] = {"a", "b", "c", "d", "e"};

/* Tensor i of save `gen`: 16 f32 values (64 bytes) derived from both. */
static void fill(float *v, int i, int gen)
{
    for (int k = 0; k < 16; k++)
        v[k] = (float)(gen * 1000 + i * 16 + k);
}

/* Starts a save of N_TENSORS tensors of 64 bytes in shards of 128 bytes
 * (3 shards: ab cd e), everything declared and added; the caller commits,
 * aborts or dies. */
static cairn_status start_save(const char *path, int gen, cairn_writer **out, cairn_error *err)
{
    cairn_write_opts o = {.struct_size = sizeof o, .shard_size = 128};
    uint64_t dims[1] = {16};
    cairn_tensor_decl decls[N_TENSORS];
    for (int i = 0; i < N_TENSORS; i++)
        decls[i] = (cairn_tensor_decl){.name = names[i], .dtype = CAIRN_F32, .rank = 1,
                                       .dims = dims};
    cairn_writer *w;
    cairn_status st = cairn_writer_open_path(path, &o, &w, err);
    if (st != CAIRN_OK)
        return st;
    cairn_value *meta = cairn_value_map();
    cairn_value_set(meta, "gen", cairn_value_int(gen), NULL);
    st = cairn_writer_set_metadata(w, meta, err);
    cairn_value_free(meta);
    if (st == CAIRN_OK)
        st = cairn_writer_declare(w, decls, N_TENSORS, err);
    for (int i = 0; st == CAIRN_OK && i < N_TENSORS; i++) {
        float v[16];
        fill(v, i, gen);
        st = cairn_writer_add(w, names[i], CAIRN_F32, 1, dims, v, err);
    }
    if (st != CAIRN_OK) {
        cairn_writer_abort(w);
        return st;
    }
    *out = w;
    return CAIRN_OK;
}

/* 1 when the index at `index` opens, verifies, and every tensor is save
 * `gen`'s. */
static int reads_as(const char *index, int gen)
{
    cairn_file *f;
    if (cairn_file_open(index, NULL, &f, NULL) != CAIRN_OK)
        return 0;
    int ok = cairn_file_verify(f, NULL) == CAIRN_OK && cairn_file_count(f) == N_TENSORS;
    for (int i = 0; ok && i < N_TENSORS; i++) {
        float want[16], got[16];
        uint64_t at;
        fill(want, i, gen);
        ok = cairn_tensor_find(f, names[i], &at, NULL, NULL) == CAIRN_OK &&
             cairn_tensor_read(f, at, CAIRN_F32, got, sizeof got, 0, NULL) == CAIRN_OK &&
             memcmp(want, got, sizeof got) == 0;
    }
    cairn_file_close(f);
    return ok;
}

/* A path in the scratch directory, owned by the caller. */
static char *P(const char *name) { return strdup(tu_path(tmp, name)); }

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void test_layout(void)
{
    char *path = P("m.safetensors"), *index = P("m.safetensors.index.json");
    char *s1 = P("m-00001-of-00003.safetensors");
    char *s3 = P("m-00003-of-00003.safetensors");
    cairn_writer *w;
    cairn_error err = {0};
    CHECK_OK(start_save(path, 1, &w, &err));
    CHECK(!exists(s1) && !exists(index)); /* nothing named before commit */
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK(exists(s1) && exists(s3) && exists(index) && !exists(path));
    CHECK(reads_as(index, 1));
    cairn_file *f;
    CHECK_OK(cairn_file_open(s3, NULL, &f, NULL)); /* a shard is a safetensors file */
    CHECK(f && cairn_file_count(f) == 1);
    cairn_file_close(f);
    free(path);
    free(index);
    free(s1);
    free(s3);
}

static void test_misuse(void)
{
    char *path = P("x.safetensors");
    cairn_write_opts o = {.struct_size = sizeof o, .shard_size = 128};
    cairn_writer *w = NULL;
    cairn_error err = {0};
    uint64_t dims[1] = {16};
    float v[16] = {0};
    /* adds need the layout first */
    CHECK_OK(cairn_writer_open_path(path, &o, &w, &err));
    CHECK_ST(cairn_writer_add(w, "a", CAIRN_F32, 1, dims, v, &err), CAIRN_E_STATE);
    cairn_writer_abort(w);
    /* shards are files: no memory saves, only .safetensors paths */
    CHECK_ST(cairn_writer_open_memory(&o, &w, &err), CAIRN_E_UNSUPPORTED);
    char *npz = P("x.npz");
    CHECK_ST(cairn_writer_open_path(npz, &o, &w, &err), CAIRN_E_UNSUPPORTED);
    /* metadata naming tensors cannot be carried by every shard */
    CHECK_OK(cairn_writer_open_path(path, &o, &w, &err));
    cairn_value *meta = cairn_value_map();
    cairn_value_set(meta, "ref", cairn_value_tensor_ref("a"), NULL);
    CHECK_ST(cairn_writer_set_metadata(w, meta, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "'ref'") != NULL);
    cairn_value_free(meta);
    cairn_writer_abort(w);
    /* an aborted save leaves nothing */
    CHECK_OK(start_save(path, 1, &w, &err));
    cairn_writer_abort(w);
    char *s1 = P("x-00001-of-00003.safetensors");
    CHECK(!exists(s1) && !exists(path));
    free(s1);
    free(npz);
    free(path);
}

/* A save that fails while naming its shards leaves no index that reads as
 * a model, and removes the shards it named. */
static void test_failed_commit(void)
{
    char *path = P("f.safetensors"), *index = P("f.safetensors.index.json");
    char *s1 = P("f-00001-of-00003.safetensors");
    char *s2 = P("f-00002-of-00003.safetensors");
    cairn_writer *w;
    cairn_error err = {0};
    CHECK_OK(start_save(path, 1, &w, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK(reads_as(index, 1));
    /* shard 2's name becomes a non-empty directory: renaming onto it fails */
    CHECK(unlink(s2) == 0 && mkdir(s2, 0777) == 0);
    char *inner = strdup(tu_path(s2, "keep"));
    CHECK(tu_write_file(inner, "x", 1) == 0);
    CHECK_OK(start_save(path, 2, &w, &err));
    CHECK(cairn_writer_commit(w, &err) != CAIRN_OK);
    CHECK(!reads_as(index, 1) && !reads_as(index, 2)); /* never a mix */
    CHECK(!exists(index) && !exists(s1));               /* the new shard 1 was removed */
    unlink(inner);
    rmdir(s2);
    free(inner);
    free(path);
    free(index);
    free(s1);
    free(s2);
}

/* A save killed after its adds (shards complete but unnamed) leaves the
 * earlier model exactly as it was. */
static void test_killed(void)
{
    char *path = P("k.safetensors"), *index = P("k.safetensors.index.json");
    cairn_writer *w;
    cairn_error err = {0};
    CHECK_OK(start_save(path, 1, &w, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    for (int trial = 0; trial < 3; trial++) {
        pid_t pid = fork();
        if (pid == 0) {
            cairn_writer *w2;
            if (start_save(path, 2, &w2, NULL) == CAIRN_OK)
                raise(SIGKILL);
            _exit(1);
        }
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        CHECK(reads_as(index, 1));
    }
    /* and a later save goes through */
    CHECK_OK(start_save(path, 3, &w, &err));
    CHECK_OK(cairn_writer_commit(w, &err));
    CHECK(reads_as(index, 3));
    free(path);
    free(index);
}

int main(void)
{
    tmp = tu_tmpdir("test_shards");
    test_layout();
    test_misuse();
    test_failed_commit();
    test_killed();
    tu_remove_tmpdir_if_passed(tmp);
    TEST_MAIN_END();
}
