// Per-sequence statistic of the encoder output over its n_b valid rows, per channel:
// mean (pre_query_mode learn+freqs+mean) or logsumexp (learn+freqs+logsumexp).
// Switch: LOGSUMEXP.
#include "common.wgsl"

struct Params {
  D: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> x: array<f32>;        // [batch, seqStride, D]
@group(0) @binding(4) var<storage, read_write> stat: array<f32>;  // [batch, D]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let c = gid.x;
  if (c >= p.D || b >= dims.batch) { return; }
  let n = seqRows(CLEAN, b);
  let base = b * dims.seqStride * p.D + c;
  var result = 0.0;
#if LOGSUMEXP
  if (n > 0u) {
    var m = -3.0e38;
    for (var i = 0u; i < n; i++) { m = max(m, x[base + i * p.D]); }
    var s = 0.0;
    for (var i = 0u; i < n; i++) { s += exp(x[base + i * p.D] - m); }
    result = m + log(s);
  }
#else
  for (var i = 0u; i < n; i++) { result += x[base + i * p.D]; }
  result = result / f32(max(n, 1u));
#endif
  stat[b * p.D + c] = result;
}
