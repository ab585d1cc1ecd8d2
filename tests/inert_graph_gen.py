# inert_graph_gen.py -- the pickle and joblib files of tests/cli_inert_graph.sh:
# object graphs with shared, mutated and unusual NumPy arrays, made by
# pickle.dumps / joblib.dump where they write such a graph, and assembled
# opcode by opcode where no Python pickler would.
#
#   inert_graph_gen.py      (writes into the current directory)
#
# FILE.pkl / FILE.joblib are the inputs; FILE.NAME.raw the bytes `cairn cat
# FILE NAME --inert` must write (little-endian, C order), made by NumPy.
import pickle
import struct

import joblib
import numpy as np

# ------------------------------------------------------------------ opcodes

MARK, STOP, TUPLE, EMPTY_TUPLE = b"(", b".", b"t", b")"
TUPLE1, TUPLE2, TUPLE3 = b"\x85", b"\x86", b"\x87"
EMPTY_DICT, EMPTY_LIST, SETITEM, SETITEMS = b"}", b"]", b"s", b"u"
APPEND, REDUCE, NEWOBJ, BUILD = b"a", b"R", b"\x81", b"b"
NONE, NEWTRUE, NEWFALSE, MEMOIZE = b"N", b"\x88", b"\x89", b"\x94"


def s(text):
    """SHORT_BINUNICODE (BINUNICODE when long) of a str, or of raw bytes."""
    b = text.encode() if isinstance(text, str) else text
    if len(b) < 256:
        return b"\x8c" + bytes([len(b)]) + b
    return b"X" + struct.pack("<I", len(b)) + b


def i(n):
    """BININT1, or BININT."""
    return b"K" + bytes([n]) if 0 <= n < 256 else b"J" + struct.pack("<i", n)


def binbytes(b):
    return b"B" + struct.pack("<I", len(b)) + b


def bytearray8(b):
    return b"\x96" + struct.pack("<Q", len(b)) + b


def put(k):
    return b"q" + bytes([k]) if k < 256 else b"r" + struct.pack("<I", k)


def get(k):
    return b"h" + bytes([k]) if k < 256 else b"j" + struct.pack("<I", k)


def glob(module, name):
    """STACK_GLOBAL."""
    return s(module) + s(name) + b"\x93"


def tup(*items):
    return MARK + b"".join(items) + TUPLE


def dict_of(*pairs):
    """EMPTY_DICT, then MARK k v k v ... SETITEMS."""
    return EMPTY_DICT + MARK + b"".join(pairs) + SETITEMS


def pk(*parts, proto=4):
    return b"\x80" + bytes([proto]) + b"".join(parts) + STOP


# --------------------------------------------------------- numpy objects

def dtype_new(code):
    """numpy.dtype(CODE, False, True), without its BUILD."""
    return glob("numpy", "dtype") + s(code) + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE


def dtype_state(endian):
    return tup(i(3), s(endian), NONE, NONE, NONE, i(-1), i(-1), i(0))


def dtype(code, endian="<"):
    return dtype_new(code) + dtype_state(endian) + BUILD


def ndarray_new():
    """numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'), without its BUILD."""
    return (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") +
            i(0) + TUPLE1 + binbytes(b"b") + TUPLE3 + REDUCE)


def shape_of(dims):
    return tup(*[i(d) for d in dims])


def array_state(shape_ops, dtype_ops, data_ops):
    """(version, shape, dtype, is_fortran, bytes) of a C-ordered array."""
    return tup(i(1), shape_ops, dtype_ops, NEWFALSE, data_ops)


def array(a, memo=None):
    """What pickle writes for a C-ordered ndarray `a`, memoized at `memo` after the REDUCE."""
    return (ndarray_new() + (put(memo) if memo is not None else b"") +
            array_state(shape_of(a.shape), dtype(a.dtype.str[1:], a.dtype.str[0]),
                        binbytes(a.tobytes())) + BUILD)


def frombuffer(buf_ops, dtype_ops, shape_ops):
    """Protocol 5: numpy.core.numeric._frombuffer(buffer, dtype, shape, order)."""
    return (glob("numpy.core.numeric", "_frombuffer") + MARK + buf_ops + dtype_ops +
            shape_ops + s("C") + TUPLE + REDUCE)


