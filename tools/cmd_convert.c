/* cmd_convert.c -- `cairn convert IN OUT [--to FORMAT]`: any format the
 * library reads into any format it writes, tensors byte for byte, metadata
 * where the target can hold it (with a warning naming what it cannot). */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char convert_help[] =
    "usage: cairn convert IN OUT [--to FORMAT] [--align N] [--no-sync] [--no-progress]\n"
    "                     [--compress CODEC[:LEVEL]] [--shuffle] [--chunk-size N] [--threads N]\n"
    "\n"
    "Converts between the formats cairn reads and writes. The output format\n"
    "comes from --to (cairn, npy, safetensors, npz, gguf, torch) or OUT's\n"
    "extension (.npy, .safetensors, .npz, .gguf, .pt or .pth; anything else:\n"
    "cairn). Tensors are\n"
    "copied byte for byte (checksums verified on the way when IN has them).\n"
    "Metadata is carried where the target can hold it; otherwise a warning\n"
    "says what was left out. A tensor the target cannot hold (a dtype it has\n"
    "no name for, a second tensor in an .npy) stops the conversion with an\n"
    "error, and OUT is left untouched: the output appears only when complete.\n"
    "A progress bar is drawn on stderr when it is a terminal and IN holds more\n"
    "than 64 MiB.\n"
    "--compress, --shuffle, --chunk-size and --threads compress the tensors of a\n"
    "cairn output as 'cairn pack' does (see its help); other formats refuse them.\n"
    "Without --compress a cairn output is uncompressed, whatever IN was.\n";

typedef struct convert_args {
    const char *in, *out;
    cairn_format to;
    uint64_t align;
    int no_sync, no_progress;
    cairn_write_opts compress; /* codec, level, filter, chunk_size, threads */
} convert_args;

static int format_from_name(const char *name, cairn_format *out)
{
    for (int f = 1; f < 16; f++) {
        const char *n = cairn_format_name((cairn_format)f);
        if (n && !strcasecmp(n, name)) {
            *out = (cairn_format)f;
            return EXIT_OK;
        }
    }
    if (!strcasecmp(name, "native")) {
        *out = CAIRN_FORMAT_NATIVE;
        return EXIT_OK;
    }
    return cli_usage_error("convert: unknown format '%s'", name);
}

static int parse_args(int argc, char **argv, convert_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        int rc = EXIT_OK;
        if (!strcmp(argv[i], "--to") && i + 1 < argc) {
            rc = format_from_name(argv[++i], &a->to);
        } else if (!strcmp(argv[i], "--align") && i + 1 < argc) {
            char *end;
            a->align = strtoull(argv[++i], &end, 10);
            if (*end || !a->align)
                rc = cli_usage_error("--align wants a number, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--no-sync")) {
            a->no_sync = 1;
        } else if (!strcmp(argv[i], "--no-progress")) {
            a->no_progress = 1;
        } else if ((rc = cli_compress_option(argc, argv, &i, &a->compress)) != 0) {
            rc = rc < 0 ? -1 - rc : EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            rc = cli_usage_error("convert: unknown option '%s'", argv[i]);
        } else if (!a->in) {
            a->in = argv[i];
        } else if (!a->out) {
            a->out = argv[i];
        } else {
            rc = cli_usage_error("convert: unexpected argument '%s'", argv[i]);
        }
        if (rc != EXIT_OK)
            return rc;
    }
    if (!a->in || !a->out)
        return cli_usage_error("%s", "convert: needs IN and OUT");
    return EXIT_OK;
}

typedef struct progress {
    int on;
    uint64_t total, done;
    int last_percent;
} progress;

static void progress_update(progress *p, uint64_t bytes)
{
    p->done += bytes;
    if (!p->on)
        return;
    int percent = p->total ? (int)(p->done * 100 / p->total) : 100;
    if (percent == p->last_percent)
        return;
    p->last_percent = percent;
    int bar = percent / 4;
    fprintf(stderr, "\r[%.*s%*s] %3d%%  %" PRIu64 " MiB", bar,
            "=========================", 25 - bar, "", percent, p->done >> 20);
    if (percent == 100)
        fputc('\n', stderr);
}

