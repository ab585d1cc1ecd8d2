#!/usr/bin/env bash
# cli_rss.sh -- the peak-memory rule: a file of S bytes never makes any
# command exceed 16 x S + 160 MiB. Every command that reads a file (ls, info,
# meta, verify, cat, show, convert, diff, unpack) runs over every file of the
# malformed corpora (tests/corpus, fuzz/corpus) and over hostile files made
# here (HDF5 fill values and a gzip bomb, string datasets, an npy shape whose
# zero hides an overflow, 10,000 empty safetensors entries, GGUF arrays of 1M
# numbers and 256K empty strings); /usr/bin/time measures each peak RSS. A
# crash (signal) or a hang (10 s, 30 s under ASan) fails too. Known breaks,
# each with its reason, are listed in tests/cli_rss_known.txt and reported as
# KNOWN instead of failing.
# Under ASan (CAIRN_SANITIZE) the quarantine is off and the allowance grows
# by ASan's shadow (1/8) and its baseline (the RSS of `cairn --version`).
SRC=$(cd "${CAIRN_SOURCE_DIR:-$(dirname "$0")/..}" && pwd)
. "$(dirname "$0")/lib/cli.sh"
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing (Debian package time): skipped"; exit 77; }
mkdir -p hostile
if "$PY" -c "import h5py" 2>/dev/null; then
    "$PY" "$SRC/tests/hdf5_hostile_gen.py" hostile >/dev/null || bad "hdf5_hostile_gen.py failed"
    rm -f hostile/big.h5 hostile/big_bad.h5 # large on purpose: read whole, within the rule
else
    echo "h5py missing: the HDF5 hostile files are left out"
fi
"$PY" - <<'PY'
import json, struct
h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 18446744073709551615, 0), }"
h += b' ' * (118 - len(h)) + b'\n'
open('hostile/huge0.npy', 'wb').write(b'\x93NUMPY\x01\x00' + len(h).to_bytes(2, 'little') + h)
hdr = {'t%05d' % i: {'dtype': 'F32', 'shape': [0], 'data_offsets': [0, 0]} for i in range(10000)}
t = json.dumps(hdr, separators=(',', ':')).encode()
open('hostile/many.safetensors', 'wb').write(struct.pack('<Q', len(t)) + t)
# GGUF metadata arrays (packed in the tree): 1M UINT8 values, 256K empty strings.
def gguf(path, elem, count, payload):
    k = b'x.big'
    open(path, 'wb').write(b'GGUF' + struct.pack('<IQQ', 3, 0, 1) + struct.pack('<Q', len(k)) + k +
                           struct.pack('<IIQ', 9, elem, count) + payload)
gguf('hostile/u8array.gguf', 0, 1 << 20, bytes(range(256)) * (1 << 12))
gguf('hostile/emptystr.gguf', 8, 1 << 18, bytes(2 << 20))
PY

case "${CAIRN_SANITIZE:-0}" in 1|ON|on|TRUE|true) asan=1 ;; *) asan=0 ;; esac
# Memory is measured here, not leaks (later options win: these come last).
# Blosc's plugin leaves its global context to LeakSanitizer at exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:detect_leaks=0:allocator_may_return_null=1"
base=0 hang=10
if [ "$asan" = 1 ]; then
    hang=30
    /usr/bin/time -f %M -o rss.txt "$CLI" --version >/dev/null 2>&1
    base=$(tail -n 1 rss.txt)
fi
worst=0 worst_what="" runs=0 known_seen=0

# tests/cli_rss_known.txt: known breaks, reported as KNOWN (with their reason)
declare -A known
while read -r k_cmd k_file k_why; do
    case "$k_cmd" in ''|'#'*) continue ;; esac
    known["$k_cmd $k_file"]=$k_why
done <"$SRC/tests/cli_rss_known.txt"

known_why() { # known_why KEY: the reason KEY ("COMMAND FILE") is listed, or nothing
    printf '%s' "${known[$1]:-${known["* ${1#* }"]:-}}"
}

verdict() { # verdict KEY MESSAGE: a failure, or KNOWN when listed
    local why
    why=$(known_why "$1")
    if [ -n "$why" ]; then
        echo "KNOWN: $2 ($why)"; known_seen=$((known_seen + 1)); ok
    else bad "$2"; fi
}

run() { # run FILE_SIZE DESCRIPTION COMMAND...: peak RSS within the rule, no signal, no hang
    local size=$1 what=$2; shift 2
    local key="${what%% *} ${what##*/}"
    /usr/bin/time -f %M -o rss.txt timeout "$hang" "$@" >"${OUT:-/dev/null}" 2>err.txt
    local rc=$? kb
    kb=$(tail -n 1 rss.txt)
    runs=$((runs + 1))
    local limit=$(( (16 * size + (160 << 20)) / 1024 ))
    [ "$asan" = 1 ] && limit=$(( limit + limit / 8 + base ))
    if [ "$rc" = 124 ] || [ "$rc" -ge 128 ]; then
        verdict "$key" "$what: exit $rc (hang or signal)"; head -c 600 err.txt; return
    fi
    case "$kb" in ''|*[!0-9]*) bad "$what: no RSS measured: $(cat rss.txt)"; return ;; esac
    if [ "$kb" -gt "$limit" ]; then verdict "$key" "$what: peak RSS $kb KiB > $limit KiB (S = $size)"
    else ok; fi
    local pct=$(( kb * 100 / limit ))
    if [ -z "$(known_why "$key")" ] && [ "$pct" -gt "$worst" ]; then
        worst=$pct worst_what="$what ($kb KiB of $limit)"
    fi
}

mapfile -d '' files < <(find "$SRC/tests/corpus" "$SRC/fuzz/corpus" hostile -type f -print0 | sort -z)
# Outputs go to memory when it can: convert and unpack fsync what they write,
# and a disk makes that the test's whole run time.
out=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    out=$(mktemp -d /dev/shm/cli_rss.XXXXXX) && trap 'rm -rf "$T" "$out"' EXIT
fi
mkdir -p listings
for i in "${!files[@]}"; do
    f=${files[$i]}
    size=$(stat -c %s "$f")
    OUT=listings/$i.json run "$size" "ls --json $f" "$CLI" ls "$f" --json
done
# every file's first tensor name, for cat and show (from the JSON listing, exact)
"$PY" - "${#files[@]}" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    try:
        t = json.load(open('listings/%d.json' % i))
        name = t[0]['name'] if t else ''
    except Exception:
        name = ''
    open('listings/%d.name' % i, 'w').write(name)
PY
for i in "${!files[@]}"; do
    f=${files[$i]}
    size=$(stat -c %s "$f")
    for cmd in info meta verify; do run "$size" "$cmd $f" "$CLI" "$cmd" "$f"; done
    name=$(cat "listings/$i.name")
    if [ -n "$name" ]; then
        run "$size" "cat $f" "$CLI" cat "$f" "$name"
        run "$size" "show $f" "$CLI" show "$f" "$name"
    fi
    rm -rf "$out/out.cairn" "$out/unpacked"
    run "$size" "convert $f" "$CLI" convert "$f" "$out/out.cairn"
    run "$size" "diff $f" "$CLI" diff "$f" "$f"
    # one durable file per tensor: 10,000 fsyncs are slow, not a memory question
    [ "${f##*/}" = many.safetensors ] || run "$size" "unpack $f" "$CLI" unpack "$f" "$out/unpacked"
done
echo "${#files[@]} files, $runs runs, $known_seen known breaks; closest to the rule: $worst% for $worst_what"
finish