def wrapper_new():
    """joblib.numpy_pickle.NumpyArrayWrapper() by NEWOBJ, without its BUILD."""
    return glob("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ


def wrapper_state(shape_ops, dtype_ops):
    return dict_of(s("subclass"), glob("numpy", "ndarray"), s("shape"), shape_ops,
                   s("order"), s("C"), s("dtype"), dtype_ops, s("allow_mmap"), NEWTRUE,
                   s("numpy_array_alignment_bytes"), i(16))


def wrapper_data(data):
    """What joblib writes after the BUILD: a padding length, the padding, the bytes."""
    return b"\x00" + data


def raw(path, a):
    np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tofile(path)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


X = np.arange(6, dtype=np.float32).reshape(2, 3)  # the array most cases share
# The global pickle.dumps names for an ndarray (NumPy 2 moved it to numpy._core).
rebuild = X.__reduce__()[0]
with open("reconstruct.txt", "w") as f:
    f.write("%s.%s" % (rebuild.__module__, rebuild.__name__))
Y = np.array([1.5, -2.0, 0.25, 8.0], dtype=np.float64)
raw("x.raw", X)
raw("y.raw", Y)

# ------------------------------------------ 1. one array under two names
for proto in (2, 4, 5):
    write("tied%d.pkl" % proto, pickle.dumps({"a": X, "b": X}, protocol=proto))
joblib.dump({"a": X, "b": X}, "tied.joblib")
write("tied_many.pkl", pickle.dumps({"k%03d" % n: X for n in range(200)}, protocol=4))

# ------------------------------- 2. an array changed after its BUILD
# {'a': x, 'b': x} where the BINGET of x for 'b' first gets an item 'extra'.
write("setitem_after.pkl", pk(
    EMPTY_DICT, s("a"), array(X, memo=1), SETITEM,
    s("b"), get(1), s("extra"), i(1), SETITEM, SETITEM))
# ... and the item set on the array itself, before it is stored.
write("setitem_stack.pkl", pk(
    EMPTY_DICT, s("a"), array(X), s("extra"), i(1), SETITEM, SETITEM))
# A second BUILD on x (through a BINGET) with the state of another array.
second = array_state(shape_of(Y.shape), dtype("f8"), binbytes(Y.tobytes()))
write("build_twice.pkl", pk(
    EMPTY_DICT, s("a"), array(X, memo=1), SETITEM,
    s("b"), get(1), second, BUILD, SETITEM))
# ... and both BUILDs on the stack, one after the other.
write("build_twice_stack.pkl", pk(EMPTY_DICT, s("a"), array(X), second, BUILD, SETITEM))
# An array without a BUILD whose state is set as an item.
write("state_item.pkl", pk(
    EMPTY_DICT, s("a"), ndarray_new(), s("state"),
    array_state(shape_of(X.shape), dtype("f4"), binbytes(X.tobytes())), SETITEM, SETITEM))

# The state tuple (memo 8) and the bytes (memo 9) of 'a' stored again
# after its BUILD, and the bytes shared with a second array 'b'.
write("state_shared.pkl", pk(
    EMPTY_DICT, s("a"), ndarray_new(),
    array_state(shape_of(X.shape), dtype("f4"), binbytes(X.tobytes()) + put(9)) + put(8),
    BUILD, SETITEM, s("st"), get(8), SETITEM, s("raw"), get(9), SETITEM,
    s("b"), ndarray_new(), array_state(shape_of((6,)), dtype("f4"), get(9)), BUILD, SETITEM))

# ------------------------------------- 3. a dtype changed after its use
# numpy.dtype('f4', False, True) with no state, used by 'a', then given a
# big-endian state through a BINGET.
write("dtype_later.pkl", pk(
    EMPTY_DICT, s("a"), ndarray_new(),
    array_state(shape_of(X.shape), dtype_new("f4") + put(2), binbytes(X.tobytes())), BUILD,
    SETITEM, s("d"), get(2), dtype_state(">"), BUILD, SETITEM))
raw("dtype_later.a.raw", np.frombuffer(X.tobytes(), dtype=">f4").reshape(X.shape))
# The converse: a little-endian dtype, used by 'a', then BUILT again big-endian.
write("dtype_rebuild.pkl", pk(
    EMPTY_DICT, s("a"), ndarray_new(),
    array_state(shape_of(X.shape), dtype("f4") + put(2), binbytes(X.tobytes())), BUILD,
    SETITEM, s("d"), get(2), dtype_state(">"), BUILD, SETITEM))
# A dtype with no state used by two arrays, one of them before the BUILD
# gives it a state and one after.
write("dtype_between.pkl", pk(
    EMPTY_DICT, s("a"), ndarray_new(),
    array_state(shape_of(X.shape), dtype_new("f4") + put(2), binbytes(X.tobytes())), BUILD,
    SETITEM, s("d"), get(2), dtype_state(">"), BUILD, SETITEM,
    s("b"), ndarray_new(), array_state(shape_of(X.shape), get(2), binbytes(X.tobytes())),
    BUILD, SETITEM))

# ---------------------------- 4. paths that are not (or are) tensor names
LONG = 4096  # CAIRN_NAME_MAX: the longest tensor name
write("names.pkl", pickle.dumps({
    "ctl\x1b[2J\x07": X, "a/b": X, "sp ace": X, "\u00e9t\u00e9": X, 7: X,
    "L" * LONG: X, "M" * (LONG + 1): X,
    "n" * 4000: {"p" * 95: X, "q" * 96: X}}, protocol=4))
write("top_list.pkl", pickle.dumps([X, {"k": Y}, (X,)], protocol=4))
write("key_empty.pkl", pickle.dumps({"": X}, protocol=4))
write("key_nul.pkl", pickle.dumps({"a\x00b": X}, protocol=4))
write("key_utf8.pkl", pk(EMPTY_DICT, s(b"\xff\xfe"), array(X), SETITEM))
write("key_int_str.pkl", pickle.dumps({1: X, "1": Y}, protocol=4))
write("key_dotted.pkl", pickle.dumps({"a.b": X, "a": {"b": Y}}, protocol=4))

# ------------------------------------ 5. top level, scalars, protocol 5
for proto in (2, 4, 5):
    write("top%d.pkl" % proto, pickle.dumps(X, protocol=proto))
write("scalar_top.pkl", pickle.dumps(np.float64(1.5), protocol=4))
raw("scalar_top.array.raw", np.array(1.5))
write("scalars.pkl", pickle.dumps({"f": np.float64(1.5), "i": np.int32(7),
                                   "b": np.bool_(True)}, protocol=4))
raw("scalars.i.raw", np.array(7, dtype=np.int32))
F = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))
write("p5.pkl", pickle.dumps({"c": X, "f": F, "t": X}, protocol=5))
raw("f.raw", F)

