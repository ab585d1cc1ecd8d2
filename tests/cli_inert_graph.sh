#!/usr/bin/env bash
# cli_inert_graph.sh -- pins what `cairn ls|meta|cat FILE --inert` print today
# for pickle and joblib object graphs that share, mutate or misplace NumPy
# arrays: one array under several names, an array, its dtype or its state
# changed after its BUILD (through a BINGET), arrays at paths that cannot be
# tensor names, at the top level, as scalars, in protocol 5, in joblib
# streams, as keys, arguments or states of other objects, and the memo
# (entries set twice, overwritten, or only the memo holding an object).
# The walker's answers must not depend on how the pickle machine keeps its
# objects (when it frees them, or folds an array into a compact node), so
# each case checks the exact tensor list, tree and bytes or the exact
# error. The files come from tests/inert_graph_gen.py (pickle.dumps,
# joblib.dump, and opcodes by hand where no pickler writes such a graph).
# Where NumPy or joblib read such a graph, the expectation is what they
# read (a second BUILD keeps the last state, a shape is a tuple, the memo
# keeps a joblib wrapper, not its array).
# shellcheck disable=SC2016 # expected JSON is literal: "$tensor" is a key, not a variable
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/cli.sh"
skip_unless_python "import numpy, joblib" "numpy/joblib absent"
"$PY" "$HERE/inert_graph_gen.py" || { bad "inert_graph_gen.py failed"; finish; exit; }

# One line per tensor of `ls --json`: "NAME DTYPE SHAPE BYTES" (the name as
# JSON); or the tree of `meta` as one line of compact JSON. Runs of 20 or
# more of one letter read "L*4096".
SHOW='
import json, re, sys
def short(t):
    return re.sub(r"([A-Za-z])\1{19,}", lambda m: "%s*%d" % (m.group(1), len(m.group(0))), t)
d = json.load(sys.stdin)
if sys.argv[1] == "ls":
    for t in d:
        print(short(json.dumps(t["name"])), t["dtype"], json.dumps(t["shape"]).replace(" ", ""),
              t["bytes"])
else:
    print(short(json.dumps(d, separators=(",", ":"))))
'
expect_ls() { # expect_ls FILE EXPECTED_LINES
    if ! "$CLI" ls "$1" --inert --json >ls.json 2>err.txt; then
        bad "ls $1 failed:"; cat err.txt; return
    fi
    "$PY" -c "$SHOW" ls <ls.json >got.txt
    if [ "$(cat got.txt)" = "$2" ]; then ok; else
        bad "ls $1 lists:"; cat got.txt; echo "  not:"; echo "$2"
    fi
}
expect_meta() { # expect_meta FILE EXPECTED_JSON
    if ! "$CLI" meta "$1" --inert >meta.json 2>err.txt; then
        bad "meta $1 failed:"; cat err.txt; return
    fi
    "$PY" -c "$SHOW" meta <meta.json >got.txt
    if [ "$(cat got.txt)" = "$2" ]; then ok; else
        bad "meta $1 is:"; cat got.txt; echo "  not:"; echo "$2"
    fi
}
expect_cat() { # expect_cat FILE NAME RAW: cat's bytes are RAW's
    if "$CLI" cat "$1" "$2" --inert >got.bin 2>err.txt && cmp -s got.bin "$3"; then ok; else
        bad "cat $1 '$2' is not $3"; cat err.txt
    fi
}
expect_refused() { # expect_refused FILE MESSAGE: ls and meta exit 1 with "cairn: MESSAGE"
    local cmd
    for cmd in ls meta; do
        "$CLI" $cmd "$1" --inert >out.txt 2>err.txt; local rc=$?
        if [ $rc = 1 ] && [ "$(cat err.txt)" = "cairn: $2" ]; then ok; else
            bad "$cmd $1: exit $rc, wanted 1 and 'cairn: $2'"; cat err.txt
        fi
    done
}
XBYTES=AAAAAAAAgD8AAABAAABAQAAAgEAAAKBA # base64 of x's 24 bytes
F4='{"$class":"numpy.dtype","args":["f4",false,true],"state":[3,"<",null,null,null,-1,-1,0]}'
F4BE='{"$class":"numpy.dtype","args":["f4",false,true],"state":[3,">",null,null,null,-1,-1,0]}'
AB='{"a":{"$tensor":"a"},"b":{"$tensor":"b"}}'

