/* cmd_ls.c -- `cairn ls`: one line (or JSON object) per tensor. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>

static const char ls_help[] =
    "usage: cairn ls FILE [--json] [--inert]\n"
    "\n"
    "--inert reads a pickle or joblib file as inert data (nothing in it is run).\n"
    "Lists every tensor: name, dtype, shape, stored bytes, codec (CODEC:LEVEL and\n"
    "+shuffle for compressed tensors, else none), raw bytes and the ratio raw /\n"
    "stored.\n";

static int run(int argc, char **argv)
{
    int as_json;
    cairn_file *f;
    int rc = cli_open_file_args("ls", argc, argv, &f, &as_json);
    if (rc != EXIT_OK)
        return rc;
    json_t *list = as_json ? json_array() : NULL;
    cairn_error err = {0};
    cli_warn_not_carried(f);
    for (uint64_t i = 0; i < cairn_file_count(f); i++) {
        cairn_tensor_info t;
        cairn_status st = cairn_tensor_info_at(f, i, &t, &err);
        if (st != CAIRN_OK) {
            json_decref(list);
            cairn_file_close(f);
            return cli_report(st, &err);
        }
        if (as_json) {
            json_t *o = json_pack("{s:s%, s:s, s:o, s:I, s:I, s:s, s:I}", "name", t.name,
                                  t.name_len, "dtype", cairn_dtype_name(t.dtype), "shape",
                                  cli_shape_json(&t), "bytes", (json_int_t)t.raw_size,
                                  "stored_bytes", (json_int_t)t.stored_size, "codec",
                                  cli_codec_name(t.codec), "offset", (json_int_t)t.offset);
            json_object_set_new(o, "raw_bytes", json_integer((json_int_t)t.raw_size));
            json_object_set_new(o, "ratio", json_real(cli_ratio(t.raw_size, t.stored_size)));
            if (t.codec != CAIRN_CODEC_NONE) {
                json_object_set_new(o, "level", json_integer(t.level));
                json_object_set_new(o, "filter", json_string(t.filter == CAIRN_FILTER_SHUFFLE
                                                                 ? "shuffle" : "none"));
                json_object_set_new(o, "chunk_size", json_integer((json_int_t)t.chunk_size));
                json_object_set_new(o, "chunks", json_integer((json_int_t)t.chunk_count));
            }
            json_array_append_new(list, o);
        } else {
            char shape[256], codec[48];
            cli_shape_text(&t, shape, sizeof shape);
            cli_codec_text(&t, codec, sizeof codec);
            cli_print_padded(t.name, t.name_len, 40);
            printf(" %-8s %-24s %14" PRIu64 "  %-16s %14" PRIu64 "  %6.2fx\n",
                   cairn_dtype_name(t.dtype), shape, t.stored_size, codec, t.raw_size,
                   cli_ratio(t.raw_size, t.stored_size));
        }
    }
    cairn_file_close(f);
    return as_json ? cli_print_json(list) : EXIT_OK;
}

const cli_command cli_cmd_ls = {
    "ls",
    "  ls FILE [--json]       list tensors: name, dtype, shape, stored bytes, codec, raw bytes, ratio\n",
    ls_help,
    run,
};
