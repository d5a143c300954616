// Subgroup matmul (see matmul_io.wgsl) for CPU-emulated adapters, where every storage load is
// a gather across the lanes and costs the same whether the lanes share its address or not.
// A workgroup covers TM rows x 4 WG columns: each of its WG threads owns 4 columns, and all its
// threads share the rows, so the row values are loaded once per subgroup instead of once per
// lane: the lanes of a subgroup read SG consecutive x values of a row together (one each) and
// pass them round with subgroupBroadcast. Each weight vector loaded then serves TM rows and
// each x value loaded serves 4 x SG multiply-adds.
// Correct at any subgroup size >= SG (lanes past SG load values nobody reads); SG is 4, or 8
// with SG8 (the adapter's smallest subgroup size). No early exit but the workgroup's own, so
// every lane of a subgroup takes part in each broadcast.
// Requires: const TM, WG (a multiple of SG); switches SG8 and XSCALAR (x as plain floats).
// NORM: each lane sums its x values' share of each row's statistics, added up at the end
// (lanes past SG, which load values nobody reads, left out; past K, zero: KTAIL, K % SG != 0).
// The second K step of an 8-lane chunk is written out again rather than shared through a
// function with pointer arguments, which SwiftShader ran 30% slower (3.3 vs 4.6 GFLOP/s).
enable subgroups;
#include "matmul_io.wgsl"

#if SG8
const SG: u32 = 8u;
#else
const SG: u32 = 4u;
#endif
// The block of y a workgroup covers (the host reads it for the grid).
const BLOCK_ROWS: u32 = TM;
const BLOCK_COLS: u32 = 4u * WG;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let b = wid.z;
  let rows = rowCount(b);
  let r0 = wid.y * BLOCK_ROWS;
  if (r0 >= rows) { return; }
  let c0 = wid.x * BLOCK_COLS + li * 4u;
  // Rows/columns past the end are clamped to the last valid one and never written.
  let wr = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.N - 1u));
  var xr: array<u32, TM>;
#for i TM
  xr[i] = (firstXRow(b) + min(r0 + i, rows - 1u)) * p.K;
#endfor
#if NORM
  var first: array<f32, TM>;
#for i TM
  first[i] = x[xr[i]];
#endfor
  var sums: array<f32, TM>;
  var squares: array<f32, TM>;
#endif
  var acc: array<vec4<f32>, TM>;
  var own: array<f32, TM>;
  var xs: array<vec4<f32>, TM>;
  let steps = kSteps();
  for (var k0 = 0u; k0 < p.K; k0 += SG) {
    // This lane's x value of each row (zero past K); lanes past SG load one nobody reads.
    let k = k0 + min(lane, SG - 1u);
    let kIn = min(k, p.K - 1u);
#if NORM
    let gain = constants[p.gainOffset + kIn];
#for i TM
#if KTAIL
    own[i] = select(0.0, x[xr[i] + kIn] - first[i], k < p.K);
#else
    own[i] = x[xr[i] + kIn] - first[i];
#endif
    sums[i] += own[i];
    squares[i] += own[i] * own[i];
    own[i] *= gain;
#endfor
#else
#for i TM
    own[i] = select(0.0, x[xr[i] + kIn], k < p.K);
#endfor
#endif
    let q = k0 / 4u;
#for i TM
    xs[i] = vec4<f32>(subgroupBroadcast(own[i], 0u), subgroupBroadcast(own[i], 1u), subgroupBroadcast(own[i], 2u), subgroupBroadcast(own[i], 3u));
#endfor
    {
      let w0 = loadW(wr.x, q);
      let w1 = loadW(wr.y, q);
      let w2 = loadW(wr.z, q);
      let w3 = loadW(wr.w, q);
#for i TM
      acc[i] += vec4<f32>(dot(xs[i], w0), dot(xs[i], w1), dot(xs[i], w2), dot(xs[i], w3));
#endfor
    }
#if SG8
    if (q + 1u < steps) {
#for i TM
      xs[i] = vec4<f32>(subgroupBroadcast(own[i], 4u), subgroupBroadcast(own[i], 5u), subgroupBroadcast(own[i], 6u), subgroupBroadcast(own[i], 7u));
#endfor
      {
        let w0 = loadW(wr.x, q + 1u);
        let w1 = loadW(wr.y, q + 1u);
        let w2 = loadW(wr.z, q + 1u);
        let w3 = loadW(wr.w, q + 1u);
#for i TM
        acc[i] += vec4<f32>(dot(xs[i], w0), dot(xs[i], w1), dot(xs[i], w2), dot(xs[i], w3));
#endfor
      }
    }
#endif
  }
#if NORM
  var stats: array<vec2<f32>, TM>;
  let counted = lane < SG;
#for i TM
  stats[i] = rowStats(subgroupAdd(select(0.0, sums[i], counted)), subgroupAdd(select(0.0, squares[i], counted)));
#endfor
  let columns = normColumns(c0);
#endif
  for (var i = 0u; i < TM; i++) {
    if (r0 + i >= rows) { break; }
#if NORM
    store4(b, r0 + i, c0, normalizedSums(acc[i], columns, stats[i]));
#else
    store4(b, r0 + i, c0, acc[i]);
#endif
  }
}
