// The adaptive KV set's statistic, once the first encoder block has appended the joined rows'
// keys: per clean row r and head h, the log-sum-exp of r's first-block attention scores
// q_r . k_j / sqrt(dh) (queries and keys exact: they depend only on token and position) over
// every key of the set (`all`) and over the keys r saw when it was last encoded (`seen`), in
// `lse` [batch, seqStride, heads] pairs (all, seen). A kept row's `all` takes in the joined
// keys, and a kept row this pass re-encodes sees them all (`seen` = `all`); a joined row gets
// both over the whole set. reencode.wgsl picks rows by 1 - exp(seen - all), the share of r's
// attention on keys it has not seen. One thread per row and head. Requires: const HEAD_DIM.
#include "common.wgsl"

struct Params {
  heads: u32,
  qStride: u32,
  qOffset: u32,
  kStride: u32,
  kOffset: u32,
  scale: f32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> queries: array<f32>;    // [batch, seqStride, qStride]
@group(0) @binding(4) var<storage, read> keys: array<f32>;       // [batch, seqStride, kStride]
@group(0) @binding(5) var<storage, read_write> lse: array<vec2<f32>>; // [batch, seqStride, heads]

/** log of the sum of exp(score(r, j, h)) over keys j in [first, end) (-3e38 when empty), online. */
fn logSumExp(seq: u32, r: u32, h: u32, first: u32, end: u32) -> f32 {
  let q = (seq + r) * p.qStride + p.qOffset + h * HEAD_DIM;
  var qv: array<f32, HEAD_DIM>;
  for (var d = 0u; d < HEAD_DIM; d++) { qv[d] = queries[q + d]; }
  var top = -3.0e38;
  var sum = 0.0;
  for (var j = first; j < end; j++) {
    let k = (seq + j) * p.kStride + p.kOffset + h * HEAD_DIM;
    var dot = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) { dot += qv[d] * keys[k + d]; }
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
  let r = gid.x / p.heads;
  let h = gid.x % p.heads;
  let n = seqRows(CLEAN, b);
  if (r >= n) { return; }
  let joined = seqRows(JOINED, b);
  let seq = b * dims.seqStride;
  let at = (seq + r) * p.heads + h;
  if (r >= n - joined) {
    let all = logSumExp(seq, r, h, 0u, n);
    lse[at] = vec2<f32>(all, all);
    return;
  }
  var reencode = false;
  for (var i = 0u; i < seqRows(FRESH, b) - joined; i++) { reencode = reencode || lengths[reencodedAt(b) + i] == r; }
  let old = lse[at];
  var all = old.x;
  if (joined > 0u) {
    let taken = logSumExp(seq, r, h, n - joined, n);
    let most = max(old.x, taken);
    all = most + log(exp(old.x - most) + exp(taken - most));
  }
  lse[at] = vec2<f32>(all, select(old.y, all, reencode));
}
