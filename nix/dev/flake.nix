{
  # OPTIONAL, and NOT tested: nixpkgs is unreachable from the build machines
  # (no cache.nixos.org, no GitHub). Nothing in CI or in the image depends on
  # this flake; the image is /flake.nix, which has no inputs at all.
  #
  #   nix develop ./nix/dev              # tools for working on the image
  #   nix build ./nix/dev#docker-archive # the same image as a `docker load` tarball
  #
  # Use it from the git checkout (./nix/dev, not path:): Nix then copies the
  # whole repository and ../.. below is the repository root.
  description = "veid-sidecar developer tools (needs nixpkgs)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      veid = import ../default.nix { root = ../..; };
    in
    {
      devShells.${system}.default = pkgs.mkShell {
        packages = [ pkgs.bazelisk pkgs.skopeo pkgs.umoci pkgs.python311 pkgs.jq ];
      };

      # Docker cannot load an OCI layout directly. This converts the
      # validator image, it does not rebuild it: the digest to compare is the
      # OCI one in result/image.digest of the main flake, since docker-archive
      # (and `docker load`) recompute config and layer encodings.
      # dockerTools.buildImage is deliberately not used: it would be a second
      # recipe whose bytes could drift from image/build.py's.
      packages.${system}.docker-archive = pkgs.runCommand "veid-sidecar-docker.tar" {
        nativeBuildInputs = [ pkgs.skopeo ];
      } ''
        skopeo --insecure-policy copy oci:${veid.image}/image:latest docker-archive:$out:veid-sidecar:latest
      '';
    };
}
