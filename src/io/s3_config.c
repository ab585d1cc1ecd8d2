/* s3_config.c -- s3:// URLs and where an S3 handle's settings come from
 * (environment, ~/.aws/credentials, ~/.aws/config), per docs/STORAGE.md. */
#include "io/s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE_MAX ((size_t)1 << 20)

int cairn__s3_is_url(const char *path) { return path && strncmp(path, "s3://", 5) == 0; }

static int bucket_ok(const char *b, size_t n)
{
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return 0;
        if ((i == 0 || i == n - 1) && !alnum)
            return 0;
    }
    return 1;
}

cairn_status cairn__s3_url_parse(const char *url, int allow_prefix, char **bucket, char **key,
                                 cairn_error *err)
{
    *bucket = *key = NULL;
    char shown[96];
    if (!cairn__s3_is_url(url))
        return cairn__fail(err, CAIRN_E_ARG, "not an s3:// URL");
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    const char *k = slash ? slash + 1 : "";
    size_t kl = strlen(k);
    if (!bucket_ok(b, bl))
        return cairn__fail(err, CAIRN_E_ARG,
                           "%s: bad bucket name (3..63 characters of a-z 0-9 . -)",
                           cairn__printable(url, strlen(url), shown, sizeof shown));
    if ((kl == 0 && !allow_prefix) || kl > 1024 || !cairn__utf8_valid(k, kl))
        return cairn__fail(err, CAIRN_E_ARG, "%s: the key must be 1..1024 bytes of UTF-8",
                           cairn__printable(url, strlen(url), shown, sizeof shown));
    for (size_t i = 0; i < kl; i++)
        if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f)
            return cairn__fail(err, CAIRN_E_ARG, "%s: control character in the key",
                               cairn__printable(url, strlen(url), shown, sizeof shown));
    *bucket = strndup(b, bl);
    *key = strdup(k);
    if (!*bucket || !*key) {
        free(*bucket);
        free(*key);
        *bucket = *key = NULL;
        return cairn__fail(err, CAIRN_E_NOMEM, "s3 URL: out of memory");
    }
    return CAIRN_OK;
}

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

