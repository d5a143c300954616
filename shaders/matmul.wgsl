// y = epilogue(x @ w^T) for the valid rows of each sequence, w stored [N, K] (PyTorch layout),
// so both operands are read along K. Register-blocked: each thread owns a 4x4 block of
// outputs and reads straight from global memory (what SwiftShader prefers).
// Switches: VEC4 (K % 4 == 0: vec4 loads), BIAS, GELU (tanh approximation), SILU,
// GATED_RESIDUAL (y += gate * result, gate from the modulation buffer).
#include "common.wgsl"

struct Params {
  K: u32,
  N: u32,
  rowsKind: u32,
  // Row stride between sequences in y: 0 = dense (maxRows of this kind), else seqStride.
  ySeqDense: u32,
  gateOffset: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
#if VEC4
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;  // [batch, seqStride, K/4]
@group(0) @binding(4) var<storage, read> w: array<vec4<f32>>;  // [N, K/4]
#else
@group(0) @binding(3) var<storage, read> x: array<f32>;        // [batch, seqStride, K]
@group(0) @binding(4) var<storage, read> w: array<f32>;        // [N, K]
#endif
@group(0) @binding(5) var<storage, read_write> y: array<f32>;  // [batch, rows, N]
@group(0) @binding(6) var<storage, read> bias: array<f32>;     // [N]
@group(0) @binding(7) var<storage, read> modulation: array<f32>;

const TILE: u32 = 32u;


@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let rows = seqRows(p.rowsKind, b);
  let r0 = wid.y * TILE + lid.y * 4u;
  let c0 = wid.x * TILE + lid.x * 4u;
  if (r0 >= rows || c0 >= p.N) { return; }
  let xBase = b * dims.seqStride;
  // Rows/columns past the end are clamped to the last valid one and never written.
  var xr: array<u32, 4>;
  var wr: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    xr[i] = xBase + min(r0 + i, rows - 1u);
    wr[i] = min(c0 + i, p.N - 1u);
  }
  var acc: array<vec4<f32>, 4>;
#if VEC4
  let K4 = p.K / 4u;
  for (var k = 0u; k < K4; k++) {
    let w0 = w[wr[0] * K4 + k];
    let w1 = w[wr[1] * K4 + k];
    let w2 = w[wr[2] * K4 + k];
    let w3 = w[wr[3] * K4 + k];
    for (var i = 0u; i < 4u; i++) {
      let a = x[xr[i] * K4 + k];
      acc[i] += vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
    }
  }
#else
  for (var k = 0u; k < p.K; k++) {
    let wk = vec4<f32>(w[wr[0] * p.K + k], w[wr[1] * p.K + k], w[wr[2] * p.K + k], w[wr[3] * p.K + k]);
    for (var i = 0u; i < 4u; i++) {
      acc[i] += x[xr[i] * p.K + k] * wk;
    }
  }
#endif
  let yRows = select(dims.seqStride, maxRows(p.rowsKind), p.ySeqDense == 1u);
  for (var i = 0u; i < 4u; i++) {
    if (r0 + i >= rows) { break; }
    let yBase = (b * yRows + r0 + i) * p.N;
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + j;
      if (c >= p.N) { break; }
      var v = acc[i][j];
#if BIAS
      v += bias[c];
#endif
#if GELU
      let u = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
      v = 0.5 * v * (1.0 + tanh(u));
#endif
#if SILU
      v = v / (1.0 + exp(-v));
#endif
#if GATED_RESIDUAL
      y[yBase + c] += modulation[p.gateOffset + c] * v;
#else
      y[yBase + c] = v;
#endif
    }
  }
}