# 1. One array object under two names (the second a BINGET of the first):
# two tensors, the same bytes; joblib.dump writes the array twice.
for f in tied2.pkl tied4.pkl tied5.pkl tied.joblib; do
    expect_ls $f '"a" F32 [2,3] 24
"b" F32 [2,3] 24'
    expect_meta $f "$AB"
    expect_cat $f a x.raw
    expect_cat $f b x.raw
done
"$CLI" ls tied_many.pkl --inert >out.txt
n=$(grep -c '^k[0-9][0-9][0-9] .*F32 .*\[2, 3\]' out.txt)
if [ "$n" = 200 ]; then ok; else bad "tied_many.pkl lists $n arrays, not 200"; fi
expect_cat tied_many.pkl k199 x.raw

# 2. An array changed after its BUILD. An item set on it (NumPy refuses
# arr['extra'] = 1, and arr[0] = 1 would change its elements) makes it a
# value of the tree, not a tensor: cairn never lists an array NumPy would
# not read as it was built.
X_EXTRA='{"$class":"numpy.core.multiarray._reconstruct","args":["numpy.ndarray",[0],{"$bytes":"Yg=="}],"state":[1,[2,3],'"$F4"',false,{"$bytes":"'"$XBYTES"'"}],"extra":1}'
for f in setitem_after.pkl setitem_after_noscan.pkl setitem_stack.pkl; do
    expect_ls $f ''
done
expect_meta setitem_after.pkl '{"a":'"$X_EXTRA"',"b":'"$X_EXTRA"'}'
expect_meta setitem_stack.pkl '{"a":'"$X_EXTRA"'}'
# A second BUILD with y's state (f8, (4,)) replaces the first: NumPy's
# __setstate__ keeps the last state (pickle.loads gives y).
for f in build_twice.pkl build_twice_noscan.pkl; do
    expect_ls $f '"a" F64 [4] 32
"b" F64 [4] 32'
    expect_cat $f a y.raw
    expect_cat $f b y.raw
done
expect_meta build_twice.pkl "$AB"
expect_ls build_twice_stack.pkl '"a" F64 [4] 32'
expect_cat build_twice_stack.pkl a y.raw
# An array with no BUILD whose "state" is set as an item is not an array
# (NumPy refuses the item): a value of the tree.
expect_ls state_item.pkl ''
# The state tuple and the bytes stored again after the BUILD are plain
# values; a second array reads the same bytes object.
for f in state_shared.pkl state_shared_noscan.pkl; do
    expect_ls $f '"a" F32 [2,3] 24
"b" F32 [6] 24'
    expect_cat $f a x.raw
    expect_cat $f b x.raw
done
expect_meta state_shared.pkl '{"a":{"$tensor":"a"},"st":[1,[2,3],'"$F4"',false,{"$bytes":"'"$XBYTES"'"}],"raw":{"$bytes":"'"$XBYTES"'"},"b":{"$tensor":"b"}}'

# 3. A dtype given its (big-endian) state after an array used it: the
# array is read big-endian, as NumPy reads it (the array holds that dtype
# object); one BUILT before and one after read alike.
for f in dtype_later.pkl dtype_later_noscan.pkl; do
    expect_ls $f '"a" F32 [2,3] 24'
    expect_cat $f a dtype_later.a.raw
