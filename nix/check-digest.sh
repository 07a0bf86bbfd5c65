# Passes when the Nix-built image has the digest committed in image/DIGEST.
built=$(cat "$image/image.digest")
want=$(echo $expected)
if [ -z "$want" ]; then
  echo "check-digest: image/DIGEST is missing from the flake source (untracked?); built $built" >&2
  exit 1
fi
if [ "$built" != "$want" ]; then
  echo "check-digest: nix built $built, image/DIGEST says $want" >&2
  exit 1
fi
echo "$built" > "$out"
