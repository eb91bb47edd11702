#!/usr/bin/env python3
"""grow_library.py - grow a gaze library made by `gaze index --keep-tokens` to N photos, for
timing a re-rank at a library size that would take hours to index for real.

    python3 bench/keep_tokens/grow_library.py SRC.db DST.db N

DST is a copy of SRC whose image items are repeated until there are N: each copy gets its own
path ("<path>#copy<k>"), its own content hash, a vector near the original's (Gaussian noise
of 0.05 per component, then unit length again, so that the copies do not tie in the search)
and the original's stored token states (the bytes a real library of N photos would hold). The
index cache (.faiss) is not copied, and the index generation is bumped: gaze rebuilds the
index from the stored vectors on first use, as it does after any change it did not write
itself. Run one search before timing so that the rebuild is not timed.
"""
import os
import random
import shutil
import sqlite3
import struct
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, dst, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for f in (dst, dst + '-wal', dst + '-shm'):
        if os.path.exists(f):
            os.remove(f)
    s = sqlite3.connect(src)
    s.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    s.close()
    shutil.copyfile(src, dst)
    c = sqlite3.connect(dst)
    rng = random.Random(1)
    cols = [r[1] for r in c.execute('PRAGMA table_info(items)')]
    base = c.execute('SELECT * FROM items WHERE kind = 1 ORDER BY id').fetchall()
    have = len(base)
    if have == 0:
        sys.exit(f'{src}: no image items')
    model_ids = [r[0] for r in c.execute('SELECT id FROM models')]
    ic = cols.index
    k = 0
    while have < want:
        k += 1
        for row in base:
            if have >= want:
                break
            new = list(row)
            new[ic('id')] = None
            new[ic('path')] = bytes(row[ic('path')]) + b'#copy%d' % k
            new[ic('content_hash')] = rng.getrandbits(62)
            cur = c.execute(f'INSERT INTO items({",".join(cols)}) VALUES ({",".join("?" * len(cols))})', new)
            item = cur.lastrowid
            for mid in model_ids:
                e = c.execute('SELECT vec FROM embeddings WHERE item_id = ? AND model_id = ?',
                              (row[0], mid)).fetchone()
                if e:
                    v = struct.unpack(f'{len(e[0]) // 4}f', e[0])
                    v = [x + rng.gauss(0, 0.05) for x in v]
                    n = sum(x * x for x in v) ** 0.5
                    c.execute('INSERT INTO embeddings(item_id, model_id, vec) VALUES (?, ?, ?)',
                              (item, mid, struct.pack(f'{len(v)}f', *(x / n for x in v))))
                c.execute('INSERT INTO tokens(item_id, model_id, format, n_tokens, dim, data) '
                          'SELECT ?, model_id, format, n_tokens, dim, data FROM tokens '
                          'WHERE item_id = ? AND model_id = ?', (item, row[0], mid))
            have += 1
    c.execute('UPDATE index_state SET generation = generation + 1')
    c.commit()
    print(f'{dst}: {have} image items, '
          f'{c.execute("SELECT count(*) FROM tokens").fetchone()[0]} with tokens, '
          f'{os.path.getsize(dst) / 1e9:.2f} GB')
    c.close()


if __name__ == '__main__':
    main()
