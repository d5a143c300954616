// The adaptive policy's pick, one workgroup per sequence, the pass's first dispatch: each kept
// row's unseen share, 1 - exp(seen - all) averaged over heads (staleness.wgsl), and the kept
// rows whose share exceeds the threshold, stalest first (ties: the lower row), at most
// perFresh x j_b of them (j_b: the rows that joined), listed in `lengths` after the counts
// (common.wgsl's cleanSetRow reads the list). The sequence's fresh count becomes j_b + their
// number (the pass's kernels read it from `lengths`) and their number goes to `report`, read
// back with the step's draws.
#include "common.wgsl"

struct Params {
  perFresh: u32,
  heads: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> lse: array<vec2<f32>>;         // [batch, seqStride, heads] (all, seen)
@group(0) @binding(4) var<storage, read_write> unseen: array<f32>;      // [batch, seqStride]
@group(0) @binding(5) var<storage, read_write> report: array<u32>;      // [batch]
@group(0) @binding(6) var<uniform> threshold: vec4<f32>;               // .x, written before each pass

const WG: u32 = 64u;
var<workgroup> stale: atomic<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.x;
  let t = lid.x;
  let seq = b * dims.seqStride;
  let joined = seqRows(JOINED, b);
  let kept = seqRows(CLEAN, b) - joined;
  let cap = min(kept, p.perFresh * joined);
  for (var r = t; r < kept; r += WG) {
    var share = 0.0;
    for (var h = 0u; h < p.heads; h++) {
      let s = lse[(seq + r) * p.heads + h];
      share += 1.0 - exp(s.y - s.x);
    }
    unseen[seq + r] = share / f32(p.heads);
  }
  storageBarrier();
  workgroupBarrier();
  for (var r = t; r < kept; r += WG) {
    let u = unseen[seq + r];
    if (u > threshold.x) {
      atomicAdd(&stale, 1u);
      var rank = 0u;
      for (var j = 0u; j < kept; j++) {
        let w = unseen[seq + j];
        if (w > u || (w == u && j < r)) { rank++; }
      }
      if (rank < cap) { lengths[reencodedAt(b) + rank] = r; }
    }
  }
  workgroupBarrier();
  if (t == 0u) {
    let picked = min(atomicLoad(&stale), cap);
    lengths[FRESH * dims.batch + b] = joined + picked;
    report[b] = picked;
  }
}
