/* cmd_convert.c -- `cairn convert IN OUT [--to FORMAT]`: any format the
 * library reads into any format it writes, tensors byte for byte, metadata
 * where the target can hold it (with a warning naming what it cannot);
 * with --shard-size, a sharded safetensors model (shards + index). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char convert_help[] =
    "usage: cairn convert IN OUT [--to FORMAT] [--align N] [--no-sync] [--no-progress]\n"
    "                     [--compress CODEC[:LEVEL]] [--shuffle] [--chunk-size N] [--threads N]\n"
    "                     [--shard-size SIZE] [--inert]\n"
    "\n"
    "Converts between the formats cairn reads and writes. IN's format is\n"
    "detected by content. The output format comes from --to (cairn, npy,\n"
    "safetensors, npz, gguf, torch, mxnet, hdf5, json) or OUT's extension (.npy,\n"
    ".safetensors, .npz, .gguf, .pt or .pth, .params, .h5 or .hdf5, .json;\n"
    "anything else: cairn). json is one JSON document that people and other\n"
    "languages read: every tensor's name, dtype, shape and values as nested\n"
    "lists, and the metadata; it converts back to the same bits. --inert reads a pickle or joblib IN (a scikit-learn model)\n"
    "as inert data, nothing in it run, and converts its arrays. Tensors are\n"
    "copied byte for byte (checksums verified on the way when IN has them).\n"
    "Metadata is carried where the target can hold it; otherwise a warning\n"
    "says what was left out. A tensor the target cannot hold (a dtype it has\n"
    "no name for, a second tensor in an .npy) stops the conversion with an\n"
    "error, and OUT is left untouched: the output appears only when complete.\n"
    "A progress bar is drawn on stderr when it is a terminal and IN holds more\n"
    "than 64 MiB.\n"
    "--compress, --shuffle, --chunk-size and --threads compress the tensors of a\n"
    "cairn output as 'cairn pack' does (see its help); other formats refuse them.\n"
    "Without --compress a cairn output is uncompressed, whatever IN was.\n"
    "--shard-size SIZE writes a sharded safetensors model as huggingface_hub\n"
    "does: OUT must be NAME.safetensors; the tensors, in IN's order, go into\n"
    "NAME-00001-of-0000N.safetensors, ... (a shard is closed when the next tensor\n"
    "would take it past SIZE; a tensor larger than SIZE gets a shard of its\n"
    "own), then NAME.safetensors.index.json is written last, atomically. When\n"
    "everything fits in SIZE, OUT is one plain file and no index is written.\n"
    "SIZE is bytes, or with K, M, G, T (also KiB, MiB, GiB, TiB: powers of 1024)\n"
    "or KB, MB, GB, TB (powers of 1000, as in huggingface_hub's \"5GB\"). Every\n"
    "shard carries the metadata except keys holding tensor references (left\n"
    "out, with a warning). Existing files of those names are replaced; other\n"
    "files (shards of an earlier, longer split) are left alone.\n";

typedef struct convert_args {
    const char *in, *out;
    cairn_format to;
    uint64_t align;
    int no_sync, no_progress;
    unsigned open_flags; /* --inert */
    uint64_t shard_size; /* --shard-size; 0: one output file */
    cairn_write_opts compress; /* codec, level, filter, chunk_size, threads */
} convert_args;

static int format_from_name(const char *name, cairn_format *out)
{
    *out = cairn_format_from_name(name);
    if (*out != CAIRN_FORMAT_AUTO && cairn_format_extensions(*out))
        return EXIT_OK;
    return cli_usage_error("convert: unknown format '%s'", name);
}

/* --shard-size: bytes, K/M/G/T or KiB/MiB/GiB/TiB (powers of 1024), or
 * KB/MB/GB/TB (powers of 1000, huggingface_hub's max_shard_size="5GB"
 * meaning); suffixes in any case. */
