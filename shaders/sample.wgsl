// Logits -> tokens on the GPU, one workgroup per row. Per row: the mask token is excluded,
// logits are divided by the temperature, an optional nucleus (top-p) filter keeps every
// token whose strictly more probable tokens hold a mass <= topP, and a token is drawn
// by Gumbel-max with a counter-based RNG keyed by (seed, step, sequence position, token),
// so a seed gives the same draw in any batch, order or runtime. Greedy takes the argmax.
// Without a nucleus (top-p 1, or greedy) that is one pass over the row; with one, a pass for
// the max, one for the normaliser, the bisection's, and the draw's.
// Also written: the probability of the drawn token (before the nucleus filter), for the
// "confident" order.
// Switches: PGM (rows are query rows; appends the drawn tokens to the clean set),
// MDLM (rows are positions; a masked position is revealed with probability pReveal,
// decided before its token is drawn).
// A dispatch samples one window of rows: the logits buffer holds rows window.first ..
// window.first + window.rows - 1 of each sequence.
#include "common.wgsl"

struct Params {
  V: u32,
  maskId: u32,
  step: u32,
  greedy: u32,
  temperature: f32,
  topP: f32,
  pReveal: f32,
  append: u32,
}

struct Window {
  first: u32,
  rows: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> logits: array<f32>;         // [batch, window.rows, V]
@group(0) @binding(4) var<storage, read> seeds: array<u32>;          // [batch]
@group(0) @binding(5) var<storage, read> queryPositions: array<u32>; // [batch, seqStride] (PGM)
@group(0) @binding(6) var<storage, read_write> cleanTokens: array<u32>;    // [batch, seqStride]
@group(0) @binding(7) var<storage, read_write> cleanPositions: array<u32>; // [batch, seqStride] (PGM)
// [batch, maxRows] pairs (token or -1, bitcast probability), read back after each step.
@group(0) @binding(8) var<storage, read_write> drawn: array<vec2<i32>>;
@group(0) @binding(9) var<uniform> window: Window;

const WG: u32 = 64u;
var<workgroup> redF: array<f32, WG>;
var<workgroup> redI: array<u32, WG>;
var<workgroup> alreadyKnown: u32;

fn hash(x: u32) -> u32 {
  // lowbias32 (Chris Wellons): a well-mixed 32-bit integer hash.
  var h = x;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

/**
 * A uniform in (0, 1) for (seed, step, position, counter). 23 bits: the largest value,
 * 1 - 2^-24, is exact in f32 (24 bits would round up to 1.0 and make -log(-log(u)) infinite).
 * The counter is hashed before it is mixed in, so two positions never share noise vectors.
 */
fn uniform01(seed: u32, step: u32, position: u32, counter: u32) -> f32 {
  return uniformAt(streamKey(seed, step, position), counter);
}

/** The part of uniform01's hash shared by every counter of one (seed, step, position). */
fn streamKey(seed: u32, step: u32, position: u32) -> u32 {
  return hash(hash(hash(seed) ^ step) ^ (position * 0x9e3779b9u));
}

fn uniformAt(key: u32, counter: u32) -> f32 {
  let h = hash(key ^ hash(counter ^ 0x632be5abu));
  return (f32(h >> 9u) + 0.5) / 8388608.0;
}

/** Gumbel noise -log(-log(u)); -log(u) kept positive where log is inexact near 1. */
fn gumbel(u: f32) -> f32 {
  return -log(max(-log(u), 5.0e-8));
}

fn reduceMax(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { redF[lid] = max(redF[lid], redF[lid + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redF[0]);
  workgroupBarrier();
  return r;
}

fn reduceSum(lid: u32, v: f32) -> f32 {
  redF[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { redF[lid] += redF[lid + s]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redF[0]);
  workgroupBarrier();
  return r;
}

/** Argmax of v over the workgroup, lowest token id among equal values. */
fn reduceArgmax(lid: u32, v: f32, id: u32) -> u32 {
  redF[lid] = v;
  redI[lid] = id;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let ov = redF[lid + s];
      let oi = redI[lid + s];
      if (ov > redF[lid] || (ov == redF[lid] && oi < redI[lid])) {
        redF[lid] = ov;
        redI[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&redI[0]);
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let b = wid.y;
  let r = window.first + wid.x;
#if PGM
  let kind = QUERY;
#else
  let kind = CLEAN;
#endif
  // Uniform control flow: every invocation of the workgroup takes the same branches.
  if (r >= seqRows(kind, b)) { return; }
  let rowBase = (b * window.rows + wid.x) * p.V;
  let outIndex = b * maxRows(kind) + r;
  let seqRow = b * dims.seqStride + r;
#if PGM
  let position = queryPositions[seqRow];
#else
  let position = r;
  // Skip known positions, and decide the reveal first (counter V is never a token id): the
  // token drawn for a position that stays masked would be thrown away.
  if (lid == 0u) { alreadyKnown = select(0u, 1u, cleanTokens[seqRow] != p.maskId); }
  let stays = uniform01(seeds[b], p.step, position, p.V) >= p.pReveal;
  if (workgroupUniformLoad(&alreadyKnown) == 1u || stays) {
    if (lid == 0u) { drawn[outIndex] = vec2<i32>(-1, 0); }
    return;
  }
#endif
  let seed = seeds[b];
  let invT = select(1.0 / p.temperature, 1.0, p.greedy == 1u);

  let stream = streamKey(seed, p.step, position);
  var m: f32;
  var z: f32;
  var token: u32;
  if (p.topP >= 1.0 || p.greedy == 1u) {
    // No nucleus: one pass over the row, drawing as it goes, with a running max and softmax
    // normaliser (rescaled whenever the max grows).
    var runMax = -3.0e38;
    var runZ = 0.0;
    var best = -3.0e38;
    var bestId = p.V;
    for (var v = lid; v < p.V; v += WG) {
      if (v == p.maskId) { continue; }
      let s = logits[rowBase + v] * invT;
      if (s > runMax) {
        runZ *= exp(runMax - s);
        runMax = s;
      }
      runZ += exp(s - runMax);
      var key = s;
      if (p.greedy == 0u) {
        key = s + gumbel(uniformAt(stream, v));
      }
      if (key > best || (key == best && v < bestId)) {
        best = key;
        bestId = v;
      }
    }
    m = reduceMax(lid, runMax);
    z = reduceSum(lid, runZ * exp(runMax - m));
    token = reduceArgmax(lid, best, bestId);
  } else {
    // Max of the scaled logits, then the softmax normaliser.
    var localMax = -3.0e38;
    for (var v = lid; v < p.V; v += WG) {
      if (v != p.maskId) { localMax = max(localMax, logits[rowBase + v] * invT); }
    }
    m = reduceMax(lid, localMax);
    var localZ = 0.0;
    for (var v = lid; v < p.V; v += WG) {
      if (v != p.maskId) { localZ += exp(logits[rowBase + v] * invT - m); }
    }
    z = reduceSum(lid, localZ);

    // Nucleus: the smallest probability threshold t with mass(prob > t) <= topP, found by
    // bisection over the bit patterns of non-negative floats (monotone in value).
    var lo = 0u;
    var hi = bitcast<u32>(1.0);
    loop {
      if (lo >= hi) { break; }
      let mid = lo + (hi - lo) / 2u;
      let t = bitcast<f32>(mid);
      var mass = 0.0;
      for (var v = lid; v < p.V; v += WG) {
        if (v != p.maskId) {
          let q = exp(logits[rowBase + v] * invT - m) / z;
          if (q > t) { mass += q; }
        }
      }
      mass = reduceSum(lid, mass);
      if (mass <= p.topP) { hi = mid; } else { lo = mid + 1u; }
    }
    let threshold = bitcast<f32>(lo);

    // Draw: Gumbel-max over the kept tokens.
    var best = -3.0e38;
    var bestId = p.V;
    for (var v = lid; v < p.V; v += WG) {
      if (v == p.maskId) { continue; }
      let s = logits[rowBase + v] * invT;
      if (threshold > 0.0 && exp(s - m) / z < threshold) { continue; }
      let key = s + gumbel(uniformAt(stream, v));
      if (key > best || (key == best && v < bestId)) {
        best = key;
        bestId = v;
      }
    }
    token = reduceArgmax(lid, best, bestId);
  }

  if (lid == 0u) {
    let prob = bitcast<i32>(exp(logits[rowBase + token] * invT - m) / z);
#if PGM
    drawn[outIndex] = vec2<i32>(i32(token), prob);
    if (p.append == 1u) {
      let at = b * dims.seqStride + seqRows(CLEAN, b) + r;
      cleanTokens[at] = token;
      cleanPositions[at] = position;
    }
#else
    drawn[outIndex] = vec2<i32>(i32(token), prob);
    cleanTokens[seqRow] = token;
#endif
  }
}