/* Copies one tensor: straight from the mapping when it can, else through a
 * buffer (byte-swapped / reordered / decompressed by the reader). */
static int copy_tensor(cairn_file *in, uint64_t i, cairn_writer *w, cairn_error *err)
{
    cairn_tensor_info t;
    cairn_status st = cairn_tensor_info_at(in, i, &t, err);
    if (st != CAIRN_OK)
        return cli_report(st, err);
    const void *data = NULL;
    void *owned = NULL;
    if (t.zero_copy) {
        st = cairn_tensor_verify(in, i, err);
        if (st == CAIRN_OK)
            st = cairn_tensor_data(in, i, &data, err);
    } else {
        owned = malloc(t.raw_size ? (size_t)t.raw_size : 1);
        if (!owned)
            return fprintf(stderr, "%s: tensor '%s': out of memory\n", cli_prog, t.name), EXIT_IO;
        st = cairn_tensor_read(in, i, t.dtype, owned, (size_t)t.raw_size, CAIRN_READ_VERIFY, err);
        data = owned;
    }
    if (st == CAIRN_OK)
        st = cairn_writer_add(w, t.name, t.dtype, t.rank, t.dims, data, err);
    free(owned);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, err);
}

/* Announces every tensor of IN before the first add (after the metadata),
 * so a header-first target (safetensors, GGUF) lays itself out now and
 * writes each payload once, in place, instead of spooling it and copying it
 * behind the header at commit; every target checks its rules up front. */
static int declare_all(cairn_file *in, cairn_writer *w, cairn_error *err)
{
    uint64_t n = cairn_file_count(in), total_rank = 0;
    cairn_tensor_info t;
    cairn_status st = CAIRN_OK;
    for (uint64_t i = 0; st == CAIRN_OK && i < n; i++)
        if ((st = cairn_tensor_info_at(in, i, &t, err)) == CAIRN_OK)
            total_rank += t.rank;
    if (st != CAIRN_OK)
        return cli_report(st, err);
    if (n > SIZE_MAX / sizeof(cairn_tensor_decl) || total_rank > SIZE_MAX / sizeof(uint64_t))
        return fprintf(stderr, "%s: %" PRIu64 " tensors: out of memory\n", cli_prog, n), EXIT_IO;
    cairn_tensor_decl *decls = malloc(n ? (size_t)n * sizeof *decls : 1);
    uint64_t *dims = malloc(total_rank ? (size_t)total_rank * sizeof *dims : 1);
    if (!decls || !dims) {
        free(decls);
        free(dims);
        return fprintf(stderr, "%s: %" PRIu64 " tensors: out of memory\n", cli_prog, n), EXIT_IO;
    }
    uint64_t *next = dims;
    for (uint64_t i = 0; st == CAIRN_OK && i < n; i++) {
        if ((st = cairn_tensor_info_at(in, i, &t, err)) != CAIRN_OK)
            break;
        memcpy(next, t.dims, t.rank * sizeof *next);
        decls[i] = (cairn_tensor_decl){t.name, t.dtype, t.rank, next}; /* names live until close */
        next += t.rank;
    }
    if (st == CAIRN_OK)
        st = cairn_writer_declare(w, decls, (size_t)n, err);
    free(decls);
    free(dims);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, err);
}

/* The top-level keys of `meta` the writer accepts one by one; the others
 * are listed in `left` (a list of their names) for the warning. */
static cairn_value *holdable_keys(cairn_writer *w, const cairn_value *meta, cairn_value *left,
                                  cairn_error *why)
{
    cairn_value *kept = cairn_value_map();
    for (size_t k = 0; kept && k < cairn_value_count(meta); k++) {
        const char *key = cairn_value_key_at(meta, k);
        cairn_error err = {0};
        cairn_value *one = cairn_value_map(), *child = cairn_value_clone(cairn_value_at(meta, k));
        cairn_status st = CAIRN_E_NOMEM;
        if (one && child && (st = cairn_value_set(one, key, child, &err)) == CAIRN_OK)
            child = NULL; /* one owns it */
        cairn_value_free(child);
        if (st == CAIRN_OK && (st = cairn_writer_set_metadata(w, one, &err)) == CAIRN_OK) {
            child = cairn_value_clone(cairn_value_at(meta, k));
            if (!child || cairn_value_set(kept, key, child, &err) != CAIRN_OK) {
                cairn_value_free(child);
                cairn_value_free(kept);
                kept = NULL;
            }
        } else {
            cairn_value *name = cairn_value_string(key);
            if (name && cairn_value_append(left, name, &err) != CAIRN_OK)
                cairn_value_free(name);
            if (cairn_value_count(left) == 1)
                *why = err;
        }
        cairn_value_free(one);
    }
    return kept;
}

