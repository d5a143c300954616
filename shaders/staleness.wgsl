// The adaptive KV set's statistic, once the first encoder block has appended the joined rows'
// keys: per clean row r and head h, the log-sum-exp of r's first-block attention scores
// q_r . k_j / sqrt(dh) (queries and keys exact: they depend only on token and position) over
// every key of the set (`all`) and over the keys r saw when it was last encoded (`seen`), in
// `lse` [batch, seqStride, heads] pairs (all, seen). A row this pass encodes (joined or
// re-encoded) gets both over the whole set; every other row's `all` takes in the joined keys.
// reencode.wgsl picks rows by 1 - exp(seen - all), the share of r's attention on keys it has
// not seen.
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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let r = gid.x;
  let n = seqRows(CLEAN, b);
  if (r >= n) { return; }
  let seq = b * dims.seqStride;
  let joined = seqRows(JOINED, b);
  var encoded = r >= n - joined;
  for (var i = 0u; i < seqRows(FRESH, b) - joined; i++) { encoded = encoded || reencoded[seq + i] == r; }
  let first = select(n - joined, 0u, encoded); // the keys to take in
  if (first >= n) { return; }
  for (var h = 0u; h < p.heads; h++) {
    let q = (seq + r) * p.qStride + p.qOffset + h * p.headDim;
    var top = -3.0e38;
    var sum = 0.0;
    for (var j = first; j < n; j++) {
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
    let taken = top + log(sum);
    let at = (seq + r) * p.heads + h;
    if (encoded) {
      lse[at] = vec2<f32>(taken, taken);
    } else {
      let old = lse[at];
      let most = max(old.x, taken);
      lse[at] = vec2<f32>(most + log(exp(old.x - most) + exp(taken - most)), old.y);
    }
  }
}
