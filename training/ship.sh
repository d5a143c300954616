#!/usr/bin/env bash
# Ship the two trained small models in one command (see training/RECIPE.md):
#
#   training/ship.sh [PGM_RUN_DIR] [MDLM_RUN_DIR]     # default training/runs/pgm-small training/runs/mdlm-small
#
# 0. copies each run's last.ckpt, log.jsonl and pid to a temporary folder (a running training
#    may overwrite last.ckpt at any time), then works on the copies only;
# 1. training/final_eval.py: held-out bound (EMA weights, val.bin, fixed noise), tokens seen,
#    training time -> docs/final-eval.json;
# 2. pgm convert --dtype f16 -> models/pgm-small, models/mdlm-small (checks vocabMap, <= 25 MB);
# 3. weights-manifest.json (default pgm-small), checked with the engine's validateManifest;
# 4. tests/fixtures/shipped/<id> (PyTorch logits of the f16-rounded EMA weights), then
#    tests/gpu/shipped.test.ts (Node; and Chromium unless SHIP_BROWSER=0);
# 5. docs/training-curves.svg;
# 6. docs/samples.md (pgm generate on the default model, fixed seeds);
# 7. a summary (val bounds, sizes, sha256).
#
# Environment: VAL_CHUNKS (validate on the first N of val.bin's 500 chunks; default 160 =
# 10 batches of 16: a full pass took ~9 min per model on the loaded 2 cores; 0 = all),
# SHIP_TESTS=0 (skip the vitest run), SHIP_BROWSER=0 (Node tests only), SHIP_SAMPLES=0 (skip docs/samples.md), SHIP_MDLM_SAMPLE=1 (add an mdlm-small sample: slow).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PGM_RUN="${1:-training/runs/pgm-small}"
MDLM_RUN="${2:-training/runs/mdlm-small}"
VAL_CHUNKS="${VAL_CHUNKS:-160}"
PY=/usr/bin/python3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
STAGE="$(mktemp -d /tmp/ship.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
say() { printf '\n== %s\n' "$*" >&2; }

say "0. snapshot of the checkpoints -> $STAGE"
declare -A RUN=([pgm-small]="$PGM_RUN" [mdlm-small]="$MDLM_RUN")
for id in pgm-small mdlm-small; do
  run="${RUN[$id]}"
  [ -f "$run/last.ckpt" ] || { echo "ship.sh: $run/last.ckpt not found" >&2; exit 1; }
  mkdir -p "$STAGE/$id"
  for f in last.ckpt log.jsonl pid; do [ -e "$run/$f" ] && cp -p "$run/$f" "$STAGE/$id/"; done
  echo "$id: $run/last.ckpt ($(stat -c %y "$run/last.ckpt" | cut -d. -f1))" >&2
done

say "1. final evaluation (VAL_CHUNKS=$VAL_CHUNKS; both in parallel, 1 thread each)"
PIDS=()
for id in pgm-small mdlm-small; do
  (cd training && $PY final_eval.py "$STAGE/$id" --label "${RUN[$id]}" --max-chunks "$VAL_CHUNKS" \
     --out "$STAGE/$id/eval.json" > "$STAGE/$id/eval.log" 2>&1) &
  PIDS+=($!)