/* Reads a small INI file (NULL if absent or larger than CONFIG_FILE_MAX). */
static char *read_small(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > CONFIG_FILE_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* The value of `name` in section `section` of an INI text (malloc'ed), or NULL. */
static char *ini_get(const char *text, const char *section, const char *name)
{
    char *copy = strdup(text), *save = NULL, *result = NULL;
    int in = 0;
    if (!copy)
        return NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *t = trim(line);
        if (*t == '#' || *t == ';' || *t == '\0')
            continue;
        if (*t == '[') {
            char *close = strchr(t, ']');
            if (close) {
                *close = '\0';
                in = strcmp(trim(t + 1), section) == 0;
            }
            continue;
        }
        char *eq = strchr(t, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        if (strcmp(trim(t), name) == 0) {
            free(result);
            result = strdup(trim(eq + 1));
        }
    }
    free(copy);
    return result;
}

static char *home_file(const char *env, const char *rel)
{
    const char *v = getenv(env);
    if (v && *v)
        return strdup(v);
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    size_t n = strlen(home) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", home, rel);
    return p;
}

void cairn__s3_config_free(cairn__s3_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->endpoint);
    free(cfg->region);
    free(cfg->access_key);
    if (cfg->secret_key)
        memset(cfg->secret_key, 0, strlen(cfg->secret_key));
    free(cfg->secret_key);
    free(cfg->session_token);
    free(cfg->ca_bundle);
    memset(cfg, 0, sizeof *cfg);
}

/* A size as the AWS CLI's multipart_threshold spells it: digits and an
 * optional binary unit (K/KB/KiB, M/MB/MiB, G/GB/GiB; "8MB" is 8 MiB). */
static int parse_size(const char *v, uint64_t *out)
{
    char *end;
    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return -1;
    static const struct { const char *unit[3]; unsigned shift; } units[] = {
        {{"", "B", ""}, 0}, {{"K", "KB", "KiB"}, 10}, {{"M", "MB", "MiB"}, 20},
        {{"G", "GB", "GiB"}, 30},
    };
    for (size_t u = 0; u < sizeof units / sizeof *units; u++)
        for (int i = 0; i < 3; i++) {
            if ((i == 2 && u == 0) || strcmp(end, units[u].unit[i]) != 0)
                continue;
            if (n > (UINT64_MAX >> units[u].shift))
                return -1;
            *out = (uint64_t)n << units[u].shift;
            return 0;
        }
    return -1;
}

cairn_status cairn__s3_config_env(cairn__s3_config *cfg, cairn_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_attempts = 5;
    cfg->base_delay_ms = 50;
    cfg->max_delay_ms = 5000;
    cfg->connect_timeout_ms = 10000;
    cfg->stall_seconds = 30;
    cfg->multipart_threshold = CAIRN__S3_THRESHOLD_MIN;
    const char *threshold = getenv("CAIRN_S3_MULTIPART_THRESHOLD");
    if (threshold && *threshold &&
        (parse_size(threshold, &cfg->multipart_threshold) != 0 ||
         cfg->multipart_threshold < CAIRN__S3_THRESHOLD_MIN ||
         cfg->multipart_threshold > CAIRN__S3_THRESHOLD_MAX))
        return cairn__fail(err, CAIRN_E_ARG,
                           "CAIRN_S3_MULTIPART_THRESHOLD must be a size from 8M to 5G "
                           "(such as 64M or 1G)");
    const char *attempts = getenv("AWS_MAX_ATTEMPTS");
    if (attempts && *attempts) {
        char *end;
        long v = strtol(attempts, &end, 10);
        if (*end || v < 1 || v > 20)
            return cairn__fail(err, CAIRN_E_ARG, "AWS_MAX_ATTEMPTS must be 1..20");
        cfg->max_attempts = (int)v;
    }

    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile)
        profile = "default";
    char *cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    char *conf_path = home_file("AWS_CONFIG_FILE", ".aws/config");
    char *creds = cred_path ? read_small(cred_path) : NULL;
    char *conf = conf_path ? read_small(conf_path) : NULL;
    char shown[96];
    snprintf(cfg->key_source, sizeof cfg->key_source, "profile %s of %s",
             cairn__printable(profile, strlen(profile), shown, sizeof shown),
             cred_path ? cred_path : "~/.aws/credentials");
    free(cred_path);
    free(conf_path);

    char *id = env_dup("AWS_ACCESS_KEY_ID"), *secret = env_dup("AWS_SECRET_ACCESS_KEY");
    if (!id != !secret) {
        free(id);
        free(secret);
        free(creds);
        free(conf);
        return cairn__fail(err, CAIRN_E_ARG,
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    }
    if (id) {
        cfg->session_token = env_dup("AWS_SESSION_TOKEN");
        snprintf(cfg->key_source, sizeof cfg->key_source, "AWS_ACCESS_KEY_ID");
    } else if (creds) {
        id = ini_get(creds, profile, "aws_access_key_id");
        secret = ini_get(creds, profile, "aws_secret_access_key");
        cfg->session_token = ini_get(creds, profile, "aws_session_token");
        if (!id || !secret || !*id || !*secret) {
            free(id);
            free(secret);
            id = secret = NULL;
        }
    }
    cfg->access_key = id;
    cfg->secret_key = secret;
    if (!id) {
        free(cfg->session_token);
        cfg->session_token = NULL;
    }

    cfg->region = env_dup("AWS_REGION");
    if (!cfg->region)
        cfg->region = env_dup("AWS_DEFAULT_REGION");
    if (!cfg->region && conf) {
        char section[300];
        if (strcmp(profile, "default") == 0)
            snprintf(section, sizeof section, "default");
        else
            snprintf(section, sizeof section, "profile %s", profile);
        cfg->region = ini_get(conf, section, "region");
    }
    if (!cfg->region)
        cfg->region = strdup("us-east-1");
    free(creds);
    free(conf);

    cfg->endpoint = env_dup("AWS_ENDPOINT_URL_S3");
    if (!cfg->endpoint)
        cfg->endpoint = env_dup("AWS_ENDPOINT_URL");
    cfg->path_style = cfg->endpoint != NULL;
    if (!cfg->endpoint && cfg->region) {
        size_t n = strlen(cfg->region) + 40;
        cfg->endpoint = malloc(n);
        if (cfg->endpoint)
            snprintf(cfg->endpoint, n, "https://s3.%s.amazonaws.com", cfg->region);
    }
    const char *addressing = getenv("CAIRN_S3_ADDRESSING");
    if (addressing && strcmp(addressing, "path") == 0)
        cfg->path_style = 1;
    else if (addressing && strcmp(addressing, "virtual") == 0)
        cfg->path_style = 0;
    else if (addressing && *addressing) {
        cairn__s3_config_free(cfg);
        return cairn__fail(err, CAIRN_E_ARG, "CAIRN_S3_ADDRESSING must be path or virtual");
    }
    cfg->ca_bundle = env_dup("AWS_CA_BUNDLE");
    const char *unsigned_payload = getenv("CAIRN_S3_UNSIGNED_PAYLOAD");
    cfg->unsigned_payload = unsigned_payload && strcmp(unsigned_payload, "1") == 0;
    if (!cfg->region || !cfg->endpoint) {
        cairn__s3_config_free(cfg);
        return cairn__fail(err, CAIRN_E_NOMEM, "s3 settings: out of memory");
    }
    return CAIRN_OK;
}

cairn_status cairn__s3_open_url(const char *url, int allow_prefix, cairn__s3 **s, char **bucket,
                                char **key, cairn_error *err)
{
    *s = NULL;
    CAIRN_TRY(cairn__s3_url_parse(url, allow_prefix, bucket, key, err));
    cairn__s3_config cfg;
    cairn_status st = cairn__s3_config_env(&cfg, err);
    if (st == CAIRN_OK) {
        st = cairn__s3_open(s, &cfg, err);
        cairn__s3_config_free(&cfg);
    }
    if (st != CAIRN_OK) {
        free(*bucket);
        free(*key);
        *bucket = *key = NULL;
    }
    return st;
}