static int parse_shard_size(const char *text, uint64_t *out)
{
    static const struct { const char *suffix; uint64_t mult; } units[] = {
        {"", 1}, {"B", 1},
        {"K", 1ull << 10}, {"KiB", 1ull << 10}, {"KB", 1000ull},
        {"M", 1ull << 20}, {"MiB", 1ull << 20}, {"MB", 1000000ull},
        {"G", 1ull << 30}, {"GiB", 1ull << 30}, {"GB", 1000000000ull},
        {"T", 1ull << 40}, {"TiB", 1ull << 40}, {"TB", 1000000000000ull},
    };
    char *end;
    errno = 0;
    unsigned long long v = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (text[0] < '0' || text[0] > '9' || errno == ERANGE)
        return cli_usage_error("--shard-size wants a size (e.g. 500M or 5GB), got '%s'", text);
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (strcasecmp(end, units[u].suffix))
            continue;
        if (!v || v > UINT64_MAX / units[u].mult)
            return cli_usage_error("--shard-size wants a size from 1 byte to 2^64-1, got '%s'",
                                   text);
        *out = v * units[u].mult;
        return EXIT_OK;
    }
    return cli_usage_error("--shard-size: unknown unit in '%s' (K, M, G, T or KiB... are "
                           "powers of 1024; KB, MB, GB, TB powers of 1000)", text);
}

/* Sharded output is safetensors named NAME.safetensors, whose stem names
 * the shards; a shard name must be one the index reader accepts (bare,
 * not starting with '.'). */
static int check_shard_args(const convert_args *a)
{
    static const char ext[] = ".safetensors";
    size_t len = strlen(a->out), elen = sizeof ext - 1;
    const char *slash = strrchr(a->out, '/');
    const char *base = slash ? slash + 1 : a->out;
    if (a->to && a->to != CAIRN_FORMAT_SAFETENSORS)
        return cli_usage_error("convert: --shard-size writes safetensors only, not %s",
                               cairn_format_name(a->to));
    if (len < elen || strcmp(a->out + len - elen, ext))
        return cli_usage_error("convert: --shard-size needs OUT named NAME.safetensors, got '%s'",
                               a->out);
    if (base[0] == '.')
        return cli_usage_error("convert: --shard-size: '%s' would give shard names starting "
                               "with '.', which an index cannot name", a->out);
    return EXIT_OK;
}

static int parse_args(int argc, char **argv, convert_args *a)
{
    memset(a, 0, sizeof *a);
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        int rc = EXIT_OK;
        if (!strcmp(argv[i], "--to") && i + 1 < argc) {
            rc = format_from_name(argv[++i], &a->to);
        } else if (!strcmp(argv[i], "--align") && i + 1 < argc) {
            char *end;
            a->align = strtoull(argv[++i], &end, 10);
            if (*end || !a->align)
                rc = cli_usage_error("--align wants a number, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--shard-size") && i + 1 < argc) {
            rc = parse_shard_size(argv[++i], &a->shard_size);
        } else if (!strcmp(argv[i], "--no-sync")) {
            a->no_sync = 1;
        } else if (!strcmp(argv[i], "--no-progress")) {
            a->no_progress = 1;
        } else if ((rc = cli_compress_option(argc, argv, &i, &a->compress)) != 0) {
            rc = rc < 0 ? -1 - rc : EXIT_OK;
        } else {
            rc = cli_other_arg("convert", argc, argv, &i, &a->open_flags, pos, &npos, 2);
        }
        if (rc != EXIT_OK)
            return rc;
    }
    a->in = pos[0];
    a->out = pos[1];
    if (!a->in || !a->out)
        return cli_usage_error("%s", "convert: needs IN and OUT");
    return a->shard_size ? check_shard_args(a) : EXIT_OK;
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
        char shown[CLI_SAFE_MAX];
        if (!owned)
            return fprintf(stderr, "%s: tensor '%s': out of memory\n", cli_prog,
                           cli_safe(t.name, t.name_len, shown, sizeof shown)), EXIT_IO;
        st = cairn_tensor_read(in, i, t.dtype, owned, (size_t)t.raw_size, CAIRN_READ_VERIFY, err);
        data = owned;
    }
    if (st == CAIRN_OK)
        st = cairn_writer_add(w, t.name, t.dtype, t.rank, t.dims, data, err);
    free(owned);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, err);
}

/* Announces tensors lo..hi-1 of IN before the first add (after the
 * metadata), so a header-first target (safetensors, GGUF) lays itself out
 * now and writes each payload once, in place, instead of spooling it and
 * copying it behind the header at commit; every target checks its rules up
 * front. */
