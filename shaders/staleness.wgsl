// The adaptive KV set's statistic, once the first encoder block has appended the joined rows'
// keys: per clean row r and head h, the log-sum-exp of r's first-block attention scores
// q_r . k_j / sqrt(dh) (queries and keys exact: they depend only on token and position) over
// every key of the set (`all`) and over the keys r saw when it was last encoded (`seen`), in
// `lse` [batch, seqStride, heads] pairs (all, seen). A row this pass encodes (joined or
// re-encoded) gets both over the whole set; every other row's `all` takes in the joined keys.
// reencode.wgsl picks rows by 1 - exp(seen - all), the share of r's attention on keys it has
// not seen. One thread per row and head: first every kept row's (threads of a SIMD group then
// run loops of one length: lavapipe runs a group's loop as long as its longest lane's), then
// every fresh row's.
#include "common.wgsl"

struct Params {
  heads: u32,
  headDim: u32,
  qStride: u32,
  qOffset: u32,
  kStride: u32,
  kOffset: u32,
  scale: f32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> queries: array<f32>;    // [batch, seqStride, qStride]
@group(0) @binding(4) var<storage, read> keys: array<f32>;       // [batch, seqStride, kStride]
@group(0) @binding(5) var<storage, read> reencoded: array<u32>;  // [batch, seqStride] clean rows
@group(0) @binding(6) var<storage, read_write> lse: array<vec2<f32>>; // [batch, seqStride, heads]

/** log of the sum of exp(score(r, j, h)) over keys j in [first, end) (-3e38 when empty), online. */
fn logSumExp(seq: u32, r: u32, h: u32, first: u32, end: u32) -> f32 {
  let q = (seq + r) * p.qStride + p.qOffset + h * p.headDim;
  var top = -3.0e38;
  var sum = 0.0;
  for (var j = first; j < end; j++) {
    let k = (seq + j) * p.kStride + p.kOffset + h * p.headDim;
    var dot = 0.0;
    for (var d = 0u; d < p.headDim; d++) { dot += queries[q + d] * keys[k + d]; }
    let score = dot * p.scale;
    if (score > top) {
      sum = sum * exp(top - score) + 1.0;
      top = score;
    } else {
      sum += exp(score - top);
    }
  }
  return top + log(sum);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let n = seqRows(CLEAN, b);
  let joined = seqRows(JOINED, b);
  let seq = b * dims.seqStride;
  let kept = dims.maxClean * p.heads;
  let h = gid.x % p.heads;
  if (gid.x < kept) {
    // A kept row this pass does not encode: its `all` takes in the joined keys.
    let r = gid.x / p.heads;
    if (r >= n - joined) { return; } // joined (or padding)
    for (var i = 0u; i < seqRows(FRESH, b) - joined; i++) {
      if (reencoded[seq + i] == r) { return; }
    }
    let at = (seq + r) * p.heads + h;
    let taken = logSumExp(seq, r, h, n - joined, n);
    let old = lse[at];
    let most = max(old.x, taken);
    lse[at] = vec2<f32>(most + log(exp(old.x - most) + exp(taken - most)), old.y);
    return;
  }
  // Fresh row i (joined, then re-encoded, packed as rows.wgsl packs them): the whole set.
  let i = (gid.x - kept) / p.heads;
  if (i >= seqRows(FRESH, b)) { return; }
  var r = n - joined + i;
  if (i >= joined) { r = reencoded[seq + i - joined]; }
  let all = logSumExp(seq, r, h, 0u, n);
  lse[(seq + r) * p.heads + h] = vec2<f32>(all, all);
}