done
fail=0
for pid in "${PIDS[@]}"; do wait "$pid" || fail=1; done
[ $fail = 0 ] || { cat "$STAGE"/*/eval.log >&2; echo "ship.sh: final_eval.py failed" >&2; exit 1; }
mkdir -p docs
$PY - "$STAGE" > docs/final-eval.json <<'EOF'
import json, sys
stage = sys.argv[1]
print(json.dumps({i: json.load(open(f'{stage}/{i}/eval.json')) for i in ('pgm-small', 'mdlm-small')}, indent=2))
EOF
$PY - docs/final-eval.json <<'EOF' >&2
import json, sys
for i, e in json.load(open(sys.argv[1])).items():
  k = 'pgmBound' if e['arch'] == 'pgm' else 'mdlmBound'
  print(f"{i}: step {e['globalStep']}/{e['plannedSteps']}, {k} {e['val'][k]:.4f} nats/token on "
        f"{e['val']['chunks']} chunks ({e['val']['seconds']} s), tokens {e['tokensSeen']:,}, "
        f"training {e['trainingTime']['seconds'] / 3600:.2f} h" + ('  ** STOPPED EARLY **' if e['stoppedEarly'] else ''))
EOF

say "2. convert (f16)"
for id in pgm-small mdlm-small; do
  rm -rf "models/$id"
  npx tsx src/cli/main.ts convert "$STAGE/$id/last.ckpt" "models/$id" --dtype f16
  $PY - "models/$id" <<'EOF'
import json, os, sys
d = sys.argv[1]
m = json.load(open(f'{d}/config.json'))['model']
if len(m.get('vocabMap') or []) != m['vocabSize']:
  sys.exit(f'ship.sh: {d}/config.json has no vocabMap of length {m["vocabSize"]}: the checkpoint lacks '
           'data.vocab_map (train.py older than the reduced-vocabulary change)')
size = sum(os.path.getsize(f'{d}/{f}') for f in os.listdir(d))
if size > 25e6:
  sys.exit(f'ship.sh: {d} is {size} bytes > 25 MB')
print(f'{d}: {size / 1e6:.2f} MB, vocabMap {len(m["vocabMap"])}', file=sys.stderr)
EOF
done

say "3. weights-manifest.json"
$PY training/ship.py manifest "$STAGE/pgm-small/eval.json" "$STAGE/mdlm-small/eval.json"
npx tsx -e "
Promise.all([import('node:fs'), import('./src/weights/manifest.ts')]).then(([{ readFileSync }, { validateManifest }]) => {
  const m = validateManifest(JSON.parse(readFileSync('weights-manifest.json', 'utf8')));
  console.error('validateManifest: ok, default ' + m.default + ', models ' + m.models.map((x) => x.id).join(', '));
}).catch((e) => { console.error('ship.sh: ' + e.message); process.exit(1); });"

say "4. shipped-weights fixtures + tests"
for id in pgm-small mdlm-small; do
  $PY training/ship.py fixture "$STAGE/$id/last.ckpt" "$id" --label "${RUN[$id]}/last.ckpt"
done
if [ "${SHIP_TESTS:-1}" != 0 ]; then
  npx vitest run --project node tests/gpu/shipped.test.ts
  [ "${SHIP_BROWSER:-1}" = 0 ] || npx vitest run --project browser tests/gpu/shipped.test.ts
fi

say "5. training curves"
$PY training/plot_curves.py "pgm-small=$STAGE/pgm-small" "mdlm-small=$STAGE/mdlm-small" \
  --final docs/final-eval.json --out docs/training-curves.svg

if [ "${SHIP_SAMPLES:-1}" != 0 ]; then
  say "6. samples -> docs/samples.md (SwiftShader under load: minutes per command)"
  # --batch 3 --seed 1 draws seeds 1, 2, 3 in one run (sequence b uses seed + b; the same
  # texts as three runs one by one), so the model loads once and the steps are shared.
  SAMPLES=(
    "generate --length 128 --steps 32 --seed 1 --batch 3"
    "generate --length 128 --steps 32 --seed 4 --prompt 'It is a truth universally acknowledged'"
  )
  [ "${SHIP_MDLM_SAMPLE:-0}" = 0 ] || SAMPLES+=("generate --model mdlm-small --length 128 --steps 32 --seed 1")
  {
    echo "# Samples from the shipped models"
    echo
    echo "Generated by \`training/ship.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') from \`models/\` (see"
    echo "\`weights-manifest.json\`: $($PY -c "import json; e=json.load(open('docs/final-eval.json')); print(', '.join(f\"{i} step {v['globalStep']}\" for i, v in e.items()))"))."
    echo "Uncurated: every sample the script drew is below. Without \`--model\` the CLI uses the"
    echo "manifest default, \`pgm-small\`. Same seed, same text on any WebGPU device (counter-based"
    echo "RNG); \`--batch 3 --seed 1\` gives the texts of \`--seed 1\`, \`--seed 2\` and \`--seed 3\`."
    for args in "${SAMPLES[@]}"; do
      echo
      echo '```sh'
      echo "npx pgm $args"
      echo '```'
      eval "set -- $args"
      npx tsx src/cli/main.ts "$@" --json > "$STAGE/gen.jsonl" 2> "$STAGE/gen.err" || { cat "$STAGE/gen.err" >&2; exit 1; }
      $PY - "$STAGE/gen.jsonl" <<'EOF'
import json, sys
result = json.loads(open(sys.argv[1]).read().splitlines()[-1])['result']
for b, s in enumerate(result['sequences']):
  print(f"\nseed {result['seed'] + b}:\n\n```text\n{s['text']}\n```")
EOF
      printf '\n<sub>%s</sub>\n' "$(tail -n 1 "$STAGE/gen.err")"
    done
  } > "$STAGE/samples.md"
  mv "$STAGE/samples.md" docs/samples.md
  echo "docs/samples.md: ${#SAMPLES[@]} commands" >&2
fi

say "7. summary"
$PY training/ship.py summary
for id in pgm-small mdlm-small; do
  echo "fixture $id: $(du -sh "tests/fixtures/shipped/$id" | cut -f1)"
done
echo "written: models/pgm-small models/mdlm-small weights-manifest.json docs/final-eval.json" \
  "docs/training-curves.svg docs/samples.md tests/fixtures/shipped/"
