// Shared by every kernel that walks the packed token sets.
// Activation buffers hold `batch` sequences of `seqStride` (= L) rows each; sequence b
// owns rows b*seqStride .. b*seqStride + n_b - 1. Clean tokens and queries have their own
// per-sequence counts, so padding is never computed and never read. The fresh rows are the
// clean tokens an incremental pass encodes, packed at rows 0..m_b-1 of the buffers that hold
// them: the joined ones (the clean set's last j_b rows), then any kept rows the adaptive
// policy re-encodes (whose count its pick kernel writes on the GPU, WRITE_LENGTHS).
struct Dims {
  batch: u32,
  seqStride: u32,
  maxClean: u32,
  maxQuery: u32,
}

const CLEAN: u32 = 0u;
const QUERY: u32 = 1u;
const FRESH: u32 = 2u;
const JOINED: u32 = 3u;

@group(0) @binding(0) var<uniform> dims: Dims;
// [batch] clean counts, then [batch] query, fresh and joined counts.
#if WRITE_LENGTHS
@group(0) @binding(1) var<storage, read_write> lengths: array<u32>;
#else
@group(0) @binding(1) var<storage, read> lengths: array<u32>;
#endif

fn seqRows(kind: u32, b: u32) -> u32 {
  return lengths[kind * dims.batch + b];
}

fn maxRows(kind: u32) -> u32 {
  return select(dims.maxClean, dims.maxQuery, kind == QUERY);
}
