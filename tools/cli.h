/*
 * cli.h -- what the commands of the `cairn` tool share: exit codes, error
 * reporting, opening inputs, option helpers and JSON output. It uses the
 * public API (cairn.h) only, as every command does.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <cairn.h>
#include <jansson.h>

enum { EXIT_OK = 0, EXIT_BAD_INPUT = 1, EXIT_USAGE = 2, EXIT_IO = 3 };

extern const char *const cli_prog;

/* The exit code for a library status (0/1/2/3). */
int cli_exit_code(cairn_status st);
/* Prints the library's message for a failed call; returns the exit code. */
int cli_report(cairn_status st, const cairn_error *err);
/* s (len bytes) made safe for a terminal, into buf: C0 controls, DEL, C1
 * controls (U+0080..U+009F), backslash and bytes that are not UTF-8 become
 * \xNN, so a name cannot move the cursor, retitle the window or forge
 * rows; cut with "..." to fit. Returns buf. Human-readable output only:
 * JSON output keeps names exact (with JSON's own escapes). */
const char *cli_safe(const char *s, size_t len, char *buf, size_t size);
/* Room for any tensor name (4096 bytes) escaped. */
#define CLI_SAFE_MAX (4 * 4096 + 8)
/* For an HDF5 input, a warning on stderr naming the objects it holds that
 * are neither tensors nor metadata (the tree's "hdf5.skipped"). */
void cli_warn_not_carried(const cairn_file *f);
/* Prints a usage error and a hint; returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 1 when --help or -h is among the arguments. */
int cli_wants_help(int argc, char **argv);
/* Applies the environment's open settings (CAIRN_MAX_INFLATE) to opts. */
int cli_open_opts_env(cairn_open_opts *opts);
/* Opens an input of any format; reports and returns the exit code on failure. */
int cli_open_input(const char *path, unsigned flags, cairn_file **f);
/* "[2, 3]" */
void cli_shape_text(const cairn_tensor_info *t, char *buf, size_t size);
json_t *cli_shape_json(const cairn_tensor_info *t);
/* Prints and frees a JSON value; returns the exit code. */
int cli_print_json(json_t *j);
const char *cli_codec_name(uint32_t codec);
/* "none", or "zstd:3+shuffle": codec, level and filter of a tensor. */
void cli_codec_text(const cairn_tensor_info *t, char *buf, size_t size);
/* raw / stored (1 for empty tensors). */
double cli_ratio(uint64_t raw, uint64_t stored);
/* --compress CODEC[:LEVEL] into o->codec and o->level; a usage error otherwise. */
int cli_parse_compress(const char *spec, cairn_write_opts *o);
/* A byte count with an optional K or M suffix. */
int cli_parse_size(const char *opt, const char *text, uint64_t *out);
/* Options shared by pack and convert: --compress, --shuffle, --chunk-size,
 * --threads. Returns 1 when argv[*i] was one of them (advancing *i past its
 * value), 0 when not, or -1 - exit code on a usage error. */
int cli_compress_option(int argc, char **argv, int *i, cairn_write_opts *o);

/* The end of every command's option loop, so that options may come anywhere
 * (as getopt permutes them): --inert sets CAIRN_OPEN_INERT in *open_flags
 * (read pickle and joblib files as inert data; an unknown option when
 * open_flags is NULL); "--" makes every later
 * argument positional; any other "--NAME" is an unknown option; the rest
 * goes into pos[*npos] (at most max). Advances *i past what it used; returns
 * EXIT_OK or a usage error's exit code. */
int cli_other_arg(const char *cmd, int argc, char **argv, int *i, unsigned *open_flags,
                  const char **pos, int *npos, int max);
/* A command without options of its own: exactly N positional arguments into
 * pos[] (WHAT names them in the usage error), and --inert when open_flags is
 * not NULL. */
int cli_positional_args(const char *cmd, int argc, char **argv, unsigned *open_flags,
                        const char **pos, int n, const char *what);
/* Parses "FILE [--json] [--inert]" and opens FILE (--inert: pickles as data). */
int cli_open_file_args(const char *cmd, int argc, char **argv, cairn_file **f, int *as_json);
/* Finds NAME in the open file PATH and returns its bytes in its own dtype,
 * verified; zero-copy when possible (*owned is then NULL). Opens *f. */
int cli_load_tensor(const char *path, const char *name, unsigned flags, cairn_file **f,
                    cairn_tensor_info *t, const void **data, void **owned);
/* Writes all of DATA to FD (retrying short writes); 0, or -1 with errno. */
int cli_write_all(int fd, const void *data, size_t len);
/* The columns a terminal gives NAME (LEN bytes of UTF-8): wcwidth of each
 * character decoded in a C.UTF-8 locale object (the process locale is left
 * alone), wide East-Asian characters 2, combining marks 0; a byte that is
 * not UTF-8, or a character without a width, counts 1. */
size_t cli_text_width(const char *name, size_t len);
/* Prints NAME then spaces up to WIDTH display columns (none when wider). */
void cli_print_padded(const char *name, size_t len, size_t width);
/* 1 when PATH is a directory. */
int cli_is_dir(const char *path);
/* A key id as hex on stdout. */
void cli_print_key_id(const uint8_t *id);

/* One command of the tool: tools/cmd_NAME.c defines `cli_cmd_NAME`, and
 * tools/main.c lists NAME in its table. */
typedef struct cli_command {
    const char *name;
    const char *overview; /* its lines in `cairn --help` */
    const char *help;     /* `cairn NAME --help` */
    /* argv[0] is the command name; returns the exit code. */
    int (*run)(int argc, char **argv);
} cli_command;

#endif
