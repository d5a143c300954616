#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine. First lavapipe from Mesa 25
# (bookworm-backports), Node's second CPU adapter, unpacked into .lavapipe/ without touching the
# system's Mesa (.lavapipe/lvp_icd.json is its Vulkan ICD); then Debian's
#   chromium            headless browser tests; ships SwiftShader, the WebGPU adapter of
#                       machines without a GPU (also a Vulkan driver Node's `webgpu` uses there)
#   libvulkan1          the Vulkan loader for Node's `webgpu` package
#   mesa-vulkan-drivers Debian 12's Mesa: the shared libraries (LLVM 15, xcb, wayland) of the
#                       lavapipe above; its own lavapipe (Mesa 22.3) is too old for Dawn
#   python3-torch, python3-omegaconf, libopenblas0-openmp
#                       the PyTorch side: training smoke tests and the ONNX peer export
# then the npm packages. As root it runs apt-get itself; as another user, through sudo (none is
# needed to unpack lavapipe where apt already has the backports lists). Packages already
# installed are not touched, and an unpacked lavapipe is kept, so a second run only runs `npm ci`.
# tests/setup/setup.test.ts runs it against stand-ins for apt and dpkg; after changing it, also
# run scripts/fresh-root-check.sh (a real fresh Debian 12 root).
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

lvp=$PWD/.lavapipe
lvp_so=$lvp/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so
if [ ! -f "$lvp/lvp_icd.json" ] || [ ! -f "$lvp_so" ]; then
  echo "scripts/setup.sh: installing lavapipe (Mesa from bookworm-backports) into .lavapipe/" >&2
  # apt's sources, a "suite mirror" line each. A missing backports source is added, on the
  # mirror of the system's own bookworm source.
  sources=$(apt-get indextargets --no-release-info --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages')
  mirror=$(sed -n '/^bookworm-backports /{s///p;q}' <<<"$sources")
  if [ -z "$mirror" ]; then
    mirror=$(sed -n '/^bookworm /{s///p;q}' <<<"$sources")
    mirror=${mirror:-http://deb.debian.org/debian/}
    eval "$(apt-config shell parts Dir::Etc::sourceparts/d)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
      | as_root tee "${parts}bookworm-backports.sources" >/dev/null
    echo "scripts/setup.sh: added bookworm-backports ($mirror) to $parts" >&2
  fi
  # apt knows backports' mesa-vulkan-drivers once that suite's lists are fetched: never right
  # after its source was added. (The policy is captured first: `grep -q` stops reading early,
  # and under pipefail the writer's SIGPIPE would read as "not found".)
  backports_known() { [[ $(apt-cache policy mesa-vulkan-drivers 2>/dev/null) == *' bookworm-backports/main '* ]]; }
  # Quietly: whether the lists now have that suite is what counts, and is checked.
  refresh_lists() { as_root apt-get update -qq >/dev/null 2>&1 || true; }
  download() { (cd "$lvp/cache" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" mesa-vulkan-drivers/bookworm-backports); }
  if ! backports_known; then
    refresh_lists
    backports_known || { echo "scripts/setup.sh: lavapipe needs mesa-vulkan-drivers from bookworm-backports, and apt could not read that suite from $mirror (check the network or that mirror, then run this script again)" >&2; exit 1; }
  fi
  mkdir -p "$lvp/cache"
  rm -f "$lvp"/cache/mesa-vulkan-drivers_*.deb
  # Lists fetched long ago may name a .deb the mirror has since replaced: fetched again, once.
  download 2>/dev/null || { refresh_lists; download; }
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

npm ci --no-audit --no-fund
