/* cmd_info.c -- `cairn info`: what a file is and holds, in one screen. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>

static const char info_help[] =
    "usage: cairn info FILE [--json] [--inert]\n"
    "\n"
    "--inert reads a pickle or joblib file as inert data (nothing in it is run).\n"

    "Prints the format, its version, the tensor count, total stored (payload)\n"
    "and raw bytes with their ratio, how many tensors are compressed, the\n"
    "largest tensor alignment, and whether the file is signed (by which key id;\n"
    "'cairn verify FILE --pubkey PUB' checks the signature).\n";

static int run(int argc, char **argv)
{
    int as_json;
    cairn_file *f;
    int rc = cli_open_file_args("info", argc, argv, &f, &as_json);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_file_info fi;
    cairn_status st = cairn_file_get_info(f, &fi, &err);
    cairn_file_close(f);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    char version[32], key_id[2 * CAIRN_KEY_ID_BYTES + 1] = "";
    snprintf(version, sizeof version, "%u.%u", fi.version_major, fi.version_minor);
    for (int k = 0; fi.is_signed && k < CAIRN_KEY_ID_BYTES; k++)
        snprintf(key_id + 2 * k, 3, "%02x", fi.key_id[k]);
    /* Formats without compression report no raw total: it is the stored one. */
    uint64_t raw = fi.raw_bytes ? fi.raw_bytes : fi.payload_bytes;
    double ratio = cli_ratio(raw, fi.payload_bytes);
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "format",
                              cairn_format_name(fi.format), "version", version, "tensors",
                              (json_int_t)fi.tensor_count, "total_bytes",
                              (json_int_t)fi.payload_bytes, "file_bytes", (json_int_t)fi.file_size,
                              "alignment", (json_int_t)fi.alignment, "metadata", fi.has_metadata);
        json_object_set_new(o, "stored_bytes", json_integer((json_int_t)fi.payload_bytes));
        json_object_set_new(o, "raw_bytes", json_integer((json_int_t)raw));
        json_object_set_new(o, "ratio", json_real(ratio));
        json_object_set_new(o, "compressed_tensors", json_integer((json_int_t)fi.compressed_tensors));
        json_object_set_new(o, "signed", json_boolean(fi.is_signed));
        if (fi.is_signed)
            json_object_set_new(o, "key_id", json_string(key_id));
        return cli_print_json(o);
    }
    printf("format:      %s\nversion:     %s\ntensors:     %" PRIu64 "\ntotal bytes: %" PRIu64
           "\nfile bytes:  %" PRIu64 "\nalignment:   %" PRIu64 "\nmetadata:    %s\n",
           cairn_format_name(fi.format), version, fi.tensor_count, fi.payload_bytes, fi.file_size,
           fi.alignment, fi.has_metadata ? "yes" : "no");
    printf("raw bytes:   %" PRIu64 "\nratio:       %.2fx (raw / total)\ncompressed:  %" PRIu64
           " of %" PRIu64 " tensors\nsigned:      %s%s%s\n", raw, ratio, fi.compressed_tensors,
           fi.tensor_count, fi.is_signed ? "yes, key id " : "no", key_id,
           fi.is_signed ? " (not checked here: use verify --pubkey)" : "");
    return EXIT_OK;
}

const cli_command cli_cmd_info = {
    "info",
    "  info FILE [--json]     format, version, tensor count, raw and stored bytes, signature\n",
    info_help,
    run,
};