done
expect_meta dtype_later.pkl '{"a":{"$tensor":"a"},"d":'"$F4BE"'}'
expect_ls dtype_between.pkl '"a" F32 [2,3] 24
"b" F32 [2,3] 24'
expect_cat dtype_between.pkl a dtype_later.a.raw
expect_cat dtype_between.pkl b dtype_later.a.raw
# The same for a joblib wrapper's dtype (joblib.load reads it big-endian too).
expect_ls jl_dtype_later.joblib '"a" F32 [2,3] 24'
expect_meta jl_dtype_later.joblib '{"a":{"$tensor":"a"},"d":'"$F4BE"'}'
expect_cat jl_dtype_later.joblib a dtype_later.a.raw
# A little-endian dtype BUILT again big-endian: the last state is the
# dtype's, as in NumPy and in the tree: the array reads big-endian.
for f in dtype_rebuild.pkl dtype_rebuild_noscan.pkl; do
    expect_ls $f '"a" F32 [2,3] 24'
    expect_cat $f a dtype_later.a.raw
done
expect_meta dtype_rebuild.pkl '{"a":{"$tensor":"a"},"d":'"$F4BE"'}'

# 4. Names. Control characters, '/', spaces, UTF-8 and int keys name
# tensors; a path of 4096 bytes does, one of 4097 (a key, or keys joined)
# leaves the array a value in the tree -- the same array object (pickle
# memoized it) is a tensor at the other paths.
NDARRAY='"$class":"'"$(cat reconstruct.txt)"'","args":["numpy.ndarray",[0],{"$bytes":"Yg=="}]'
RECON='{'"$NDARRAY"',"state":[1,[2,3],'"$F4"',false,{"$bytes":"'"$XBYTES"'"}]}'
expect_ls names.pkl '"ctl\u001b[2J\u0007" F32 [2,3] 24
"a/b" F32 [2,3] 24
"sp ace" F32 [2,3] 24
"\u00e9t\u00e9" F32 [2,3] 24
"7" F32 [2,3] 24
"L*4096" F32 [2,3] 24
"n*4000.p*95" F32 [2,3] 24'
expect_meta names.pkl '{"ctl\u001b[2J\u0007":{"$tensor":"ctl\u001b[2J\u0007"},"a/b":{"$tensor":"a/b"},"sp ace":{"$tensor":"sp ace"},"\u00e9t\u00e9":{"$tensor":"\u00e9t\u00e9"},"7":{"$tensor":"7"},"L*4096":{"$tensor":"L*4096"},"M*4097":'"$RECON"',"n*4000":{"p*95":{"$tensor":"n*4000.p*95"},"q*96":'"$RECON"'}}'
expect_cat names.pkl $'ctl\e[2J\a' x.raw
expect_cat names.pkl "$(printf 'L%.0s' $(seq 4096))" x.raw
check "the 4097-byte path is no tensor" 1 "$CLI" cat names.pkl "$(printf 'M%.0s' $(seq 4097))" --inert
expect_grep "the 4097-byte path is not found" "no tensor 'MMMM" err.txt
# ls prints a name's control characters escaped.
check "ls names.pkl" 0 "$CLI" ls names.pkl --inert
expect_grep "ls escapes control characters" '^ctl\\x1b\[2J\\x07 ' out.txt
if grep -q $'\e' out.txt; then bad "ls printed a raw ESC"; else ok; fi
# A top level that is a list: item paths "0", "1.k", "2.0" under "object".
expect_ls top_list.pkl '"0" F32 [2,3] 24
"1.k" F64 [4] 32
"2.0" F32 [2,3] 24'
expect_meta top_list.pkl '{"object":[{"$tensor":"0"},{"k":{"$tensor":"1.k"}},[{"$tensor":"2.0"}]]}'
expect_cat top_list.pkl 1.k y.raw
# Keys that cannot name anything are refused, naming the key's offset.
expect_refused key_empty.pkl "key_empty.pkl: offset 13: an empty dict key cannot name anything (at the top level)"
expect_refused key_nul.pkl "key_nul.pkl: offset 13: a dict key holds a NUL byte or is not valid UTF-8 (at the top level)"
expect_refused key_utf8.pkl "key_utf8.pkl: offset 3: a dict key holds a NUL byte or is not valid UTF-8 (at the top level)"
expect_refused key_int_str.pkl "key_int_str.pkl: offset 11: an int key and a str key both read '1' (at the top level)"
expect_refused key_dotted.pkl "key_dotted.pkl: two arrays are both named 'a.b' (a dotted key and nested containers that spell the same path)"

