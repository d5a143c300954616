// Shared by every kernel that walks the packed token sets.
// Activation buffers hold `batch` sequences of `seqStride` (= L) rows each; sequence b
// owns rows b*seqStride .. b*seqStride + n_b - 1. Clean tokens and queries have their own
// per-sequence counts, so padding is never computed and never read. The fresh rows are the
// clean tokens an incremental pass encodes: the last m_b of the clean set, packed at rows
// 0..m_b-1 of the activations that hold them, and read where they are in the clean set's
// tokens and positions (cleanSetRow).
struct Dims {
  batch: u32,
  seqStride: u32,
  maxClean: u32,
  maxQuery: u32,
}

const CLEAN: u32 = 0u;
const QUERY: u32 = 1u;
const FRESH: u32 = 2u;

@group(0) @binding(0) var<uniform> dims: Dims;
// [batch] clean counts, then [batch] query counts, then [batch] fresh counts.
@group(0) @binding(1) var<storage, read> lengths: array<u32>;

fn seqRows(kind: u32, b: u32) -> u32 {
  return lengths[kind * dims.batch + b];
}

// Row i of sequence b's rows of `kind` in a [batch, seqStride] index buffer (the clean set's
// tokens or positions, the query positions): a fresh row is the clean set's row n_b - m_b + i.
fn cleanSetRow(kind: u32, b: u32, i: u32) -> u32 {
  return b * dims.seqStride + select(0u, seqRows(CLEAN, b) - seqRows(FRESH, b), kind == FRESH) + i;
}

fn maxRows(kind: u32) -> u32 {
  return select(dims.maxClean, dims.maxQuery, kind == QUERY);
}
