# torch_check.py -- real PyTorch loads a .pt that cairn wrote and compares
# it with what cairn was given (tests/test_torch_write.c writes both).
#
#   torch_check.py FILE.pt MANIFEST.json
#
# MANIFEST (cairn_value_to_json of a map):
#   mode         "state_dict" (no metadata) or "tree"
#   tensors      [{name, dtype, shape, hex}]  every name, aliases included
#   aliases      {alias: target}              must share one storage
#   tree         the metadata tree (mode "tree"), tensor refs as {"$tensor": name}
#   unreferenced [names] expected under the root's "tensors" OrderedDict
#   needs        [] or ["floats"] / ["bytes"]: what torch's weights_only
#                unpickler learned late (floats in 2.0, bytes in 2.5); an
#                older torch may refuse those only, and the file is then
#                checked with the full unpickler instead
# Prints one line saying how it loaded; exits 1 with the first difference.
import base64
import collections
import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
    "BF16": torch.bfloat16, "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16,
    "I32": torch.int32, "I64": torch.int64, "BOOL": torch.bool,
    "C64": torch.complex64, "C128": torch.complex128,
}
LEARNED = {"floats": (2, 0), "bytes": (2, 5)}


def fail(where, what):
    print(f"torch_check: {where}: {what}")
    sys.exit(1)


def version():
    return tuple(int("".join(c for c in x if c.isdigit()) or 0)
                 for x in torch.__version__.split(".")[:2])


def load(path, needs):
    try:
        return torch.load(path, weights_only=True), "weights_only=True"
    except Exception as e:  # noqa: BLE001 -- any refusal is reported below
        late = [n for n in needs if version() < LEARNED[n]]
        if not late:
            fail(path, f"torch.load(weights_only=True) refused it: {e}")
        obj = torch.load(path, weights_only=False)
        return obj, (f"weights_only=False (torch {torch.__version__}'s weights_only "
                     f"refuses {', '.join(late)}, as it refuses torch.save's own)")


def tensor_bytes(t):
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16
        t = t.view(torch.int16)
    return t.contiguous().numpy().tobytes()


class Checker:
    def __init__(self, manifest):
        self.specs = {t["name"]: t for t in manifest["tensors"]}
        self.seen = {}

    def tensor(self, got, name, where):
        spec = self.specs[name]
        if type(got) is not torch.Tensor:
            fail(where, f"expected a torch.Tensor, got {type(got).__name__}")
        if got.dtype != DTYPES[spec["dtype"]]:
            fail(where, f"dtype {got.dtype}, expected {spec['dtype']}")
        if list(got.shape) != spec["shape"]:
            fail(where, f"shape {list(got.shape)}, expected {spec['shape']}")
        if got.requires_grad or not got.is_contiguous() or got.device.type != "cpu":
            fail(where, "not a plain contiguous CPU tensor")
        if tensor_bytes(got) != bytes.fromhex(spec["hex"]):
            fail(where, "bytes differ")
        self.seen.setdefault(name, got)

    def value(self, got, want, where):
        if isinstance(want, dict) and len(want) == 1 and next(iter(want)).startswith("$"):
            return self.tagged(got, want, where)
        if isinstance(want, dict):
            if type(got) is not dict:
                fail(where, f"expected a dict, got {type(got).__name__}")
            if list(got) != list(want):
                fail(where, f"keys {list(got)}, expected {list(want)}")
            for k in want:
                self.value(got[k], want[k], f"{where}[{k!r}]")
        elif isinstance(want, list):
            if type(got) is not list or len(got) != len(want):
                fail(where, f"expected a list of {len(want)}, got {type(got).__name__}")
            for i, (g, w) in enumerate(zip(got, want)):
                self.value(g, w, f"{where}[{i}]")
        elif isinstance(want, float):
            self.float_bits(got, struct.pack(">d", want), where)
        elif type(got) is not type(want) or got != want:  # bool is not int here
            fail(where, f"{got!r} ({type(got).__name__}), expected {want!r}")

    def float_bits(self, got, bits, where):
        if type(got) is not float or struct.pack(">d", got) != bits:
            fail(where, f"{got!r}, expected the float with bits {bits.hex()}")

    def tagged(self, got, want, where):
        tag, text = next(iter(want.items()))
        if tag == "$tensor":
            return self.tensor(got, text, where)
        if tag == "$bytes":
            if type(got) is not bytes or got != base64.b64decode(text):
                fail(where, f"{got!r}, expected bytes {text}")
            return None
        if tag != "$float":
            fail(where, f"unknown tag {tag}")
        special = {"inf": "7ff0000000000000", "-inf": "fff0000000000000",
                   "-0": "8000000000000000", "nan": "7ff8000000000000"}
        bits = special.get(text) or f"{int(text.split(':', 1)[1], 16):016x}"
        return self.float_bits(got, bytes.fromhex(bits), where)


def check_state_dict(c, got, names, where):
    if type(got) is not collections.OrderedDict:
        fail(where, f"expected an OrderedDict, got {type(got).__name__}")
    if list(got) != names:
        fail(where, f"keys {list(got)}, expected {names}")
    for n in names:
        c.tensor(got[n], n, f"{where}[{n!r}]")


def main():
    path, manifest_path = sys.argv[1], sys.argv[2]
    with open(manifest_path) as f:
        manifest = json.load(f)
    obj, how = load(path, manifest.get("needs", []))
    c = Checker(manifest)
    if manifest["mode"] == "state_dict":
        check_state_dict(c, obj, [t["name"] for t in manifest["tensors"]], "root")
    else:
        tree = dict(manifest["tree"])
        rest = manifest.get("unreferenced", [])
        if rest:
            got_rest = obj.pop("tensors", None) if type(obj) is dict else None
            check_state_dict(c, got_rest, rest, "root['tensors']")
        c.value(obj, tree, "root")
    for alias, target in manifest.get("aliases", {}).items():
        a, b = c.seen.get(alias), c.seen.get(target)
        if a is None or b is None:
            continue
        if a.storage().data_ptr() != b.storage().data_ptr() or a.data_ptr() != b.data_ptr():
            fail(alias, f"does not share its storage with {target}")
    print(f"torch {torch.__version__} loaded {path} ({how}): {len(c.seen)} tensors, "
          f"{len(manifest.get('aliases', {}))} aliases, all equal")


if __name__ == "__main__":
    main()