# ------------------------------------ 6. a shape list changed after use
# The state's shape is a list, memoized; after the BUILD a BINGET of it
# appends a 1 (the same element count) or a 4 (four times as many).
def shape_list_pickle(extra, via_frombuffer=False):
    shape = EMPTY_LIST + put(5) + MARK + i(2) + i(3) + b"e"  # APPENDS
    if via_frombuffer:
        arr = frombuffer(bytearray8(X.tobytes()), dtype("f4"), shape)
    else:
        arr = ndarray_new() + array_state(shape, dtype("f4"), binbytes(X.tobytes())) + BUILD
    return pk(EMPTY_DICT, s("a"), arr, SETITEM, s("shape"), get(5), i(extra), APPEND, SETITEM,
              proto=5 if via_frombuffer else 4)

write("shape_list1.pkl", shape_list_pickle(1))
write("shape_list4.pkl", shape_list_pickle(4))
write("fb_shape_list1.pkl", shape_list_pickle(1, True))
write("fb_shape_list4.pkl", shape_list_pickle(4, True))

# ------------------------------------------------ 7. joblib-like streams
# As joblib.dump lays an array out: NEWOBJ of the wrapper, its state dict,
# BUILD, then (outside any opcode) a padding length, the padding and the
# bytes. X2 is a second array of X's shape and dtype.
X2 = X + 10
raw("x2.raw", X2)
x_state = wrapper_state(shape_of(X.shape), dtype("f4"))
# Two wrappers sharing one state dict (memo 3): each reads its own bytes.
write("jl_shared_state.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(), x_state, put(3), BUILD, wrapper_data(X.tobytes()),
    SETITEM, s("b"), wrapper_new(), get(3), BUILD, wrapper_data(X2.tobytes()), SETITEM))
