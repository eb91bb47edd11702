#!/usr/bin/env node
// ort_ref.js - ONNX Runtime (npm onnxruntime-node, CPU execution provider) peer of
// bench_encoders.c and torch_ref.py: the same BLIP-base encoders (exported from torch_ref.py's
// modules by export_onnx.py), the same random weights and inputs (inputs.safetensors), the same
// thread count, timed the same way (warm-up, then the median and best of N runs).
//
// Sessions: intraOpNumThreads = --threads, interOpNumThreads = 1, sequential execution,
// graphOptimizationLevel 'all' (ORT fuses LayerNorm, GELU, attention MatMuls, ...). ORT uses its
// own MLAS GEMM, so the OpenBLAS environment of run.sh's modes does not affect it.
//
// Prints the torch_ref.py line formats:
//   RESULT <name> <median ms per item> <median ms per call> <items> <min ms per item>
//   RSS <phase> <current MB> <peak MB>          (peak = getrusage maxRSS of this process)
//   AGREE <name> <max |ort - gaze|>             (--gaze-out, bench_encoders --out files)
//   AGREE_TORCH <name> <max |ort - torch|>      (torch_*.f32 written by export_onnx.py)
//   LOAD <model> <ms>                           (session creation incl. graph optimisation)
//
// Usage: node ort_ref.js --models DIR --onnx DIR [--threads 2] [--gaze-out DIR] [--quick]
//        [--no-spin]   (session.intra_op.allow_spinning = 0; default: ORT's default, spinning)
//        [--only vit224]  just ViT-B/16@224 at batch 8, 1 warm-up + 4 runs, as bench_encoders'
//                         --only vit224, for interleaved A/B runs on a busy machine
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { threads: 2, quick: false, spin: true, gazeOut: null, models: null, onnx: null,
             only: null };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--models') a.models = argv[++i];
    else if (k === '--onnx') a.onnx = argv[++i];
    else if (k === '--threads') a.threads = parseInt(argv[++i], 10);
    else if (k === '--gaze-out') a.gazeOut = argv[++i];
    else if (k === '--quick') a.quick = true;
    else if (k === '--no-spin') a.spin = false;
    else if (k === '--only') a.only = argv[++i];
    else throw new Error('usage: ort_ref.js --models DIR --onnx DIR [--threads N] ' +
                         '[--gaze-out DIR] [--quick] [--no-spin] [--only vit224]');
  }
  if (!a.models || !a.onnx) throw new Error('--models and --onnx are required');
  if (a.only !== null && a.only !== 'vit224') throw new Error('--only: vit224 only');
  return a;
}

// Reads a safetensors file: { name: { dtype, shape, data (Float32Array | Int32Array) } }.
function loadSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  const out = {};
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = h.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const copy = new ArrayBuffer(bytes.length); // aligned copy
    new Uint8Array(copy).set(bytes);
    const Arr = { F32: Float32Array, I32: Int32Array }[h.dtype];
    if (!Arr) throw new Error(`unsupported dtype ${h.dtype} for ${name}`);
    out[name] = { shape: h.shape, data: new Arr(copy) };
  }
  return out;
}

function rssLine(phase) {
  const cur = process.memoryUsage().rss / 2 ** 20;
  const peak = process.resourceUsage().maxRSS / 1024; // KB -> MB
  console.log(`RSS ${phase} ${cur.toFixed(0)} ${peak.toFixed(0)}`);
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function bench(fn, warm, runs) {
  for (let i = 0; i < warm; i++) await fn();
  const ts = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return [ median(ts), Math.min(...ts), ts ];
}

function report(name, [ med, best, ts ], items) {
    console.log(`RESULT ${name} ${(med / items).toFixed(2)} ${med.toFixed(2)} ${items} ` +
                `${(best / items).toFixed(2)}`);
    // every timed run, ms per call: run.sh pools them over its rounds
    console.log(`TIMES ${name} ${items} ${ts.map((t) => t.toFixed(3)).join(' ')}`);
}

function maxAbsDiff(file, mine) {
  if (!fs.existsSync(file)) return `missing(${path.basename(file)})`;
  const b = fs.readFileSync(file);
  const ref = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  if (ref.length !== mine.length) return `size(${ref.length}!=${mine.length})`;
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ref[i] - mine[i]));
  return d.toExponential(2);
}

function agree(a, name, mine, fname) {
  if (a.gazeOut) console.log(`AGREE ${name} ${maxAbsDiff(path.join(a.gazeOut, fname), mine)}`);
  console.log(`AGREE_TORCH ${name} ${maxAbsDiff(path.join(a.onnx, 'torch_' + fname), mine)}`);
}

