/* main.c -- the command-line tool `cairn`: a thin client of libcairn's public
 * API. Exit codes: 0 ok, 1 bad or corrupt input (or, for diff, files that
 * differ), 2 usage error, 3 I/O error.
 *
 * Each command lives in tools/cmd_NAME.c, which defines `cli_cmd_NAME` (its
 * name, its lines in this help, its own help and its function). Adding a
 * command is that file plus one row in CLI_COMMANDS below. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* The commands, in the order `cairn --help` lists them. */
#define CLI_COMMANDS(X)                                                                           \
    X(pack)                                                                                       \
    X(unpack)                                                                                     \
    X(ls)                                                                                         \
    X(info)                                                                                       \
    X(meta)                                                                                       \
    X(verify)                                                                                     \
    X(keygen)                                                                                     \
    X(sign)                                                                                       \
    X(cat)                                                                                        \
    X(show)                                                                                       \
    X(diff)                                                                                       \
    X(ckpt)                                                                                       \
    X(convert)

#define DECLARE(name) extern const cli_command cli_cmd_##name;
CLI_COMMANDS(DECLARE)
#undef DECLARE

#define ROW(name) &cli_cmd_##name,
static const cli_command *const commands[] = {CLI_COMMANDS(ROW)};
#undef ROW

static const char help_head[] =
    "usage: cairn COMMAND [ARGS...]\n"
    "\n"
    "Save, inspect and convert machine-learning tensor archives: .cairn, .npy,\n"
    ".npz, .safetensors, .gguf, PyTorch .pt, MXNet .params, HDF5 and .keras,\n"
    "and cairn's .json;\n"
    "pickle and joblib files read as inert data with --inert.\n"
    "\n"
    "commands:\n";

static const char help_tail[] =
    "\n"
    "Options may come anywhere on the command line; '--' ends them. Every\n"
    "command that opens a file takes --inert: a pickle or joblib file is read\n"
    "as inert data (nothing in it is run; without it such files are refused).\n"
    "Run 'cairn COMMAND --help' for a command's options.\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  bad or corrupt input (including a failed verify or a missing tensor);\n"
    "     for diff: the files differ\n"
    "  2  usage error\n"
    "  3  I/O error (cannot open, read, write, or out of memory)\n";

static void print_help(FILE *out)
{
    fputs(help_head, out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fputs(commands[i]->overview, out);
    fputs(help_tail, out);
}

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* Blocks of 1 MiB or more get mappings of their own, so what a parse
     * frees (a JSON parser's index, a decoded member) goes back to the
     * system. glibc otherwise raises this threshold after the first large
     * free, and later large blocks come from the heap, whose freed memory
     * stays resident: the peak-memory rule (docs/FORMAT.md §14) is about
     * what the process holds. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    if (argc < 2)
        return print_help(stderr), EXIT_USAGE;
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return print_help(stdout), EXIT_OK;
    if (!strcmp(argv[1], "--version"))
        return printf("cairn %s (format %d.%d)\n", cairn_version(), CAIRN_FORMAT_MAJOR,
                      CAIRN_FORMAT_MINOR), EXIT_OK;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const cli_command *c = commands[i];
        if (strcmp(argv[1], c->name))
            continue;
        if (cli_wants_help(argc - 1, argv + 1))
            return fputs(c->help, stdout), EXIT_OK;
        return c->run(argc - 1, argv + 1);
    }
    return cli_usage_error("unknown command '%s'", argv[1]);
}
