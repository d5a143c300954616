// Attention (see attention_io.wgsl), one thread per four query rows of one head, walking all
// keys from global memory with a running max per row; no workgroup memory (what SwiftShader
// prefers). Each key and value vector loaded serves the four rows, and keys go four at a
// time: a 4x4 block of scores, one rescale of each running sum per four keys.
// Requires: const HEAD_DIM.
#include "attention_io.wgsl"

const DV: u32 = (HEAD_DIM + 3u) / 4u;
// Query rows per thread: the four lanes of each row-wise vec4 below (the host reads it for the grid).
const THREAD_ROWS: u32 = 4u;

// Four floats of a head vector, from float 4t of the head starting at `base`; zero past
// HEAD_DIM. A last group shorter than four reads past the head (the next head, or past the
// buffer's end, where WGSL bounds every access) and drops those floats.
fn tail(t: u32) -> vec4<bool> { return vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(HEAD_DIM - 4u * t); }
fn loadQ(base: u32, t: u32) -> vec4<f32> { let at = base + 4u * t; return select(vec4<f32>(0.0), vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]), tail(t)); }
fn loadK(base: u32, t: u32) -> vec4<f32> { let at = base + 4u * t; return select(vec4<f32>(0.0), vec4<f32>(k[at], k[at + 1u], k[at + 2u], k[at + 3u]), tail(t)); }
fn loadV(base: u32, t: u32) -> vec4<f32> { let at = base + 4u * t; return select(vec4<f32>(0.0), vec4<f32>(v[at], v[at + 1u], v[at + 2u], v[at + 3u]), tail(t)); }

fn hmax(x: vec4<f32>) -> f32 { return max(max(x.x, x.y), max(x.z, x.w)); }
fn hsum(x: vec4<f32>) -> f32 { return (x.x + x.y) + (x.z + x.w); }

@compute @workgroup_size(16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let i0 = (gid.x / p.nHeads) * THREAD_ROWS;
  let h = gid.x % p.nHeads;
  let nRows = seqRows(p.queryKind, b);
  if (i0 >= nRows) { return; }
  let nKeys = seqRows(CLEAN, b);
  let seq = b * dims.seqStride;
  let kHead = p.kOffset + h * HEAD_DIM;
  let vHead = p.vOffset + h * HEAD_DIM;
  // Rows past the last are clamped to it and never written.
  var qv: array<array<vec4<f32>, DV>, 4>;
  var acc: array<array<vec4<f32>, DV>, 4>;
  for (var r = 0u; r < 4u; r++) {
    let qBase = (seq + min(i0 + r, nRows - 1u)) * p.qStride + p.qOffset + h * HEAD_DIM;
    for (var t = 0u; t < DV; t++) {
      qv[r][t] = loadQ(qBase, t) * p.scale;
      acc[r][t] = vec4<f32>(0.0);
    }
  }
  var runningMax = vec4<f32>(-3.0e38);  // per row
  var denom = vec4<f32>(0.0);
  var j = 0u;
  for (; j + 4u <= nKeys; j += 4u) {
    let k0 = (seq + j) * p.kStride + kHead;
    // Zeroed explicitly: Dawn on SwiftShader kept the previous iteration's values for a `var` without
    // initializer declared in a loop body.
    var s = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));  // [row]: scores of the four keys
    for (var t = 0u; t < DV; t++) {
      let ka = loadK(k0, t);
      let kb = loadK(k0 + p.kStride, t);
      let kc = loadK(k0 + 2u * p.kStride, t);
      let kd = loadK(k0 + 3u * p.kStride, t);
      for (var r = 0u; r < 4u; r++) {
        let a = qv[r][t];
        s[r] += vec4<f32>(dot(a, ka), dot(a, kb), dot(a, kc), dot(a, kd));
      }
    }
    let newMax = max(runningMax, vec4<f32>(hmax(s[0]), hmax(s[1]), hmax(s[2]), hmax(s[3])));
    let correction = exp(runningMax - newMax);
    var w: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) { w[r] = exp(s[r] - vec4<f32>(newMax[r])); }
    denom = denom * correction + vec4<f32>(hsum(w[0]), hsum(w[1]), hsum(w[2]), hsum(w[3]));
    let v0 = (seq + j) * p.vStride + vHead;
    for (var t = 0u; t < DV; t++) {
      let va = loadV(v0, t);
      let vb = loadV(v0 + p.vStride, t);
      let vc = loadV(v0 + 2u * p.vStride, t);
      let vd = loadV(v0 + 3u * p.vStride, t);
      for (var r = 0u; r < 4u; r++) {
        acc[r][t] = acc[r][t] * correction[r] + w[r].x * va + w[r].y * vb + w[r].z * vc + w[r].w * vd;
      }
    }
    runningMax = newMax;
  }
  // The last nKeys % 4 keys, one at a time.
  for (; j < nKeys; j++) {
    let k0 = (seq + j) * p.kStride + kHead;
    var s = vec4<f32>(0.0);  // [row]
    for (var t = 0u; t < DV; t++) {
      let kt = loadK(k0, t);
      s += vec4<f32>(dot(qv[0][t], kt), dot(qv[1][t], kt), dot(qv[2][t], kt), dot(qv[3][t], kt));
    }
    let newMax = max(runningMax, s);
    let correction = exp(runningMax - newMax);
    let w = exp(s - newMax);
    denom = denom * correction + w;
    let v0 = (seq + j) * p.vStride + vHead;
    for (var t = 0u; t < DV; t++) {
      let vt = loadV(v0, t);
      for (var r = 0u; r < 4u; r++) { acc[r][t] = acc[r][t] * correction[r] + w[r] * vt; }
    }
    runningMax = newMax;
  }
  let inv = select(vec4<f32>(0.0), 1.0 / denom, denom > vec4<f32>(0.0));
  for (var r = 0u; r < 4u; r++) {
    if (i0 + r >= nRows) { break; }
    let oBase = (seq + i0 + r) * p.nHeads * HEAD_DIM + h * HEAD_DIM;
    for (var d = 0u; d < HEAD_DIM; d++) { out[oBase + d] = acc[r][d / 4u][d % 4u] * inv[r]; }
  }
}