# 5. An array as the whole pickle is "array" (under "object"); NumPy
# scalars are rank-0 tensors; protocol 5 (_frombuffer, BYTEARRAY8), a
# Fortran-ordered array read in C order.
for f in top2.pkl top4.pkl top5.pkl; do
    expect_ls $f '"array" F32 [2,3] 24'
    expect_meta $f '{"object":{"$tensor":"array"}}'
    expect_cat $f array x.raw
done
expect_ls scalar_top.pkl '"array" F64 [] 8'
expect_meta scalar_top.pkl '{"object":{"$tensor":"array"}}'
expect_cat scalar_top.pkl array scalar_top.array.raw
expect_ls scalars.pkl '"f" F64 [] 8
"i" I32 [] 4
"b" BOOL [] 1'
expect_meta scalars.pkl '{"f":{"$tensor":"f"},"i":{"$tensor":"i"},"b":{"$tensor":"b"}}'
expect_cat scalars.pkl i scalars.i.raw
expect_ls p5.pkl '"c" F32 [2,3] 24
"f" I16 [3,4] 24
"t" F32 [2,3] 24'
expect_meta p5.pkl '{"c":{"$tensor":"c"},"f":{"$tensor":"f"},"t":{"$tensor":"t"}}'
expect_cat p5.pkl f f.raw
expect_cat p5.pkl t x.raw

# Arrays of dtypes cairn has no tensor type for stay values, bytes and all
# (an object array's elements as a list), each time they are referenced; a
# big-endian array is a tensor, read little-endian.
U2='{'"$NDARRAY"',"state":[1,[2],{"$class":"numpy.dtype","args":["U2",false,true],"state":[3,"<",null,null,null,8,4,8]},false,{"$bytes":"YQAAAGIAAABjAAAAAAAAAA=="}]}'
M8='{'"$NDARRAY"',"state":[1,[1],{"$class":"numpy.dtype","args":["M8",false,true],"state":[4,"<",null,null,null,-1,-1,0,[{},[{"$bytes":"RA=="},1,1,1]]]},false,{"$bytes":"V0cAAAAAAAA="}]}'
O8='{'"$NDARRAY"',"state":[1,[2],{"$class":"numpy.dtype","args":["O8",false,true],"state":[3,"|",null,null,null,-1,-1,63]},false,[1,"x"]]}'
expect_ls values.pkl '"be" F32 [2,3] 24'
expect_meta values.pkl '{"u":'"$U2"',"u2":'"$U2"',"m":'"$M8"',"o":'"$O8"',"be":{"$tensor":"be"}}'
expect_cat values.pkl be x.raw
expect_ls values.joblib '"be" F32 [2,3] 24
"x" F32 [2,3] 24'
# (the wrapper's state keys are joblib's: only the parts cairn reads are checked)
check "meta values.joblib" 0 "$CLI" meta values.joblib --inert
"$PY" -c "$SHOW" meta <out.txt >got.txt
expect_grep "values.joblib u is the wrapper" '^{"u":{"$class":"joblib.numpy_pickle.NumpyArrayWrapper","args":\[\],"state":{' got.txt
expect_grep "values.joblib u's dtype" '"dtype":{"$class":"numpy.dtype","args":\["U2",false,true\],"state":\[3,"<",null,null,null,8,4,8\]}' got.txt
expect_grep "values.joblib u's data" '},"data":{"$bytes":"YQAAAGIAAABjAAAAAAAAAA=="}},"be":{"$tensor":"be"},"x":{"$tensor":"x"}}$' got.txt
expect_cat values.joblib be x.raw
expect_cat values.joblib x x.raw

# 6. A shape given as a list (memoized, appended to after the BUILD or the
# _frombuffer REDUCE) is not an array's: NumPy's ndarray.__setstate__
# refuses it, and what NumPy's _frombuffer read at the call is not what the
# list holds at the end. The object stays a value of the tree, as written.
for f in shape_list1.pkl shape_list1_noscan.pkl fb_shape_list1.pkl shape_list4.pkl \
         fb_shape_list4.pkl; do
    expect_ls $f ''
