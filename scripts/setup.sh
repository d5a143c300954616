#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine, then the npm packages:
#   chromium            headless browser tests; ships SwiftShader, the WebGPU adapter of
#                       machines without a GPU (also the Vulkan driver Node's `webgpu` uses there)
#   libvulkan1          the Vulkan loader for Node's `webgpu` package
#   python3-torch, python3-omegaconf, libopenblas0-openmp
#                       the PyTorch side: training smoke tests and the ONNX peer export
# As root it runs apt-get itself; as another user, through sudo. Packages already installed
# are not touched, so a second run only runs `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium libvulkan1 python3-torch python3-omegaconf libopenblas0-openmp)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    echo "scripts/setup.sh: installing ${missing[*]} needs root; run it as root or install sudo" >&2
    exit 1
  fi
  echo "scripts/setup.sh: installing ${missing[*]}" >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
