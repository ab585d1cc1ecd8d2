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
    unsigned flags = 0;
    const char *pos[2];
    int rc = cli_positional_args("cat", argc, argv, &flags, pos, 2, "FILE and NAME [--inert]");
    if (rc != EXIT_OK)
        return rc;
    cairn_file *f = NULL;
    cairn_tensor_info t;
    const void *data = NULL;
    void *owned = NULL;
    rc = cli_load_tensor(pos[0], pos[1], flags, &f, &t, &data, &owned);
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