done
expect_meta shape_list1.pkl '{"a":{"$class":"numpy.core.multiarray._reconstruct","args":["numpy.ndarray",[0],{"$bytes":"Yg=="}],"state":[1,[2,3,1],'"$F4"',false,{"$bytes":"'"$XBYTES"'"}]},"shape":[2,3,1]}'
expect_meta fb_shape_list4.pkl '{"a":{"$class":"numpy.core.numeric._frombuffer","args":[{"$bytes":"'"$XBYTES"'"},'"$F4"',[2,3,4],"C"]},"shape":[2,3,4]}'

# 7. joblib streams: the bytes follow each wrapper's BUILD, read with the
# state as it is at the BUILD (joblib reads the array there too).
expect_ls jl_shared_state.joblib '"a" F32 [2,3] 24
"b" F32 [2,3] 24'
expect_meta jl_shared_state.joblib "$AB"
expect_cat jl_shared_state.joblib a x.raw
expect_cat jl_shared_state.joblib b x2.raw
# A 'shape' and 'order' set in the state dict after the BUILD: the tensor
# keeps the first; the dict stored under 'st' shows the last (as in Python).
expect_ls jl_mutated_state.joblib '"a" F32 [2,3] 24'
expect_meta jl_mutated_state.joblib '{"a":{"$tensor":"a"},"st":{"subclass":"numpy.ndarray","shape":[3,2],"order":"F","dtype":'"$F4"',"allow_mmap":true,"numpy_array_alignment_bytes":16}}'
expect_cat jl_mutated_state.joblib a x.raw
expect_ls jl_shape_shared.joblib '"a" F32 [2,3] 24'
expect_meta jl_shape_shared.joblib '{"a":{"$tensor":"a"},"shape":[2,3]}'
# The wrapper read back from the memo is the wrapper object, not the array
# (joblib's BUILD puts the array on the stack, the memo keeps the wrapper):
# 'b' is a value of the tree, with no data.
expect_ls jl_wrapper_twice.joblib '"a" F32 [2,3] 24'
expect_meta jl_wrapper_twice.joblib '{"a":{"$tensor":"a"},"b":{"$class":"joblib.numpy_pickle.NumpyArrayWrapper","args":[],"state":{"subclass":"numpy.ndarray","shape":[2,3],"order":"C","dtype":'"$F4"',"allow_mmap":true,"numpy_array_alignment_bytes":16}}}'
# A joblib array at a path too long to name a tensor stays the wrapper,
# its bytes under "data".
expect_ls jl_long.joblib '"ok" F32 [2,3] 24'
expect_meta jl_long.joblib '{"M*4097":{"$class":"joblib.numpy_pickle.NumpyArrayWrapper","args":[],"state":{"subclass":"numpy.ndarray","shape":[2,3],"order":"C","dtype":'"$F4"',"allow_mmap":true,"numpy_array_alignment_bytes":16},"data":{"$bytes":"'"$XBYTES"'"}},"ok":{"$tensor":"ok"}}'

# 8. An array as a dict key is refused; as the arguments or the BUILD state
# of another object it is a tensor at that path; an array that is its own
# state, or an object whose state holds the object, is a cycle.
expect_refused key_array.pkl "key_array.pkl: offset 68: a dict key is a dict; only str and int keys can name things (at the top level)"
expect_ls args_array.pkl '"o.args.0" F32 [2,3] 24'
expect_meta args_array.pkl '{"o":{"$class":"mymod.Thing","args":[{"$tensor":"o.args.0"},3]}}'
expect_cat args_array.pkl o.args.0 x.raw
for f in state_array.pkl state_array_noscan.pkl; do
    expect_ls $f '"o.state" F32 [2,3] 24'
    expect_cat $f o.state x.raw
done
expect_meta state_array.pkl '{"o":{"$class":"mymod.Thing","args":[],"state":{"$tensor":"o.state"}}}'
expect_refused self_state.pkl "self_state.pkl: offset 71: a container holds itself (a reference cycle) (at 'a.state')"
expect_refused state_cycle.pkl "state_cycle.pkl: offset 22: a container holds itself (a reference cycle) (at 'o.state.me')"

