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
    unsigned flags = argc == 3 && !strcmp(argv[2], "--inert") ? CAIRN_OPEN_INERT : 0;
    if (argc != 2 && !flags)
        return cli_usage_error("%s", "meta: needs FILE [--inert]");
    cairn_file *f;
    int rc = cli_open_input(argv[1], flags, &f);
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