# The state dict changed after the BUILD: a second 'shape' (and 'order')
# set through a BINGET, the dict also stored under 'st'.
write("jl_mutated_state.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(), x_state, put(3), BUILD, wrapper_data(X.tobytes()),
    SETITEM, s("st"), get(3), s("shape"), shape_of((3, 2)), SETITEM, s("order"), s("F"),
    SETITEM, SETITEM))
# The shape tuple (memo 4) stored again under 'shape' of the top dict.
write("jl_shape_shared.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(),
    wrapper_state(shape_of(X.shape) + put(4), dtype("f4")), BUILD, wrapper_data(X.tobytes()),
    SETITEM, s("shape"), get(4), SETITEM))
# The wrapper itself (memo 2) stored again: joblib's memo holds the
# wrapper, and so does cairn's.
write("jl_long.joblib", pk(
    EMPTY_DICT, s("M" * (LONG + 1)), wrapper_new(), x_state, BUILD, wrapper_data(X.tobytes()),
    SETITEM, s("ok"), wrapper_new(), x_state, BUILD, wrapper_data(X.tobytes()), SETITEM))
write("jl_wrapper_twice.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(), put(2), x_state, BUILD, wrapper_data(X.tobytes()),
    SETITEM, s("b"), get(2), SETITEM))

# ------------------------------------------- 8. an array in odd places
write("key_array.pkl", pk(EMPTY_DICT, array(X), s("v"), SETITEM))
write("args_array.pkl", pk(
    EMPTY_DICT, s("o"), glob("mymod", "Thing"), array(X), i(3), TUPLE2, REDUCE, SETITEM))
write("state_array.pkl", pk(
    EMPTY_DICT, s("o"), glob("mymod", "Thing"), EMPTY_TUPLE, NEWOBJ, array(X), BUILD,
    SETITEM))
# An array that is its own BUILD state; an object whose state holds it.
write("self_state.pkl", pk(EMPTY_DICT, s("a"), ndarray_new(), put(1), get(1), BUILD, SETITEM))
write("state_cycle.pkl", pk(
    EMPTY_DICT, s("o"), glob("mymod", "Thing"), EMPTY_TUPLE, NEWOBJ, put(1),
    EMPTY_DICT, s("me"), get(1), SETITEM, s("w"), array(X), SETITEM, BUILD, SETITEM))

# -------------------------------------------------------------- 9. memo
# One array memoized under two indexes (1 and 2), read back from each.
write("memo_two.pkl", pk(
    EMPTY_DICT, s("a"), array(X, memo=1), put(2), SETITEM,
    s("b"), get(1), SETITEM, s("c"), get(2), SETITEM))
# Index 1 holds x, then y: a later BINGET 1 is y; x stays where it was stored.
write("memo_overwrite.pkl", pk(
    EMPTY_DICT, s("a"), array(X, memo=1), SETITEM,
    s("b"), array(Y, memo=1), SETITEM, s("c"), get(1), SETITEM))
# An array only the memo holds (it was the state of an OrderedDict's
# BUILD, which drops its state), read back later.
write("memo_only.pkl", pk(
    EMPTY_DICT, s("od"), glob("collections", "OrderedDict"), EMPTY_TUPLE, REDUCE,
    EMPTY_DICT, s("x"), array(X), put(1), SETITEM, BUILD, SETITEM,
    s("c"), get(1), SETITEM))
# MEMOIZE numbers entries as Python does (the count of indexes set): after
# BINPUT 0 twice it is index 1.
write("memoize_count.pkl", pk(
    EMPTY_DICT, put(0), s("a"), array(X), put(0), MEMOIZE, SETITEM,
    s("b"), get(1), SETITEM, s("c"), get(0), SETITEM))

# ------------------------------------------------------------ 10. errors
MISMATCH = ndarray_new() + array_state(shape_of((2, 3)), dtype("f4"), binbytes(bytes(20))) + BUILD
write("mismatch.pkl", pk(EMPTY_DICT, s("a"), MISMATCH, SETITEM))
write("get_unset.pkl", pk(EMPTY_DICT, s("a"), array(X, memo=1), SETITEM, s("b"), get(7),
                          SETITEM))
write("long_get_unset.pkl", pk(EMPTY_DICT, s("a"), array(X, memo=1), SETITEM, s("b"),
                               b"j" + struct.pack("<I", 300), SETITEM))
