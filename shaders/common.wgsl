// Shared by every kernel that walks the packed token sets.
// Activation buffers hold `batch` sequences of `seqStride` (= L) rows each; sequence b
// owns rows b*seqStride .. b*seqStride + n_b - 1. Clean tokens and queries have their own
// per-sequence counts, so padding is never computed and never read. The fresh rows are the
// clean tokens an incremental pass encodes, packed at rows 0..m_b-1 of the activations that
// hold them and read where they are in the clean set's tokens and positions (cleanSetRow):
// first the j_b that joined (the clean set's tail), then any kept rows the adaptive policy
// re-encodes, which its pick kernel lists in `lengths` with their count (WRITE_LENGTHS).
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
// [batch] clean counts, then [batch] query, fresh and joined counts; then per sequence
// [seqStride] the clean rows of its re-encoded fresh rows (adaptive passes only).
#if WRITE_LENGTHS
@group(0) @binding(1) var<storage, read_write> lengths: array<u32>;
#else
@group(0) @binding(1) var<storage, read> lengths: array<u32>;
#endif

fn seqRows(kind: u32, b: u32) -> u32 {
  return lengths[kind * dims.batch + b];
}

/** Where sequence b's list of re-encoded rows starts in `lengths`. */
fn reencodedAt(b: u32) -> u32 {
  return 4u * dims.batch + b * dims.seqStride;
}

// Row i of sequence b's rows of `kind` in a [batch, seqStride] buffer of the clean set (its
// tokens or positions, its cached keys and values) or of the queries: a fresh row is the clean
// set's row n_b - j_b + i if it joined (i < j_b), else the re-encoded row listed for it.
fn cleanSetRow(kind: u32, b: u32, i: u32) -> u32 {
  let joined = seqRows(JOINED, b);
  if (kind != FRESH || i < joined) {
    return b * dims.seqStride + select(0u, seqRows(CLEAN, b) - joined, kind == FRESH) + i;
  }
  return b * dims.seqStride + lengths[reencodedAt(b) + i - joined];
}

fn maxRows(kind: u32) -> u32 {
  return select(dims.maxClean, dims.maxQuery, kind == QUERY);
}