/* Carries the metadata; what the target cannot hold is left out, key by
 * key, with a warning naming the keys and the first reason. */
static int copy_metadata(cairn_file *in, cairn_writer *w, const char *out)
{
    cairn_error err = {0}, why = {0};
    cairn_value *meta = NULL, *left = cairn_value_list(), *kept = NULL;
    cairn_status st = cairn_file_read_metadata(in, &meta, &err);
    if (st != CAIRN_OK || !left) {
        cairn_value_free(left);
        return cli_report(st != CAIRN_OK ? st : CAIRN_E_NOMEM, &err);
    }
    if (cairn_value_count(meta))
        st = cairn_writer_set_metadata(w, meta, &err);
    if (st == CAIRN_E_UNSUPPORTED) {
        why = err;
        kept = holdable_keys(w, meta, left, &why);
        st = kept ? cairn_writer_set_metadata(w, kept, &err) : CAIRN_E_NOMEM;
    }
    size_t n = cairn_value_count(left);
    if (n) {
        fprintf(stderr, "%s: warning: %s cannot hold %zu metadata key%s, left out:", cli_prog,
                out, n, n == 1 ? "" : "s");
        for (size_t k = 0; k < n && k < 20; k++) {
            const char *name = NULL;
            size_t len = 0;
            cairn_value_get_data(cairn_value_at(left, k), (const void **)&name, &len);
            fprintf(stderr, " %.*s", (int)len, name);
        }
        fprintf(stderr, "%s (%s)\n", n > 20 ? " ..." : "", why.message);
    }
    cairn_value_free(kept);
    cairn_value_free(left);
    cairn_value_free(meta);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

int cmd_convert(int argc, char **argv)
{
    if (cli_wants_help(argc, argv))
        return fputs(convert_help, stdout), EXIT_OK;
    convert_args a;
    int rc = parse_args(argc, argv, &a);
    cairn_file *in = NULL;
    if (rc == EXIT_OK)
        rc = cli_open_input(a.in, 0, &in);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_write_opts wo = a.compress;
    wo.struct_size = sizeof wo;
    wo.flags = a.no_sync ? CAIRN_WRITE_NO_SYNC : 0;
    wo.format = a.to;
    wo.alignment = a.align;
    cairn_writer *w = NULL;
    cairn_status st = cairn_writer_open_path(a.out, &wo, &w, &err);
    if (st != CAIRN_OK) {
        cairn_file_close(in);
        return cli_report(st, &err);
    }
    cairn_file_info fi;
    progress p = {0};
    if (cairn_file_get_info(in, &fi, &err) == CAIRN_OK)
        p.total = fi.payload_bytes;
    p.on = !a.no_progress && isatty(STDERR_FILENO) && p.total > (64u << 20);
    p.last_percent = -1;
    rc = copy_metadata(in, w, a.out);
    if (rc == EXIT_OK)
        rc = declare_all(in, w, &err);
    for (uint64_t i = 0; rc == EXIT_OK && i < cairn_file_count(in); i++) {
        cairn_tensor_info t;
        rc = copy_tensor(in, i, w, &err);
        if (rc == EXIT_OK && cairn_tensor_info_at(in, i, &t, &err) == CAIRN_OK)
            progress_update(&p, t.stored_size);
    }
    cairn_file_close(in);
    if (rc != EXIT_OK) {
        cairn_writer_abort(w);
        return rc;
    }
    st = cairn_writer_commit(w, &err);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}
