#!/usr/bin/env bash
# scripts/setup.sh on a real fresh machine: a minimal Debian 12 root (debootstrap --variant=minbase
# bookworm, from this machine's own Debian mirror) with this machine's Node and npm copied in and
# a clone of this repository's HEAD (or the commit given). Inside it, as root with a bare
# environment: setup.sh, setup.sh again (which must only run `npm ci`), tsc, and one GPU test
# file on each adapter (SwiftShader and lavapipe in Node, SwiftShader in Chromium). Run it as root
# on Debian after changing the set-up (setup.sh, the packages or files the tests need from the
# machine). It downloads Chromium, PyTorch and the npm packages, so it is not part of `npm test`.
# Everything is removed at the end, passed or not.
#   bash scripts/fresh-root-check.sh [commit]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rev=$(git -C "$repo" rev-parse --verify "${1:-HEAD}^{commit}")
[ "$(id -u)" -eq 0 ] || { echo "scripts/fresh-root-check.sh: needs root (debootstrap, mount, chroot)" >&2; exit 1; }
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] || echo "scripts/fresh-root-check.sh: checks commit $rev; uncommitted changes are not in it" >&2
start=$SECONDS
step() { echo "== $* (at $((SECONDS - start)) s)"; }

command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
mirror=$(sed -n '/^bookworm /{s///p;q}' <<<"$(apt-get indextargets --no-release-info --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages')")
mirror=${mirror:-http://deb.debian.org/debian/}

root=$(mktemp -d /var/tmp/pgm-fresh-root.XXXXXX)
chmod 755 "$root"   # its /: mktemp made it 0700, which apt's _apt user could not enter
cleanup() {
  umount -R "$root/dev" "$root/proc" "$root/sys" 2>/dev/null || true
  # Never remove through a mount that is still there (--one-file-system also stops at one).
  if [[ $'\n'$(findmnt -rn -o TARGET)$'\n' == *$'\n'$root/* ]]; then
    echo "scripts/fresh-root-check.sh: $root still has mounts; left in place" >&2
  else
    rm -rf --one-file-system "$root"
  fi
}
trap cleanup EXIT

step "debootstrap --variant=minbase bookworm $root $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || { cat "$root.debootstrap.log" >&2; exit 1; }
rm -f "$root.debootstrap.log"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's own trust (CAs added locally, e.g. a TLS-inspecting proxy's, and the bundle
# npm's global config may name), so that apt and npm reach their registries as they do here.
for f in /usr/local/share/ca-certificates /etc/ssl/certs/ca-certificates.crt; do
  if [ -e "$f" ]; then mkdir -p "$root$(dirname "$f")" && cp -aL "$f" "$root$(dirname "$f")/"; fi
done

# Node as installed here (a distribution package or a tarball: bin/, lib/node_modules/, include/,
# etc/npmrc under one prefix), at the same place.
prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
step "copying Node $(node --version) and npm $(npm --version) from $prefix"
for f in bin/node bin/npm bin/npx bin/corepack lib/node_modules/npm lib/node_modules/corepack include/node etc/npmrc; do
  if [ -e "$prefix/$f" ]; then mkdir -p "$root$prefix/$(dirname "$f")" && cp -a "$prefix/$f" "$root$prefix/$(dirname "$f")/"; fi
done

step "cloning $repo at $rev"
git clone -q --no-checkout "$repo" "$root/root/pgm-webgpu"
git -C "$root/root/pgm-webgpu" checkout -q "$rev"

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
# What a new root login has: no variable of this session leaks in.
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$prefix/bin bash -c "cd /root/pgm-webgpu && $1"; }

step "bash scripts/setup.sh"
in_root 'bash scripts/setup.sh'
step "bash scripts/setup.sh, again: only npm ci"
again=$(in_root 'bash scripts/setup.sh 2>&1')
printf '%s\n' "$again"
if [[ $again == *'scripts/setup.sh:'* ]]; then echo "scripts/fresh-root-check.sh: the second setup.sh did more than npm ci" >&2; exit 1; fi
step "npx tsc -p tsconfig.json --noEmit"
in_root 'npx tsc -p tsconfig.json --noEmit'
# One GPU test file per adapter: SwiftShader and lavapipe in Node, SwiftShader in Chromium.
for project in node node-lavapipe browser; do
  step "npx vitest run --project $project tests/gpu/adapter.test.ts"
  in_root "npx vitest run --project $project tests/gpu/adapter.test.ts"
done
step "passed in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
