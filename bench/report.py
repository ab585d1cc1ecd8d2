#!/usr/bin/python3
"""report.py -- turns hyperfine JSON into RESULT lines and RESULT lines into the summary against the targets (stdlib only)."""
import json
import statistics
import sys

# (workload, op, field, limit, unit, what): a measurement passes when its
# field is <= limit. Ratios are cairn / raw baseline of the same run.
TARGETS = [
    ("big", "save", "ratio", 1.10, "x raw", "save 'big' into the page cache"),
    ("big", "save-sync", "ratio", 1.05, "x raw", "save 'big' durably (fsync)"),
    ("big", "open", "median_us", 1000.0, "us", "open 'big' + find one tensor"),
    ("many", "open", "median_us", 5000.0, "us", "open 'many' + find one tensor"),
    ("big", "read", "ratio", 1.05, "x raw", "read all of 'big' into caller buffers"),
    ("big", "read-verify", "ratio", 1.30, "x raw", "read 'big' with CAIRN_READ_VERIFY"),
    ("big", "rss", "overhead_mib", 32.0, "MiB", "peak RSS above payload, saving 'big'"),
    ("many", "read", "ratio", 1.10, "x raw", "read 20,000 small tensors (issue 14)"),
    ("tiny", "save", "ratio", 2.0, "x raw", "save one 10x10 tensor (no fsync)"),
    ("tiny", "read", "ratio", 3.0, "x raw", "open + read one 10x10 tensor"),
    ("pack", "pack-sync", "ratio", 1.15, "x concat", "cairn pack vs mmap+write concat (fsync)"),
    ("pack", "pack-nosync", "ratio", 1.15, "x concat", "cairn pack --no-sync vs concat (no fsync)"),
]


def parse_results(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT "):
                rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
    return rows


def find(rows, workload, op, contender=None):
    for r in rows:
        if r.get("workload") == workload and r.get("op") == op and \
                (contender is None or r.get("contender") == contender):
            return r
    return None


def cmd_hyperfine(op, paths):
    """Each JSON file is one hyperfine invocation with --runs 1 per command, so
    the files in order are the alternating runs A B A B."""
    times = {}
    for p in paths:
        with open(p) as f:
            for res in json.load(f)["results"]:
                times.setdefault(res["command"], []).extend(res["times"])
    names = list(times)
    base, other = names[1], names[0]  # invoked as: -n cairn ... -n concat ...
    print(f"\n== pack / {op}  (hyperfine, {len(paths)} alternating runs; ratio to {base})")
    print(f"  {'who':8s} {'median s':>10s} {'min s':>10s} {'max s':>10s} {'ratio':>7s} {'paired':>7s}")
    for who in (base, other):
        t, b = times[who], times[base]
        med = statistics.median(t)
        ratio = med / statistics.median(b)
        paired = statistics.median(x / y for x, y in zip(t, b))
        print(f"  {who:8s} {med:10.4f} {min(t):10.4f} {max(t):10.4f} {ratio:7.3f} {paired:7.3f}")
        print(f"RESULT workload=pack op={op} contender={who} runs={len(t)} median_s={med:.6f} "
              f"min_s={min(t):.6f} max_s={max(t):.6f} ratio={ratio:.4f} paired_ratio={paired:.4f}")


def cmd_summary(path):
    rows = parse_results(path)
    print(f"\n{'target':44s} {'limit':>14s} {'measured':>10s} {'paired':>8s}  verdict")
    for workload, op, field, limit, unit, what in TARGETS:
        r = find(rows, workload, op, "cairn")
        if not r or field not in r:
            print(f"{what:44s} {'<= %g %s' % (limit, unit):>14s} {'-':>10s} {'':>8s}  not run")
            continue
        value = float(r[field])
        paired = "%.3f" % float(r["paired_ratio"]) if "paired_ratio" in r else ""
        verdict = "met" if value <= limit else f"MISSED by {(value / limit - 1) * 100:.1f}%"
        print(f"{what:44s} {'<= %g %s' % (limit, unit):>14s} {value:10.3f} {paired:>8s}  {verdict}")
    harness, cairn = find(rows, "big", "rss", "harness"), find(rows, "big", "rss", "cairn")
    if harness and cairn:
        print(f"  (peak RSS: harness alone {float(harness['overhead_mib']):.1f} MiB over the payload, "
              f"so cairn's own share is {float(cairn['maxrss_mib']) - float(harness['maxrss_mib']):.1f} MiB)")
    timed = [r for r in rows if r.get("contender", "").startswith("cairn") and "median_s" in r
             and r.get("workload") != "pack"]
    if timed:
        print("\nall cairn timings (ratio = cairn / raw, same process):")
        for r in timed:
            print(f"  {r['workload']:5s} {r['op']:12s} {r['contender']:13s} median "
                  f"{float(r['median_s']):10.6f} s  ratio {float(r['ratio']):6.3f}  "
                  f"paired {float(r['paired_ratio']):6.3f}")
    opens = [r for r in rows if r.get("op") == "open"]
    for r in opens:
        print(f"  {r['workload']:5s} open + find   {r['tensors']:>6s} tensors  median "
              f"{float(r['median_us']):9.1f} us  (min {float(r['min_us']):.1f}, max {float(r['max_us']):.1f})")
    peers = [r for r in rows if r.get("op", "").startswith("peer-")]
    if peers:
        print("\npeers ('big', Python, ratio to raw write/read in the same run):")
        for r in peers:
            print(f"  {r['op']:10s} {r['contender']:12s} median {float(r['median_s']):8.3f} s  "
                  f"ratio {float(r['ratio']):6.3f}  paired {float(r['paired_ratio']):6.3f}")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "hyperfine":
        cmd_hyperfine(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        cmd_summary(sys.argv[2])
    else:
        sys.exit("usage: report.py hyperfine OP JSON... | report.py summary RESULTS.txt")


if __name__ == "__main__":
    main()