# 9. The memo, with its look ahead (plain pickles) and without (_noscan:
# the text "NumpyArrayWrapper" in the pickle turns it off): one array under
# two indexes; an index overwritten (x stays where it was stored, the
# BINGET gives y); an array only the memo holds (an OrderedDict's BUILD
# drops its state) read back later; MEMOIZE counting indexes as Python does.
for v in "" _noscan; do
    expect_ls memo_two$v.pkl '"a" F32 [2,3] 24
"b" F32 [2,3] 24
"c" F32 [2,3] 24'
    expect_cat memo_two$v.pkl c x.raw
    expect_ls memo_overwrite$v.pkl '"a" F32 [2,3] 24
"b" F64 [4] 32
"c" F64 [4] 32'
    expect_cat memo_overwrite$v.pkl a x.raw
    expect_cat memo_overwrite$v.pkl c y.raw
    expect_ls memo_only$v.pkl '"c" F32 [2,3] 24'
    expect_cat memo_only$v.pkl c x.raw
    expect_ls memoize_count$v.pkl '"a" F32 [2,3] 24
"b" F32 [2,3] 24
"c" F32 [2,3] 24'
    expect_cat memoize_count$v.pkl b x.raw
done
expect_meta memo_only.pkl '{"od":{},"c":{"$tensor":"c"}}'
expect_meta memo_only_noscan.pkl '{"note":"NumpyArrayWrapper","od":{},"c":{"$tensor":"c"}}'
expect_meta memo_overwrite.pkl '{"a":{"$tensor":"a"},"b":{"$tensor":"b"},"c":{"$tensor":"c"}}'

# 10. Errors: bytes that disagree with shape x itemsize; a GET of an index
# never set, or set only later (the _noscan twins are 26 bytes longer
# before that point).
expect_refused mismatch.pkl "mismatch.pkl: offset 71: a NumPy array whose shape and dtype say 6 elements, but it holds 20 bytes (at 'a')"
expect_refused mismatch_noscan.pkl "mismatch_noscan.pkl: offset 97: a NumPy array whose shape and dtype say 6 elements, but it holds 20 bytes (at 'a')"
expect_refused get_unset.pkl "get_unset.pkl: offset 165: BINGET: memo index 7 was never set"
expect_refused get_unset_noscan.pkl "get_unset_noscan.pkl: offset 191: BINGET: memo index 7 was never set"
expect_refused long_get_unset.pkl "long_get_unset.pkl: offset 165: LONG_BINGET: memo index 300 was never set"
expect_refused get_early.pkl "get_early.pkl: offset 6: BINGET: memo index 1 was never set"
expect_refused get_early_noscan.pkl "get_early_noscan.pkl: offset 32: BINGET: memo index 1 was never set"

# 11. Work bounded by the file: a dict of 3,000 entries of one key, BUILT
# and listed 3,000 times (the walk would sort 6,000 entries 3,000 times) is
# refused by the bound on dict entries looked at, within seconds; a joblib
# wrapper state of more than 16 entries is refused at its BUILD.
start=$SECONDS
expect_refused repeated_keys.pkl "repeated_keys.pkl: offset 16: the metadata tree's dicts would have more than 2151222 entries to look at (one per 8 bytes of its budget: 16 x the 27035 bytes of pickle the file holds + 16 MiB): shared dicts with repeated keys (at '359')"
[ $((SECONDS - start)) -lt 30 ] && ok || bad "repeated_keys.pkl took $((SECONDS - start)) s"
expect_refused jl_big_state.joblib "jl_big_state.joblib: offset 248: BUILD of joblib.numpy_pickle.NumpyArrayWrapper: its state has 22 entries (joblib writes 6; at most 16)"
# A plain dict spelling a dtype is no dtype: the array stays a value.
expect_ls dtype_plain_dict.pkl ''
# A wrapper state with 'shape' twice: the last, as joblib's __dict__.update.
expect_ls jl_dup_keys.joblib '"a" F32 [3,2] 24'
expect_cat jl_dup_keys.joblib a jl_dup_keys.a.raw
finish
