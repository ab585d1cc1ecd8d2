# One rank hits ENOSPC (the checkpoint directory on a 2 MiB tmpfs, rank 1's
# piece 3 MiB): every rank returns the error naming rank 1, nothing is
# committed, no staging directory is left, and the first checkpoint resumes.
. "$(dirname "$0")/lib.bash"
mnt=$WORK/small
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>"$WORK/mount.err"; then
    echo "SKIP: cannot mount a small tmpfs: $(cat "$WORK/mount.err")"
    exit 77
fi
trap 'umount "$mnt"; rm -rf "$WORK"' EXIT
run_mpi 3 mpi_ckpt_test enospc "$mnt/ckpt" $((3 << 20)) || fail "ENOSPC on one rank"
"$CLI" verify "$mnt/ckpt/ckpt-00000001" || fail "first checkpoint after the failed save"
[ ! -e "$mnt/ckpt/ckpt-00000002" ] || fail "the failed save was committed"
finish
