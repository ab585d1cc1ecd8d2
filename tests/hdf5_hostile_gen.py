# hdf5_hostile_gen.py DIR -- HDF5 files for test_hdf5_hostile.c, made by h5py:
# datasets that were never written (fill values), a gzip bomb, a dataset
# larger than verify's read block with a damaged last chunk, one dataset per
# filter plugin, a filter libhdf5 cannot load, and string and compound
# datasets. Prints the plugin filters h5py could not write.
import sys, zlib
import numpy as np
import h5py

d = sys.argv[1]
MiB = 1 << 20

with h5py.File(d + '/fill.h5', 'w') as f:
    f.create_dataset('contig', shape=(256 * MiB,), dtype='f4')                  # 1 GiB, no storage
    f.create_dataset('chunked', shape=(256 * MiB,), dtype='f4', chunks=(MiB,))  # 1 GiB, no chunks
    f.create_dataset('small', shape=(512 * 1024,), dtype='i4', fillvalue=7)     # 2 MiB of sevens
    f.create_dataset('grid', shape=(4, 1 << 14, 1 << 14), dtype='u1', chunks=(1, 256, 256))

# 128 MiB of zeros in 1 MiB gzip chunks of about 1 KB each, written as
# precompressed chunks so the generator never holds the data.
with h5py.File(d + '/bomb.h5', 'w') as f:
    ds = f.create_dataset('bomb', shape=(32 * MiB,), dtype='f4', chunks=(MiB // 4,),
                          compression='gzip')
    z = zlib.compress(bytes(MiB), 9)
    for i in range(128):
        ds.id.write_direct_chunk((i * (MiB // 4),), z)

# 2 x 3000 x 1500 float32 (36 MB, zeros with a marker per row, fletcher32):
# verify reads it in hyperslabs along axis 1.
x = np.zeros((2, 3000, 1500), dtype='f4')
x[:, :, 0] = np.arange(3000)
for name in ('big', 'big_bad'):
    with h5py.File(d + '/%s.h5' % name, 'w') as f:
        f.create_dataset('x', data=x, chunks=(1, 500, 1500), compression='gzip',
                         fletcher32=True)
with h5py.File(d + '/big_bad.h5', 'r') as f:
    info = f['x'].id.get_chunk_info(f['x'].id.get_num_chunks() - 1)
with open(d + '/big_bad.h5', 'r+b') as g:
    g.seek(info.byte_offset + info.size // 2)
    b = g.read(1)
    g.seek(info.byte_offset + info.size // 2)
    g.write(bytes([b[0] ^ 0xff]))

# One dataset per filter plugin Debian packages (LZF, Blosc with its
# compressors, BZip2, LZ4), and Bitshuffle when there.
v = (np.arange(20000, dtype='f4') % 97).reshape(200, 100)
missing = []
with h5py.File(d + '/filters.h5', 'w') as f:
    f.create_dataset('lzf', data=v, compression='lzf')
    tries = [('bzip2', 307, ()), ('lz4', 32004, ()), ('bitshuffle', 32008, (0, 2)),
             ('blosc', 32001, ()), ('blosc_lz4', 32001, (2, 2, 4, 0, 5, 1, 1)),
             ('blosc_zstd', 32001, (2, 2, 4, 0, 5, 2, 5))]
    for name, fid, opts in tries:
        if not h5py.h5z.filter_avail(fid):
            missing.append(name)
            continue
        f.create_dataset(name, data=v, chunks=(50, 100), compression=fid,
                         compression_opts=opts or None)

# A filter id no plugin provides: a BZip2 dataset whose pipeline message
# says 308 (the earliest file format has no header checksums).
with h5py.File(d + '/nofilter.h5', 'w') as f:
    f.create_dataset('x', data=v, chunks=(50, 100), compression=307)
raw = bytearray(open(d + '/nofilter.h5', 'rb').read())
at = raw.find(b'\x33\x01', 0)
while at >= 0 and not raw[at + 8:at + 11] == b'HDF':
    at = raw.find(b'\x33\x01', at + 1)
assert at >= 0, 'no bzip2 pipeline entry'
raw[at:at + 2] = b'\x34\x01'
open(d + '/nofilter.h5', 'wb').write(bytes(raw))

# Strings and compounds.
with h5py.File(d + '/strings.h5', 'w') as f:
    f['vocab'] = np.array(['<pad>', 'the', 'caf\u00e9', ''], dtype=h5py.string_dtype())
    f['classes'] = np.array([b'cat', b'dog', b'bird'], dtype='S4')
    f['title'] = 'scalar title'
    f.create_dataset('grid', data=np.array([['a', 'b'], ['c', 'd']], dtype=h5py.string_dtype()))
    f['tokenizer/merges'] = np.array(['t h', 'th e'], dtype=h5py.string_dtype())
    f['record'] = np.array([(1, 2.5), (3, 4.5)], dtype=[('id', 'i4'), ('score', 'f8')])
    f['weights'] = np.arange(6, dtype='f4')
    f['tricky\x1b]0;x\x07\r\nname'] = np.arange(2, dtype='i2')
    # 2^20 elements of one 4 KiB heap string: at most 16 x the file in bytes
    one = 'x' * 4096
    ds = f.create_dataset('shared', shape=(1 << 20,), dtype=h5py.string_dtype(),
                          chunks=(1 << 16,), compression='gzip')
    ds[:64] = one
# A .keras archive whose weights member inflates 60 KB into 60 MiB (under
# max_inflate): read in place, it costs its size once.
import json, os, zipfile
with h5py.File(d + '/kbomb_w.h5', 'w') as f:
    f.create_dataset('layers/dense/vars/0', data=np.zeros((60 * MiB) // 4, dtype='f4'))
with zipfile.ZipFile(d + '/kbomb.keras', 'w', compression=zipfile.ZIP_DEFLATED,
                     compresslevel=9) as z:
    z.write(d + '/kbomb_w.h5', 'model.weights.h5')
    z.writestr('config.json', json.dumps({'class_name': 'Sequential'}))
os.remove(d + '/kbomb_w.h5')

# Refused at open: links and storage in other files.
with h5py.File(d + '/extlink.h5', 'w') as f:
    f['w'] = np.arange(3.0)
    f['ext'] = h5py.ExternalLink('fill.h5', '/small')
with h5py.File(d + '/extstore.h5', 'w') as f:
    f.create_dataset('x', shape=(3,), dtype='f8', external=[('fill.h5', 0, 24)])
print('missing:', ' '.join(missing))