static int declare_range(cairn_file *in, uint64_t lo, uint64_t hi, cairn_writer *w,
                         cairn_error *err)
{
    uint64_t n = hi - lo, total_rank = 0;
    cairn_tensor_info t;
    cairn_status st = CAIRN_OK;
    for (uint64_t i = lo; st == CAIRN_OK && i < hi; i++)
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
    for (uint64_t i = lo; st == CAIRN_OK && i < hi; i++) {
        if ((st = cairn_tensor_info_at(in, i, &t, err)) != CAIRN_OK)
            break;
        memcpy(next, t.dims, t.rank * sizeof *next);
        /* names live until close */
        decls[i - lo] = (cairn_tensor_decl){t.name, t.dtype, t.rank, next};
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

/* Gives `meta` to the writer; what the target cannot hold is left out, key
 * by key, with a warning naming `out`, the keys and the first reason (only
 * when `warn`: the shards of one output would repeat it). */
static int set_metadata(cairn_writer *w, const cairn_value *meta, const char *out, int warn)
{
    cairn_error err = {0}, why = {0};
    cairn_value *left = cairn_value_list(), *kept = NULL;
    cairn_status st = left ? CAIRN_OK : CAIRN_E_NOMEM;
    if (st == CAIRN_OK && cairn_value_count(meta))
        st = cairn_writer_set_metadata(w, meta, &err);
    if (st == CAIRN_E_UNSUPPORTED) {
        why = err;
        kept = holdable_keys(w, meta, left, &why);
        st = kept ? cairn_writer_set_metadata(w, kept, &err) : CAIRN_E_NOMEM;
    }
    size_t n = cairn_value_count(left);
    if (n && warn) {
        fprintf(stderr, "%s: warning: %s cannot hold %zu metadata key%s, left out:", cli_prog,
                out, n, n == 1 ? "" : "s");
        for (size_t k = 0; k < n && k < 20; k++) {
            const char *name = NULL;
            size_t len = 0;
            char shown[CLI_SAFE_MAX];
            cairn_value_get_data(cairn_value_at(left, k), (const void **)&name, &len);
            fprintf(stderr, " %s", cli_safe(name, len, shown, sizeof shown));
        }
        char shown[4 * sizeof why.message + 8];
        fprintf(stderr, "%s (%s)\n", n > 20 ? " ..." : "",
                cli_safe(why.message, strlen(why.message), shown, sizeof shown));
    }
    cairn_value_free(kept);
    cairn_value_free(left);
    if (st == CAIRN_E_NOMEM && !err.message[0])
        return fprintf(stderr, "%s: %s: metadata: out of memory\n", cli_prog, out), EXIT_IO;
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

/* Copies tensors lo..hi-1, advancing the progress bar. */
static int copy_range(cairn_file *in, uint64_t lo, uint64_t hi, cairn_writer *w, progress *p,
                      cairn_error *err)
{
    int rc = EXIT_OK;
    for (uint64_t i = lo; rc == EXIT_OK && i < hi; i++) {
        cairn_tensor_info t;
        rc = copy_tensor(in, i, w, err);
        if (rc == EXIT_OK && cairn_tensor_info_at(in, i, &t, err) == CAIRN_OK)
            progress_update(p, t.stored_size);
    }
    return rc;
}

/* Writes tensors lo..hi-1 of IN and `meta` to `path`, atomically: the file
 * appears only when complete. */
static int write_part(cairn_file *in, uint64_t lo, uint64_t hi, const cairn_value *meta,
                      const char *path, const cairn_write_opts *wo, const char *out, int warn,
                      progress *p)
{
    cairn_error err = {0};
    cairn_writer *w = NULL;
    cairn_status st = cairn_writer_open_path(path, wo, &w, &err);
    if (st != CAIRN_OK)
        return cli_report(st, &err);
    int rc = set_metadata(w, meta, out, warn);
    if (rc == EXIT_OK)
        rc = declare_range(in, lo, hi, w, &err);
    if (rc == EXIT_OK)
        rc = copy_range(in, lo, hi, w, p, &err);
    if (rc != EXIT_OK) {
        cairn_writer_abort(w);
        return rc;
    }
    st = cairn_writer_commit(w, &err);
    return st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
}

/* --- sharded safetensors output (docs/FORMAT.md §11.6, Writing): the
 * library writes the shards and the index (cairn_write_opts.shard_size). */

static int holds_tensor_ref(const cairn_value *v)
{
    if (cairn_value_get_type(v) == CAIRN_VALUE_TENSOR)
        return 1;
    for (size_t k = 0; k < cairn_value_count(v); k++)
        if (holds_tensor_ref(cairn_value_at(v, k)))
            return 1;
    return 0;
}

/* The metadata every shard carries: `meta` without the top-level keys that
 * hold tensor references (a shard can only name its own tensors, and the
 * index reader wants every shard's copy of a key to be the same), with a
 * warning naming them. NULL when out of memory. */
static cairn_value *shard_metadata(const cairn_value *meta, const char *out)
{
    cairn_value *kept = cairn_value_map();
    size_t left = 0;
    for (size_t k = 0; kept && k < cairn_value_count(meta); k++) {
        const char *key = cairn_value_key_at(meta, k);
        if (holds_tensor_ref(cairn_value_at(meta, k))) {
            if (!left++)
                fprintf(stderr, "%s: warning: %s: sharded output leaves out metadata holding "
                        "tensor references:", cli_prog, out);
            char shown[CLI_SAFE_MAX];
            if (left <= 20) /* as the other metadata warning: the first 20 names */
                fprintf(stderr, " %s", cli_safe(key, strlen(key), shown, sizeof shown));
            continue;
        }
        cairn_value *child = cairn_value_clone(cairn_value_at(meta, k));
        if (!child || cairn_value_set(kept, key, child, NULL) != CAIRN_OK) {
            cairn_value_free(child);
            cairn_value_free(kept);
            kept = NULL;
        }
    }
    if (left)
        fprintf(stderr, "%s (%zu key%s)\n", left > 20 ? " ..." : "", left, left == 1 ? "" : "s");
    return kept;
}

static int run(int argc, char **argv)
{
    convert_args a;
    int rc = parse_args(argc, argv, &a);
    cairn_file *in = NULL;
    if (rc == EXIT_OK)
        rc = cli_open_input(a.in, a.open_flags, &in);
    if (rc == EXIT_OK)
        cli_warn_not_carried(in);
    if (rc != EXIT_OK)
        return rc;
    cairn_error err = {0};
    cairn_write_opts wo = a.compress;
    wo.struct_size = sizeof wo;
    wo.flags = a.no_sync ? CAIRN_WRITE_NO_SYNC : 0;
    wo.format = a.shard_size ? CAIRN_FORMAT_SAFETENSORS : a.to;
    wo.alignment = a.align;
    wo.shard_size = a.shard_size;
    cairn_file_info fi;
    progress p = {0};
    if (cairn_file_get_info(in, &fi, &err) == CAIRN_OK)
        p.total = fi.payload_bytes;
    p.on = !a.no_progress && isatty(STDERR_FILENO) && p.total > (64u << 20);
    p.last_percent = -1;
    cairn_value *meta = NULL;
    cairn_status st = cairn_file_read_metadata(in, &meta, &err);
    rc = st == CAIRN_OK ? EXIT_OK : cli_report(st, &err);
    if (rc == EXIT_OK && a.shard_size) { /* the shards cannot carry tensor references */
        cairn_value *kept = shard_metadata(meta, a.out);
        cairn_value_free(meta);
        meta = kept;
        if (!meta)
            rc = (fprintf(stderr, "%s: %s: out of memory\n", cli_prog, a.out), EXIT_IO);
    }
    if (rc == EXIT_OK)
        rc = write_part(in, 0, cairn_file_count(in), meta, a.out, &wo, a.out, 1, &p);
    cairn_value_free(meta);
    cairn_file_close(in);
    return rc;
}

const cli_command cli_cmd_convert = {
    "convert",
    "  convert IN OUT [--to FORMAT] [--compress CODEC[:LEVEL]] [--shuffle]\n"
    "                         between cairn, npy, safetensors, npz, gguf, torch,\n"
    "                         mxnet, hdf5, json (and from pickle/joblib with --inert)\n",
    convert_help,
    run,
};
