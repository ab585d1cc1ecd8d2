/* mpi_s3_save.c -- the commit of a distributed checkpoint on an object
 * store (docs/DISTRIBUTED.md "On an object store"): the rank objects are
 * already complete under PATH/<rank_dir>/; rank 0 gathers every rank's
 * (status, size, index hash) and creates the manifest PATH/manifest.cairn
 * with If-None-Match: * -- its creation is the commit, so of two jobs
 * saving one checkpoint exactly one wins. Nothing is read back, and there
 * is no rename and no fsync on an object store. */
#include "mpi_save.h"

#include <stdio.h>
#include <string.h>

cairn_status cairn__mpi_save_finish_remote(cairn_mpi_save *s, cairn__mpi_times *times,
                                           cairn_error *err)
{
    uint64_t id[2] = {s->fsize, s->fhash};
    MPI_Gather(id, 2, MPI_UINT64_T, s->ids, 2, MPI_UINT64_T, 0, s->comm);
    s->times.gathered = s->times.file_synced = cairn__mpi_now();
    cairn_error tmp = s->werr;
    /* every rank's object complete, or the first failing rank's error */
    cairn_status st = cairn__mpi_agree(s->comm, s->wst, &tmp);
    s->times.agreed = cairn__mpi_now();
    if (st == CAIRN_OK) {
        if (s->me == 0) {
            char path[4200];
            snprintf(path, sizeof path, "%s/manifest.cairn", s->path);
            st = cairn__mpi_put_manifest(s, s->ids, path, CAIRN_WRITE_NO_REPLACE, &tmp);
            if (st == CAIRN_E_EXISTS)
                cairn__mpi_fail(&tmp, st, "%s: already exists (another save committed this "
                                "checkpoint first; a checkpoint is never replaced)", s->path);
            s->times.manifest_synced = s->times.staging_synced = s->times.renamed =
                s->times.parent_synced = cairn__mpi_now();
        }
        st = cairn__mpi_bcast_status(s->comm, 0, st, &tmp);
    }
    s->times.result = cairn__mpi_now();
    /* Not committed: each rank removes its own object (in parallel). One
     * that dies first leaves an object no manifest names: unreachable, and
     * removed by the manager's cleanup of uncommitted checkpoints. */
    if (st != CAIRN_OK && s->written)
        (void)cairn_store_remove(s->file, NULL);
    if (st != CAIRN_OK && err)
        *err = tmp;
    if (times)
        *times = s->times;
    cairn_mpi_save_abort(s);
    return st;
}
