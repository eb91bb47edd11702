#!/usr/bin/python3
"""summarize.py - the table of bench/encoders/run.sh from one mode's raw output folder.

Reads OUT/{gaze,gaze_bf16,ort}.R.txt for rounds R = 1..ROUNDS (and torch.1.txt when present):
TIMES lines (every timed run, ms per call), FLOPS (GFLOP per item, bench_encoders), RSS and
AGREE lines, WEIGHTS (MB of weights a text query reads), and OUT/peak.txt (fma_peak: FMA
peaks and the read bandwidth). Every timed run of every round is pooled per
workload and program; ratios are peer median / gaze median (> 1: gaze is faster).

Usage: summarize.py OUT ROUNDS
"""
import os
import statistics
import sys


def pct(xs, q):
    """The q-quantile (0..1) of xs, linear between order statistics."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def read(path, times, flops, rss, agree, weights=None):
    if not os.path.exists(path):
        return
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == 'TIMES':
            name, items = f[1], int(f[2])
            times.setdefault(name, []).extend(float(t) / items for t in f[3:])
        elif f[0] == 'FLOPS':
            flops[f[1]] = float(f[2])
        elif f[0] == 'WEIGHTS' and weights is not None:
            weights[f[1]] = float(f[2])
        elif f[0] == 'RSS':
            rss[f[1]] = max(rss.get(f[1], 0), float(f[3]))
        elif f[0] in ('AGREE', 'AGREE_TORCH'):
            agree.append(line.strip())


def main():
    out, rounds = sys.argv[1], int(sys.argv[2])
    progs = {}
    flops = {}
    agree = []
    weights = {}  # by program: WEIGHTS lines (MB a forward reads)
    for prog in ('gaze', 'gaze_bf16', 'ort', 'torch'):
        times, rss = {}, {}
        weights[prog] = {}
        for r in range(1, rounds + 1):
            read(f'{out}/{prog}.{r}.txt', times, flops, rss, agree if r == 1 else [],
                 weights[prog])
        if times:
            progs[prog] = (times, rss)
    peak = {}
    for line in open(f'{out}/peak.txt'):
        _, kind, v = line.split()
        peak[kind] = float(v) if v != 'none' else None

    gaze = progs['gaze'][0]
    print('ms per item (image, text or pair); median and p90 of every timed run of every round;')
    print('GFLOP/s at the median and its % of the measured peak (fp32 rows: FMA peak, bf16 rows:')
    print(f"vdpbf16ps peak: {peak.get('fp32')} / {peak.get('bf16')} GFLOP/s); ratio = ORT median / gaze median.")
    print('FLOPs count every token of the padded batch, the work ORT does; gaze leaves the padding')
    print('rows out of text_b32 and the ITM rows, so its GFLOP/s there count work it did not need.')
    print()
    print('| workload | precision | runs | gaze median | gaze p90 | GFLOP/s | % peak | ORT median | ORT p90 | ORT GFLOP/s | ORT/gaze |'
          + (' torch median | torch/gaze |' if 'torch' in progs else ''))
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|' + ('---:|---:|' if 'torch' in progs else ''))
    ort = progs.get('ort', ({}, {}))[0]
    # gaze rows timed against another ORT row: ORT's vit384 graph returns the embeddings and
    # every token's states in one run, so its one batch-8 time stands for both gaze rows
    peer = {'vit384_b8_states': 'vit384_b8'}
    torch = progs.get('torch', ({}, {}))[0]
    for name in gaze:
        for prog, prec in (('gaze', 'fp32'), ('gaze_bf16', 'bf16')):
            if prog not in progs or name not in progs[prog][0]:
                continue
            g = progs[prog][0][name]
            gm, g90 = statistics.median(g), pct(g, 0.9)
            gf = flops.get(name)
            gflops = gf / (gm / 1000) if gf else None
            pk = peak.get(prec)
            row = f'| {name} | {prec} | {len(g)} | {gm:.2f} | {g90:.2f} | '
            row += f'{gflops:.0f} | {100 * gflops / pk:.0f}% | ' if gflops and pk else '- | - | '
            if peer.get(name, name) in ort:
                o = ort[peer.get(name, name)]
                om = statistics.median(o)
                ogf = gf / (om / 1000) if gf else None
                row += f'{om:.2f} | {pct(o, 0.9):.2f} | ' + (f'{ogf:.0f}' if ogf else '-') + f' | {om / gm:.2f}x |'
            else:
                row += '- | - | - | - |'
            if 'torch' in progs:
                if name in torch:
                    tm = statistics.median(torch[name])
                    row += f' {tm:.2f} | {tm / gm:.2f}x |'
                else:
                    row += ' - | - |'
            print(row)
    print()
    # A text query reads each weight once: its floor is the bytes over the read bandwidth.
    if peak.get('read'):
        for prog, prec in (('gaze', 'fp32'), ('gaze_bf16', 'bf16')):
            mb = weights.get(prog, {}).get('text_b1')
            if mb and prog in progs and 'text_b1' in progs[prog][0]:
                gm = statistics.median(progs[prog][0]['text_b1'])
                print(f"text_b1 {prec}: {mb:.0f} MB of weights per query; at the measured read "
                      f"bandwidth ({peak['read']:.1f} GB/s) the floor is {mb / peak['read']:.2f} ms; "
                      f"gaze's median reads {mb / gm:.1f} GB/s ({100 * mb / gm / peak['read']:.0f}%)")
        print()
    for prog, (_, rss) in progs.items():
        print(f'peak RSS MB {prog}: ' + ', '.join(f'{k} {v:.0f}' for k, v in rss.items()))
    print('agreement (same inputs, same weights; first round):')
    for a in agree:
        print('  ' + a)


main()
