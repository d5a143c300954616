#!/usr/bin/env bash
# Launches (or resumes) one of the two shipped small models; see training/RECIPE.md.
#
#   training/recipe.sh pgm-small|mdlm-small        # runs in the foreground; wrap in nohup ... &
#
# Resumes from training/runs/<id>/last.ckpt when it exists (same arguments, so the LR
# schedule, batch stream and noise continue exactly). Environment overrides:
#   STEPS (total optimizer steps, 4500), DEADLINE (Unix time to stop early and save, 0 = none),
#   THREADS (default 1).
set -euo pipefail
ID="${1:?usage: recipe.sh pgm-small|mdlm-small}"
shift
cd "$(dirname "$0")"

STEPS="${STEPS:-4500}"
COMMON=(
  --data data/out/L256 --vocab-size 8192 --bos-id 8190 --mask-id 8191 --length 256
  --hidden-size 128 --n-heads 4 --cond-dim 64 --mlp-ratio 4
  --batch-size 8 --steps "$STEPS" --lr 2e-3 --schedule cosine --min-lr-ratio 0.1
  --warmup 20 --ema 0.998 --grad-clip 1.0 --weight-decay 0.0 --seed 0
  --log-every 20 --eval-every 250 --val-batches 6 --save-every 100
  --threads "${THREADS:-1}" --deadline "${DEADLINE:-0}"
)
case "$ID" in
  pgm-small)  ARCH=(--arch pgm --encoder-blocks 2 --decoder-blocks 2
                    --pre-query-mode learn+freqs --query-process-mode linear) ;;
  mdlm-small) ARCH=(--arch mdlm --n-blocks 4) ;;
  *) echo "recipe.sh: unknown run id $ID (use pgm-small or mdlm-small)" >&2; exit 2 ;;
esac
OUT="runs/$ID"
mkdir -p "$OUT"
RESUME=()
[ -f "$OUT/last.ckpt" ] && RESUME=(--resume "$OUT/last.ckpt")
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="${THREADS:-1}"
exec env -u OPENBLAS_CORETYPE nice -n 10 /usr/bin/python3 -m pgm.train \
  --out "$OUT" "${ARCH[@]}" "${COMMON[@]}" "${RESUME[@]}" "$@"