const f32 = (data, dims) => new ort.Tensor('float32', data, dims);
const i64 = (data, dims) => new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)),
                                           dims);

// (B, C, S, S) pixels -> the first n images as a tensor
function pixels(t, n) {
  const [, c, h, w] = t.shape;
  return f32(t.data.subarray(0, n * c * h * w), [n, c, h, w]);
}

// (B, T) int32 ids/mask -> rows [0, n) and columns [0, cols) as int64 tensors
function tokens(t, n, cols) {
  const T = t.shape[1];
  const out = new Int32Array(n * cols);
  for (let r = 0; r < n; r++) out.set(t.data.subarray(r * T, r * T + cols), r * cols);
  return i64(out, [n, cols]);
}

async function main() {
  const a = parseArgs(process.argv);
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (!a.spin) opts.extra = { session: { intra_op: { allow_spinning: '0' } } };
  const load = async (name) => {
    const t0 = process.hrtime.bigint();
    const s = await ort.InferenceSession.create(path.join(a.onnx, name + '.onnx'), opts);
    console.log(`LOAD ${name} ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)}`);
    return s;
  };
  // timed runs per benchmark: the same counts as torch_ref.py and bench_encoders.c
  const [r224, r384, r8, rt1, rt32, ritm] = a.quick ? [1, 1, 1, 1, 1, 1] : [5, 3, 3, 10, 3, 3];
  const inp = loadSafetensors(path.join(a.models, 'inputs.safetensors'));
  const ortVersion = require('onnxruntime-node/package.json').version;
  console.log(`INFO onnxruntime-node ${ortVersion} threads ${a.threads} inter 1 ` +
              `opt all spin ${a.spin ? 'default' : 'off'}`);

  // ViT-B/16 @ 224
  let s = await load('vit224');
  let px = inp.pixels_224;
  const vit = (sess, n) => sess.run({ pixels: pixels(px, n) });
  if (a.only) {
    report('vit224_b8', await bench(() => vit(s, 8), 1, 4), 8);
    rssLine('vit224');
    await s.release();
    return;
  }
  report('vit224_b1', await bench(() => vit(s, 1), 1, r224), 1);
  report('vit224_b8', await bench(() => vit(s, 8), 1, r8), 8);
  agree(a, 'vit224_emb', (await vit(s, 8)).emb.data, 'vit224_emb.f32');
  rssLine('vit224');
  await s.release();

  // BLIP-base @ 384: vision, text, ITM
  s = await load('vit384');
  px = inp.pixels_384;
  report('vit384_b1', await bench(() => vit(s, 1), 1, r384), 1);
  report('vit384_b8', await bench(() => vit(s, 8), 1, r8), 8);
  const o384 = await vit(s, 8);
  agree(a, 'vit384_emb', o384.emb.data, 'vit384_emb.f32');
  const [, Ti, Dv] = o384.last.dims;
  const img = o384.last.data.slice(0, Ti * Dv); // (1, Ti, Dv): image 0's post-LN states
  await s.release();

  s = await load('text');
  const { ids, mask } = inp;
  let n1 = 0;
  for (let j = 0; j < mask.shape[1]; j++) n1 += mask.data[j];
  const T = ids.shape[1];
  const f1 = { ids: tokens(ids, 1, n1), mask: tokens(mask, 1, n1) };
  const f32caps = { ids: tokens(ids, 32, T), mask: tokens(mask, 32, T) };
  report('text_b1', await bench(() => s.run(f1), 2, rt1), 1);
  report('text_b32', await bench(() => s.run(f32caps), 1, rt32), 32);
  agree(a, 'text_emb', (await s.run(f32caps)).emb.data, 'text_emb.f32');
  await s.release();

  s = await load('itm');
  const B = inp.itm_ids.shape[0];
  const Tt = inp.itm_ids.shape[1];
  const fi = { ids: tokens(inp.itm_ids, B, Tt), mask: tokens(inp.itm_mask, B, Tt) };
  const shared = { ...fi, image: f32(img, [1, Ti, Dv]) };
  const rep = new Float32Array(B * Ti * Dv);
  for (let b = 0; b < B; b++) rep.set(img, b * Ti * Dv);
  const hf = { ...fi, image: f32(rep, [B, Ti, Dv]) };
  report('itm_1x16', await bench(() => s.run(shared), 1, ritm), B);
  report('itm_pairs', await bench(() => s.run(hf), 1, ritm), B); // each pair its own image
  agree(a, 'itm_logits', (await s.run(shared)).logits.data, 'itm_logits.f32');
  rssLine('blip384');
  await s.release();
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
