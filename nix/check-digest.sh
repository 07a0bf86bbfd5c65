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
# The SBOM referrer's digest: index.json is canonical JSON (sorted keys), so
# its descriptor reads "artifactType":…,"digest":… in this order.
sbom=$(grep -o '"artifactType":"application/spdx+json","digest":"sha256:[0-9a-f]*"' "$image/image/index.json" |
  sed 's/.*"digest":"//; s/"$//')
wantSbom=$(echo $expectedSbom)
if [ -z "$sbom" ] || [ "$sbom" != "$wantSbom" ]; then
  echo "check-digest: nix built the SBOM referrer '$sbom', image/SBOM_DIGEST says '$wantSbom'" >&2
  exit 1
fi
echo "$built $sbom" > "$out"
