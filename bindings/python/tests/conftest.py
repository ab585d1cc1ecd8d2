"""pytest setup: tests import the package from this checkout (bindings/python,
with the extension built in place by `make python`) unless CAIRN_PYTHONPATH
names another build of it (the sanitizer run of ctest)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("CAIRN_PYTHONPATH") or os.path.dirname(HERE))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
VECTORS = os.environ.get("CAIRN_VECTORS") or os.path.join(os.path.dirname(REPO), "shared",
                                                           "vectors")
# /work/wt/<name>/ checkouts keep the shared vectors two levels up.
if not os.path.isdir(VECTORS):
    VECTORS = os.path.join(os.path.dirname(os.path.dirname(REPO)), "shared", "vectors")


def rss_bytes():
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def mappings_of(path):
    """(start, end, file offset) of every mapping of `path` in this process."""
    real = os.path.realpath(path)
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].strip() == real:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((lo, hi, int(parts[2], 16)))
    return out
