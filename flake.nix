{
  description = "veid-sidecar: the validator image, byte-identical to bazel build //image";

  # No inputs on purpose: no nixpkgs (unreachable from the build machines, and
  # one more thing to pin). The builder is the vendored static busybox and the
  # image's own Debian Python; see nix/default.nix and image/README.md ("Nix").
  # What does need nixpkgs (a dev shell, dockerTools) is in nix/dev/flake.nix.
  outputs = { self }:
    let
      veid = import ./nix { root = ./.; };
    in
    {
      packages.x86_64-linux = {
        default = veid.image; # result/image (OCI layout), result/image.digest
        sbom = veid.sbom; # the image's SBOM (SPDX 2.3 JSON), as in the layout
        stubs = veid.stubs;
        debian-root = veid.debianRoot;
      };
      checks.x86_64-linux = veid.checks;
    };
}
