/* test_inert.c -- plain pickles read as inert data (CAIRN_OPEN_INERT): a
 * global nothing allows becomes a {"$class", "args", "state"} node instead of
 * being refused, and is refused (naming it) without the flag. The pickles
 * are written by hand so the test needs no Python; tests/cli_inert.sh covers
 * real pickle.dumps and joblib.dump output. */
#include "testutil.h"

#include <cairn.h>
#include <string.h>

/* os.system("echo pwned") as protocol 2 writes it: GLOBAL, args, REDUCE. */
static const uint8_t evil[] = "\x80\x02" "cposix\nsystem\n" "X\x0a\x00\x00\x00" "echo pwned"
                              "\x85" "R" ".";

/* NEWOBJ of a class, then BUILD with a dict state: {"w": 1}. */
static const uint8_t obj[] = "\x80\x02" "cpkg.mod\nThing\n" ")" "\x81" "}" "X\x01\x00\x00\x00"
                             "w" "K\x01" "s" "b" ".";

static cairn_status open_it(const uint8_t *p, size_t n, unsigned flags, cairn_file **f,
                            cairn_error *err)
{
    cairn_open_opts o = {.struct_size = sizeof o, .flags = flags};
    return cairn_file_open_memory(p, n, &o, f, err);
}

static void test_refused_without_flag(void)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_ST(open_it(evil, sizeof evil - 1, 0, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "posix.system is not allowed") != NULL);
    CHECK(strstr(err.message, "--inert") != NULL);
}

static const char *str_of(const cairn_value *v)
{
    const void *d = NULL;
    size_t len = 0;
    if (!v || cairn_value_get_data(v, &d, &len) != CAIRN_OK)
        return "";
    static char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)d);
    return buf;
}

static void test_evil_is_a_node(void)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_OK(open_it(evil, sizeof evil - 1, CAIRN_OPEN_INERT, &f, &err));
    if (!f)
        return;
    cairn_value *tree = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    CHECK(!strcmp(str_of(cairn_value_get(tree, "$class")), "posix.system"));
    const cairn_value *args = cairn_value_get(tree, "args");
    CHECK(args && cairn_value_count(args) == 1);
    CHECK(!strcmp(str_of(cairn_value_at(args, 0)), "echo pwned"));
    cairn_file_info fi;
    CHECK_OK(cairn_file_get_info(f, &fi, &err));
    CHECK(fi.format == CAIRN_FORMAT_PICKLE && fi.tensor_count == 0);
    cairn_value_free(tree);
    cairn_file_close(f);
}

static void test_newobj_build(void)
{
    cairn_file *f = NULL;
    cairn_error err = {0};
    CHECK_ST(open_it(obj, sizeof obj - 1, 0, &f, &err), CAIRN_E_UNSUPPORTED);
    CHECK(strstr(err.message, "pkg.mod.Thing") != NULL);
    CHECK_OK(open_it(obj, sizeof obj - 1, CAIRN_OPEN_INERT, &f, &err));
    if (!f)
        return;
    cairn_value *tree = NULL;
    CHECK_OK(cairn_file_read_metadata(f, &tree, &err));
    CHECK(!strcmp(str_of(cairn_value_get(tree, "$class")), "pkg.mod.Thing"));
    int64_t w = 0;
    CHECK_OK(cairn_value_get_int(cairn_value_get(cairn_value_get(tree, "state"), "w"), &w));
    CHECK(w == 1);
    cairn_value_free(tree);
    cairn_file_close(f);
}

/* Truncations of a pickle fail cleanly (no crash, no leak) in inert mode. */
static void test_truncations(void)
{
    for (size_t n = 1; n < sizeof obj - 1; n++) {
        cairn_file *f = NULL;
        cairn_error err = {0};
        cairn_status st = open_it(obj, n, CAIRN_OPEN_INERT, &f, &err);
        CHECK(st != CAIRN_OK);
        if (f)
            cairn_file_close(f);
    }
}

int main(void)
{
    test_refused_without_flag();
    test_evil_is_a_node();
    test_newobj_build();
    test_truncations();
    TEST_MAIN_END();
}
