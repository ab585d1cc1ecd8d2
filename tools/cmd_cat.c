/* cmd_cat.c -- `cairn cat`: one tensor's bytes to stdout. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char cat_help[] =
    "usage: cairn cat FILE NAME [--inert]\n"
    "\n"
    "Writes tensor NAME's elements to stdout: little-endian, C order, in its own\n"
    "dtype. Checksums are verified on the way. --inert reads a pickle or joblib\n"
    "file as inert data (NAME is a path such as state.coef_; nothing is run).\n";

static int run(int argc, char **argv)
{
    unsigned flags = argc == 4 && !strcmp(argv[3], "--inert") ? CAIRN_OPEN_INERT : 0;
    if (argc != 3 && !flags)
        return cli_usage_error("%s", "cat: needs FILE and NAME [--inert]");
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    int rc = cli_load_tensor(argv[1], argv[2], flags, &f, &t, &data, &owned);
    if (rc == EXIT_OK && cli_write_all(STDOUT_FILENO, data, (size_t)t.raw_size) != 0) {
        fprintf(stderr, "%s: writing to stdout: %s\n", cli_prog, strerror(errno));
        rc = EXIT_IO;
    }
    free(owned);
    cairn_file_close(f);
    return rc;
}

const cli_command cli_cmd_cat = {
    "cat",
    "  cat FILE NAME          write one tensor's bytes (little-endian, C order) to stdout\n",
    cat_help,
    run,
};
