# torch_read_gen.py -- real PyTorch writes .pt files for tests/test_torch_read.c,
# with the bytes every tensor must read as.
#
#   torch_read_gen.py OUTDIR
#
# Writes OUTDIR/NAME.pt and OUTDIR/manifest.txt, one line per tensor:
#   FILE <tab> hex(NAME) <tab> N <tab> DTYPE <tab> DIMS (comma-separated, '-' for 0-d)
# with OUTDIR/N.bin holding the tensor's elements in C order, little-endian
# (what cairn_tensor_read must give). NAME follows the corpus convention
# (shared/vectors/README.md): dict keys and sequence indexes joined by '.'.
import collections
import io
import os
import sys
import zipfile

import torch

out = sys.argv[1]
torch.manual_seed(1234)
NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16", torch.int32: "I32",
    torch.int64: "I64", torch.bool: "BOOL", torch.complex64: "C64", torch.complex128: "C128",
}
man = open(os.path.join(out, "manifest.txt"), "w")
count = 0


def flatten(obj, path, acc):
    if isinstance(obj, torch.Tensor):
        acc.append((path or "tensor", obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, (path + "." if path else "") + str(k), acc)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, (path + "." if path else "") + str(i), acc)


def elements(t):
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.view(torch.uint8).numpy().tobytes()


def save(name, obj, deflate=False, **kw):
    global count
    path = os.path.join(out, name)
    if kw.pop("buffer", False):  # saved through BytesIO: the top folder is "archive"
        buf = io.BytesIO()
        torch.save(obj, buf, **kw)
        open(path, "wb").write(buf.getvalue())
    else:
        torch.save(obj, path, **kw)
    if deflate:  # the same archive with every member deflated (torch itself stores)
        members = [(i, z.read(i)) for z in [zipfile.ZipFile(path)] for i in z.infolist()]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for info, data in members:
                z.writestr(info.filename, data)
    acc = []
    flatten(obj, "", acc)
    for tname, t in acc:
        count += 1
        open(os.path.join(out, "%d.bin" % count), "wb").write(elements(t))
        dims = ",".join(str(d) for d in t.shape) or "-"
        man.write("%s\t%s\t%d\t%s\t%s\n" % (name, tname.encode().hex(), count, NAMES[t.dtype], dims))


mlp = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
save("mlp.pt", mlp.state_dict())

conv = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Flatten(),
                           torch.nn.Linear(12, 2))
conv(torch.randn(4, 2, 4, 4))  # BatchNorm's running stats and num_batches_tracked move
save("conv.pt", conv.state_dict())

dtypes = collections.OrderedDict()
for dt in NAMES:
    if dt.is_floating_point or dt.is_complex:
        dtypes[str(dt)[6:]] = torch.randn(3, 4).to(dt)
    elif dt == torch.bool:
        dtypes["bool"] = torch.rand(3, 4) > 0.5
    else:
        info = torch.iinfo(dt)
        dtypes[str(dt)[6:]] = torch.tensor([info.min, info.max, 0, 1, -1 if info.min else 2,
                                            7], dtype=dt).reshape(2, 3)
save("dtypes.pt", dtypes)

base = torch.arange(48, dtype=torch.float32).reshape(8, 6)
views = {"base": base, "t": base.t(), "rows": base[2:4], "flat": base.view(-1)[14:21],
         "col": base[:, 1], "step": base[::2, ::3], "expand": base[1:2].expand(4, 6),
         "scalar": torch.tensor(3.5, dtype=torch.float64), "empty": torch.empty(0, 2),
         "cube": torch.arange(24, dtype=torch.int16).reshape(2, 3, 4).permute(2, 0, 1)}
save("views.pt", views)
save("views_deflated.pt", views, deflate=True)

model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
opt = torch.optim.Adam(model.parameters(), lr=3e-4)
for _ in range(3):
    opt.zero_grad()
    model(torch.randn(8, 4)).pow(2).mean().backward()
    opt.step()
save("adam.pt", opt.state_dict())

history = [{"epoch": e, "loss": 1.0 / e, "lr": 3e-4} for e in range(1, 5)]
save("ckpt.pt", {"epoch": 7, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "history": history, "rng": torch.get_rng_state()}, buffer=True)

legacy_base = torch.randn(5, 4)
save("legacy.pt", {"w": legacy_base, "rows": legacy_base[1:4], "t": legacy_base.t(),
                   "ids": torch.arange(6), "half": torch.randn(5).half(), "step": 3},
     _use_new_zipfile_serialization=False)

misc = {"dev": torch.device("cuda", 1), "cpu": torch.device("cpu"), "dt": torch.float16,
        "size": torch.Size([2, 3]), "bytes": b"\x00\xffab", "set": {3, 1, 2},
        "fs": frozenset([5]), "param": torch.nn.Parameter(torch.ones(2, 2)), "none": None,
        "yes": True, "f": 1.5, "neg": -5, "big": 2 ** 40, "nested": [(1, 2), {"k": [torch.zeros(3)]}],
        7: "int key", "text": "h\u00e9 \u2713"}
save("misc.pt", misc)
save("proto4.pt", misc, pickle_protocol=4)
save("proto5.pt", misc, pickle_protocol=5)


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight


save("tied.pt", Tied().state_dict())
save("lone.pt", torch.randn(2, 3).t())
save("list.pt", [torch.ones(2), (torch.zeros(1, dtype=torch.int64), 5)])
man.close()
print("wrote %d tensors" % count)
