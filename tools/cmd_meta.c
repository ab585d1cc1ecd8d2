/* cmd_meta.c -- `cairn meta`: the metadata tree as JSON. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char meta_help[] =
    "usage: cairn meta FILE [--inert]\n"
    "\n"
    "--inert reads a pickle or joblib file as inert data: objects become\n"
    "{\"$class\": \"module.name\", \"args\": [...], \"state\": ...}; nothing is run.\n"
    "Prints the metadata tree as JSON. Values JSON cannot hold are tagged:\n"
    "{\"$float\": \"nan\"|\"inf\"|\"-inf\"|\"-0\"}, {\"$bytes\": BASE64}, {\"$tensor\": NAME}.\n";

static int run(int argc, char **argv)
{
    unsigned flags = 0;
    const char *path;
    int rc = cli_positional_args("meta", argc, argv, &flags, &path, 1, "FILE [--inert]");
    cairn_file *f;
    if (rc == EXIT_OK)
        rc = cli_open_input(path, flags, &f);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_value *tree = NULL;
    char *json = NULL;
    cairn_status st = cairn_file_read_metadata(f, &tree, &err);
    if (st == CAIRN_OK)
        st = cairn_value_to_json(tree, 2, &json, &err);
    if (st == CAIRN_OK)
        puts(json);
    cairn_free(json);
    cairn_value_free(tree);
    cairn_file_close(f);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

const cli_command cli_cmd_meta = {
    "meta",
    "  meta FILE              print the metadata tree as JSON\n",
    meta_help,
    run,
};
