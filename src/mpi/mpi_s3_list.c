/* mpi_s3_list.c -- distributed checkpoints under an object-store key prefix
 * (docs/DISTRIBUTED.md "On an object store"): listing a prefix as
 * checkpoints (committed = a manifest object exists) and removing one,
 * through the public object-store calls of cairn/store.h. */
#include "mpi_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST "manifest.cairn"

typedef struct keys {
    char **v;
    size_t n, cap;
    int failed;
} keys;

static int collect_key(void *ctx, const char *name, uint64_t size)
{
    (void)size;
    keys *k = ctx;
    if (k->n == k->cap) {
        size_t nc = k->cap ? 2 * k->cap : 16;
        char **nv = realloc(k->v, nc * sizeof *nv);
        if (!nv)
            return k->failed = 1;
        k->v = nv;
        k->cap = nc;
    }
    if (!(k->v[k->n] = strdup(name)))
        return k->failed = 1;
    k->n++;
    return 0;
}

static void keys_free(keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
}

void cairn__mpi_remote_remove_dir(const char *url)
{
    char pfx[4200], key[8400];
    snprintf(pfx, sizeof pfx, "%s/", url);
    keys k = {0};
    if (cairn_store_list(pfx, collect_key, &k, NULL) == CAIRN_OK && !k.failed) {
        /* the manifest first: from then on the rest is an uncommitted
         * leftover, never a checkpoint with rank objects missing */
        snprintf(key, sizeof key, "%s%s", pfx, MANIFEST);
        int ok = cairn_store_remove(key, NULL) == CAIRN_OK;
        for (size_t i = 0; ok && i < k.n; i++) {
            if (!strcmp(k.v[i], MANIFEST))
                continue;
            snprintf(key, sizeof key, "%s%s", pfx, k.v[i]);
            (void)cairn_store_remove(key, NULL);
        }
    }
    keys_free(&k);
}

static int exact_key(void *ctx, const char *name, uint64_t size)
{
    (void)size;
    int *found = ctx;
    *found |= name[0] == '\0'; /* the listed prefix is the manifest's whole key */
    return *found;
}

cairn_status cairn__mpi_remote_committed(const char *url, int *committed, cairn_error *err)
{
    char key[4200];
    snprintf(key, sizeof key, "%s/%s", url, MANIFEST);
    *committed = 0;
    return cairn_store_list(key, exact_key, committed, err);
}

typedef struct scan_state {
    cairn__mpi_found_fn fn;
    void *ctx;
    char leaf[512]; /* the first path component being gathered */
    int committed, have, stop;
} scan_state;

static void emit(scan_state *s)
{
    if (s->have && !s->stop)
        s->stop = s->fn(s->ctx, s->leaf, s->committed);
    s->have = 0;
}

static int scan_key(void *ctx, const char *name, uint64_t size)
{
    (void)size;
    scan_state *s = ctx;
    const char *slash = strchr(name, '/');
    if (!slash) /* a plain object beside the checkpoints: not one */
        return 0;
    size_t len = (size_t)(slash - name);
    if (len >= sizeof s->leaf)
        return 0;
    /* keys are listed in order, so one prefix's keys come together */
    if (!s->have || strncmp(s->leaf, name, len) || s->leaf[len]) {
        emit(s);
        memcpy(s->leaf, name, len);
        s->leaf[len] = '\0';
        s->committed = 0;
        s->have = 1;
    }
    if (!strcmp(slash + 1, MANIFEST))
        s->committed = 1;
    return s->stop;
}

cairn_status cairn__mpi_remote_scan(const char *dir, cairn__mpi_found_fn fn, void *ctx,
                                    cairn_error *err)
{
    char pfx[4200];
    snprintf(pfx, sizeof pfx, "%s/", dir);
    scan_state s = {.fn = fn, .ctx = ctx};
    cairn_status st = cairn_store_list(pfx, scan_key, &s, err);
    if (st == CAIRN_OK)
        emit(&s);
    return st;
}
