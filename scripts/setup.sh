#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine, then the npm packages:
#   chromium            headless browser tests; ships SwiftShader, the WebGPU adapter of
#                       machines without a GPU (also a Vulkan driver Node's `webgpu` uses there)
#   libvulkan1          the Vulkan loader for Node's `webgpu` package
#   mesa-vulkan-drivers Debian 12's Mesa: the shared libraries (LLVM 15, xcb, wayland) of the
#                       lavapipe below; its own lavapipe (Mesa 22.3) is too old for Dawn
#   python3-torch, python3-omegaconf, libopenblas0-openmp
#                       the PyTorch side: training smoke tests and the ONNX peer export
# Then lavapipe from Mesa 25 (bookworm-backports), Node's second CPU adapter, unpacked into
# .lavapipe/ without touching the system's Mesa: .lavapipe/lvp_icd.json is its Vulkan ICD.
# As root it runs apt-get itself; as another user, through sudo. Packages already installed
# are not touched, and an unpacked lavapipe is kept, so a second run only runs `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    env DEBIAN_FRONTEND=noninteractive "$@"
  elif command -v sudo >/dev/null; then
    sudo env DEBIAN_FRONTEND=noninteractive "$@"
  else
    echo "scripts/setup.sh: $* needs root; run it as root or install sudo" >&2
    exit 1
  fi
}

packages=(chromium libvulkan1 mesa-vulkan-drivers python3-torch python3-omegaconf libopenblas0-openmp)
missing=()
for p in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/setup.sh: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

lvp=$PWD/.lavapipe
lvp_so=$lvp/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so
# apt knows a backports mesa-vulkan-drivers only once its lists for that suite were fetched.
# (Output captured first: `grep -q` stops reading early, and under pipefail the writer's SIGPIPE
# would read as "not found".)
backports_known() { [[ $(apt-cache policy mesa-vulkan-drivers 2>/dev/null) == *' bookworm-backports/main '* ]]; }
if [ ! -f "$lvp/lvp_icd.json" ] || [ ! -f "$lvp_so" ]; then
  echo "scripts/setup.sh: installing lavapipe (Mesa from bookworm-backports) into .lavapipe/" >&2
  # The mirror the system's own Debian sources use (deb822 .sources or one-line .list).
  mirror=$(sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\)[[:space:]]\+bookworm[[:space:]].*/\2/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -e security -e '^$' | grep -m1 debian || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  if ! grep -rqs --include='*.list' --include='*.sources' --include='sources.list' 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
      | as_root tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    echo "scripts/setup.sh: added bookworm-backports ($mirror) to /etc/apt/sources.list.d/" >&2
  fi
  # A source just added (or added earlier, its lists never fetched) has no package lists yet.
  if ! backports_known; then
    as_root apt-get update -qq >/dev/null 2>&1 || true
  fi
  if ! backports_known; then
    echo "scripts/setup.sh: lavapipe needs mesa-vulkan-drivers from bookworm-backports, and apt could not read that suite from $mirror (check the network or the mirror in /etc/apt/sources.list.d/bookworm-backports.sources, then run this script again)" >&2
    exit 1
  fi
  mkdir -p "$lvp/cache"
  rm -f "$lvp"/cache/mesa-vulkan-drivers_*.deb
  (cd "$lvp/cache" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" mesa-vulkan-drivers/bookworm-backports)
  deb=$(ls "$lvp"/cache/mesa-vulkan-drivers_*.deb)
  rm -rf "$lvp/root"
  dpkg-deb -x "$deb" "$lvp/root"
  [ -f "$lvp_so" ] || { echo "scripts/setup.sh: $deb has no libvulkan_lvp.so" >&2; exit 1; }
  # The package's own ICD file gives the Vulkan version; library_path is where we unpacked it,
  # relative to the json (the Vulkan loader's rule), so the project folder may move.
  api=$(sed -n 's/.*"api_version":[[:space:]]*"\([^"]*\)".*/\1/p' "$lvp"/root/usr/share/vulkan/icd.d/lvp_icd*.json | head -n1)
  printf '{\n  "file_format_version": "1.0.0",\n  "ICD": { "library_path": "%s", "api_version": "%s" }\n}\n' "./root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" "${api:-1.4.305}" >"$lvp/lvp_icd.json.tmp"
  mv "$lvp/lvp_icd.json.tmp" "$lvp/lvp_icd.json"
  echo "scripts/setup.sh: lavapipe $(basename "$deb") ready: VK_ICD_FILENAMES=$lvp/lvp_icd.json" >&2
fi

npm ci --no-audit --no-fund
