#!/usr/bin/env bash
# Builds the image with Nix (flake.nix, no nixpkgs) and compares its digest
# with image/DIGEST, the digest Bazel's //image is committed to, and its SBOM
# referrer's with image/SBOM_DIGEST.
#
#   tools/nix_check.sh          # the git checkout: tracked files only, like a CI clone
#   tools/nix_check.sh --path   # the working directory, untracked files included
#
# Installs Debian's nix-bin (Nix 2.8) when `nix` is missing. Exit 0 only when
# both digests match and tools/wheel_urls.py --check passes inside Nix.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

flake="$root"  # a git work tree: Nix sees tracked files only
if [[ "${1:-}" == "--path" ]]; then
  flake="path:$root"
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--path]" >&2
  exit 2
fi

if ! command -v nix >/dev/null; then
  echo "nix_check: installing nix-bin" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nix-bin >/dev/null
fi

# Root, single-user, no daemon: no build users. No substituters: nothing may
# come from a binary cache (cache.nixos.org is unreachable anyway, and the
# point is to build). The sandbox stays on, without fallback, so a step that
# reached for a host file would fail here rather than pass silently; its
# builders are static busybox and the unpacked Debian python, so it needs no
# sandbox-paths (not even /bin/sh).
export NIX_CONFIG="experimental-features = nix-command flakes
build-users-group =
substituters =
sandbox = true
sandbox-fallback = false"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Inside Nix the check cannot see Bazel's wheelhouse; here it also compares
# each wheel with the file pip chose for Bazel, when that cache exists.
if command -v python3 >/dev/null; then
  python3 "$root/tools/wheel_urls.py" --check
fi
nix build -L --out-link "$tmp/wheels-lock" "$flake#checks.x86_64-linux.wheels-lock"
nix build -L --out-link "$tmp/result" "$flake"
built=$(cat "$tmp/result/image.digest")
echo "nix: $built  ($(readlink "$tmp/result")/image)"

if [[ ! -f "$root/image/DIGEST" ]]; then
  echo "nix_check: image/DIGEST is missing; nothing to compare with" >&2
  exit 1
fi
want=$(tr -d '[:space:]' < "$root/image/DIGEST")
if [[ "$built" != "$want" ]]; then
  echo "nix_check: MISMATCH: nix built $built, image/DIGEST (bazel) is $want" >&2
  exit 1
fi
echo "nix_check: matches image/DIGEST"
# The same SBOM bytes: checks.digest (nix/check-digest.sh) compares the
# layout's SBOM referrer with image/SBOM_DIGEST, the one Bazel's
# //image:update_digest recorded, and fails the build otherwise.
nix build -L --out-link "$tmp/digest-check" "$flake#checks.x86_64-linux.digest"
echo "nix: SBOM referrer $(cut -d' ' -f2 "$tmp/digest-check")"
echo "nix_check: matches image/SBOM_DIGEST"
