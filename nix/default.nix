# The validator image without nixpkgs: every input is a pinned fixed-output
# fetch or a file of this repository, and every build step runs on the
# vendored static busybox or on the image's own Debian Python. The recipe is
# image/build.py, the one Bazel's //image runs, so the two agree by
# construction; flake.nix only names the outputs.
{ root }: # the flake's source tree (a path)

let
  system = "x86_64-linux";
  readJSON = file: builtins.fromJSON (builtins.readFile file);
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  hasSuffix = suffix: s:
    let n = builtins.stringLength s; m = builtins.stringLength suffix;
    in n >= m && builtins.substring (n - m) m s == suffix;

  # The builder of every derivation here. Its hash is checked against
  # third_party/busybox/SHA256SUMS at evaluation, so a swapped binary is an
  # error rather than a different build.
  # It is copied as a directory holding just `busybox` because busybox picks
  # its applet by argv[0], which Nix sets to the builder's file name, and a
  # store file's name would be "<hash>-busybox".
  busybox =
    let
      dir = root + "/third_party/busybox";
      pinned = builtins.head (builtins.split " " (builtins.readFile (dir + "/SHA256SUMS")));
      copy = builtins.path {
        name = "busybox";
        path = dir;
        filter = path: type: baseNameOf path == "busybox";
      };
    in
      assert builtins.hashFile "sha256" (dir + "/busybox") == pinned; "${copy}/busybox";

  # Copies only the listed repository files to the store, so an edit to a
  # README (or anything else the step does not read) does not rebuild it.
  # `keep` gets the path relative to the root and must also accept the
  # directories leading to a kept file. A file a step starts to read but is
  # not listed makes the build fail (missing file), not differ.
  sourceSubset = name: keep: builtins.path {
    inherit name;
    path = root;
    filter = path: type:
      let prefix = builtins.stringLength (toString root) + 1;
      in keep (builtins.substring prefix (builtins.stringLength path) path) type;
  };

  # <nix/fetchurl.nix> is Nix's built-in fetcher (builtin:fetchurl): a
  # fixed-output derivation checked against the lock's sha256. It takes one
  # URL; see image/README.md ("Nix") for seeding the store from a mirror.
  fetch = { url, sha256 }: import <nix/fetchurl.nix> {
    inherit url sha256;
    # Store path names may not contain '~' (Debian versions do).
    name = builtins.replaceStrings [ "~" ] [ "_" ] (baseNameOf url);
  };

  # "<file name>=<store path>" words: builders give each file its real name
  # back, which build.py needs (it reads distribution names from wheel file
  # names and finds ca-certificates_*.deb by name).
  named = file: path: "${file}=${path}";

  debs = map
    (e: named (baseNameOf e.url) (fetch { inherit (e) url sha256; }))
    (readJSON (root + "/third_party/debian/packages.lock.json"));

  wheelsFor = use: map
    (w: named w.filename (fetch { inherit (w) url sha256; }))
    (builtins.filter (w: builtins.elem use w.used_by)
      (readJSON (root + "/third_party/pip/wheels.lock.json")).wheels);

  run = name: script: env: derivation ({
    inherit name system;
    builder = busybox;
    args = [ "sh" "-eu" script ];
    lib = ./lib.sh;
  } // env);

  # Every .deb's data.tar unpacked: the interpreter (python3.11, its stdlib,
  # libc and loader) that runs the steps below. Not part of the image.
  debianRoot = run "veid-debian-root" ./unpack-debs.sh { inherit debs; };

  protoSource = sourceSubset "veid-proto-src" (rel: type:
    builtins.elem rel [ "proto" "third_party" "third_party/grpc" "third_party/grpc/protoc.py" ]
    || (hasPrefix "proto/" rel && (type == "directory" || hasSuffix ".proto" rel)));

  # inference_pb2.py / inference_pb2_grpc.py, made like the Bazel genrule
  # (//proto/inference/v1:inference_py_grpc_gen): third_party/grpc/protoc.py
  # from the pinned grpcio-tools wheel, run from the source root.
  stubs = run "veid-inference-stubs" ./protoc.sh {
    python = debianRoot;
    src = protoSource;
    wheels = wheelsFor "protoc";
  };

  # What image/build.py reads from --repo (it drops sidecar/*_test.py itself);
  # its SBOM (image/sbom.py) also reads the locks.
  imageSource = sourceSubset "veid-image-src" (rel: type:
    builtins.elem rel [
      "image" "image/build.py" "image/assemble.py" "image/image.json"
      "image/sbom.py" "image/sbom_licenses.json"
      "third_party" "third_party/debian" "third_party/debian/deb.py"
      "third_party/debian/packages.lock.json" "third_party/pip" "third_party/pip/wheels.lock.json"
      "sidecar" "models" "models/trust_score" "models/plan.json"
    ]
    || hasPrefix "models/trust_score/" rel
    || (dirOf rel == "sidecar" && type == "regular" && hasSuffix ".py" rel));

  image = run "veid-sidecar-image" ./build-image.sh {
    inherit debs stubs;
    python = debianRoot;
    src = imageSource;
    wheels = wheelsFor "image";
  };

  # The SBOM on its own: the file the image's build wrote beside the layout.
  sbom = derivation {
    name = "veid-sidecar-sbom.spdx.json";
    inherit system image;
    builder = busybox;
    args = [ "sh" "-c" "cp \"$image/sbom.spdx.json\" \"$out\"" ];
  };

  digestFile = root + "/image/DIGEST";
  sbomDigestFile = root + "/image/SBOM_DIGEST";
  readIfExists = file: if builtins.pathExists file then builtins.readFile file else "";

  checkSource = sourceSubset "veid-lock-src" (rel: type:
    builtins.elem rel [
      "requirements_lock.txt" "image" "image/image.json" "tools" "tools/wheel_urls.py"
      "third_party" "third_party/debian" "third_party/debian/packages.lock.json"
      "third_party/pip" "third_party/pip/wheels.lock.json"
    ]);
in
{
  inherit image sbom stubs debianRoot;

  checks = {
    # The Nix-built digest, and its SBOM referrer's, must be the committed (Bazel) ones.
    digest = run "veid-check-digest" ./check-digest.sh {
      inherit image;
      expected = readIfExists digestFile;
      expectedSbom = readIfExists sbomDigestFile;
    };
    # wheels.lock.json names the wheels requirements_lock.txt pins.
    wheels-lock = run "veid-check-wheels-lock" ./check-wheels-lock.sh {
      python = debianRoot;
      src = checkSource;
    };
  };
}
