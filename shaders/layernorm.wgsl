// y = LN(x) * weight [+ bias] [then modulate: y * (1 + scale) + shift], one thread per row,
// 16 rows per workgroup (the PGM's 65-row encoder as 5 workgroups, not 64 rows + 1: on a CPU
// adapter each workgroup runs on one core, and 64 + 1 left one core idle).
// Switches: BIAS (affine LayerNorm), MODULATE (adaLN shift/scale from the modulation buffer).
#include "common.wgsl"

struct Params {
  D: u32,
  rowsKind: u32,
  shiftOffset: u32,
  scaleOffset: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> x: array<f32>;        // [batch, seqStride, D]
@group(0) @binding(4) var<storage, read> weight: array<f32>;   // [D]
@group(0) @binding(5) var<storage, read_write> y: array<f32>;  // [batch, seqStride, D]
@group(0) @binding(6) var<storage, read> bias: array<f32>;     // [D]
@group(0) @binding(7) var<storage, read> modulation: array<f32>;

const EPS: f32 = 1e-5;

@compute @workgroup_size(16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let i = gid.x;
  if (i >= seqRows(p.rowsKind, b)) { return; }
  let base = (b * dims.seqStride + i) * p.D;
  var sum = 0.0;
  for (var c = 0u; c < p.D; c++) { sum += x[base + c]; }
  let mean = sum / f32(p.D);
  var sq = 0.0;
  for (var c = 0u; c < p.D; c++) {
    let d = x[base + c] - mean;
    sq += d * d;
  }
  let inv = inverseSqrt(sq / f32(p.D) + EPS);
  for (var c = 0u; c < p.D; c++) {
    var v = (x[base + c] - mean) * inv * weight[c];
#if BIAS
    v += bias[c];
#endif
#if MODULATE
    v = v * (1.0 + modulation[p.scaleOffset + c]) + modulation[p.shiftOffset + c];
#endif
    y[base + c] = v;
  }
}