# A BINGET before the BINPUT of its index.
write("get_early.pkl", pk(EMPTY_DICT, s("b"), get(1), SETITEM, s("a"), array(X, memo=1),
                          SETITEM))

# Every hand-made plain pickle above again, with one more item whose text
# holds "NumpyArrayWrapper": the machine then keeps every memo entry (no
# look ahead, as for joblib files), which must not change what it reads.
NOTE = s("note") + s("NumpyArrayWrapper") + SETITEM
for name in ("setitem_after", "build_twice", "dtype_later", "dtype_rebuild", "shape_list1",
             "state_shared", "memo_two", "memo_overwrite", "memo_only", "memoize_count", "mismatch",
             "get_unset", "get_early", "state_array"):
    with open(name + ".pkl", "rb") as f:
        body = f.read()
    assert body[2:3] == EMPTY_DICT and body[-1:] == STOP
    write(name + "_noscan.pkl", body[:3] + NOTE + body[3:])

# ------------------------------------------- arrays that are no tensor
# Strings, datetimes and objects stay values (bytes, or a list of objects),
# here each under two names; a big-endian array is a tensor.
U = np.array(["ab", "c"])
write("values.pkl", pickle.dumps({"u": U, "u2": U, "m": np.array(["2020-01-02"], dtype="M8[D]"),
                                  "o": np.array([1, "x"], dtype=object),
                                  "be": X.astype(">f4")}, protocol=4))
joblib.dump({"u": U, "be": X.astype(">f4"), "x": X}, "values.joblib")
# joblib: a dtype (memo 2) given a big-endian state after the BUILD of the
# wrapper that used it.
write("jl_dtype_later.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(), wrapper_state(shape_of(X.shape), dtype_new("f4") + put(2)),
    BUILD, wrapper_data(X.tobytes()), SETITEM, s("d"), get(2), dtype_state(">"), BUILD,
    SETITEM))

# ------------------------------------------- work bounded by the file
# One dict of N entries SETITEM made with one key, BUILT M times and
# listed M times: each visit of the walk would sort N + M entries
# (quadratic work for a file of a few KB). Refused by the walk's bound on
# dict entries looked at, fast.
N = M = 3000
JUNK = MARK + s("j") + put(5) + i(0) + put(6) + (get(5) + get(6)) * N + SETITEMS
write("repeated_keys.pkl", pk(
    EMPTY_LIST, MARK, glob("mymod", "T"), EMPTY_TUPLE, NEWOBJ, put(1), JUNK, NONE, put(2),
    (get(1) + get(2) + BUILD) * M, b"e"))
# A plain dict that spells a dtype ({"$class": "numpy.dtype", "args": ...})
# is no dtype: only the machine's numpy.dtype(...) node is.
write("dtype_plain_dict.pkl", pk(
    EMPTY_DICT, s("a"), ndarray_new(),
    array_state(shape_of(X.shape), dict_of(s("$class"), s("numpy.dtype"), s("args"),
                                           tup(s("f4"), NEWFALSE, NEWTRUE)),
                binbytes(X.tobytes())), BUILD, SETITEM))
# A wrapper state with a key twice: joblib's __dict__.update keeps the last
# ('shape' (3, 2)); a state of more than 16 entries is refused (joblib
# writes 6).
write("jl_dup_keys.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(),
    EMPTY_DICT + MARK + s("subclass") + glob("numpy", "ndarray") + s("shape") + shape_of((2, 3)) +
    s("order") + s("C") + s("dtype") + dtype("f4") + s("allow_mmap") + NEWTRUE +
    s("numpy_array_alignment_bytes") + i(16) + s("shape") + shape_of((3, 2)) + SETITEMS,
    BUILD, wrapper_data(X.tobytes()), SETITEM))
write("jl_big_state.joblib", pk(
    EMPTY_DICT, s("a"), wrapper_new(),
    EMPTY_DICT + MARK + b"".join(s("k%d" % k) + i(k) for k in range(20)) + s("shape") +
    shape_of(X.shape) + s("dtype") + dtype("f4") + SETITEMS,
    BUILD, wrapper_data(X.tobytes()), SETITEM))
raw("jl_dup_keys.a.raw", X.reshape(3, 2))
