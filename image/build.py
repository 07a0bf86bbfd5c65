"""Builds the validator image from pinned inputs: the one recipe Bazel and Nix share.

  build.py --repo ROOT --stub F... --deb F... --wheel F... --out OCI_DIR [--digest-file F] [--sbom F]

ROOT holds image/image.json, sidecar/*.py, models/trust_score, models/plan.json
and the locks (third_party/debian/packages.lock.json,
third_party/pip/wheels.lock.json); --stub are the generated inference/v1
modules; --deb every .deb of the Debian lock; --wheel every wheel of the lock
(only image.json's python_runtime set goes in). Everything that decides the
image's bytes is in image.json or derived here from the sources, never from
the builder's clock, paths, umask or locale.

The layout also carries the image's SBOM (image/sbom.py) as an OCI 1.1
referrer of the image manifest; --sbom writes the same bytes to a file.
"""

import argparse
import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import assemble  # noqa: E402  (sibling module, also run on its own)
import sbom  # noqa: E402


class BuildError(ValueError):
    pass


def wheel_distribution(path):
    return sbom.canonical(os.path.basename(path).split("-", 1)[0])


def runtime_wheels(wheels, wanted):
    """Exactly one wheel per wanted distribution, in name order."""
    by_name = {}
    for wheel in wheels:
        name = wheel_distribution(wheel)
        if name in by_name:
            raise BuildError(f"two wheels for {name}: {by_name[name]} and {wheel}")
        by_name[name] = wheel
    missing = sorted(set(wanted) - set(by_name))
    if missing:
        raise BuildError(f"no wheel given for runtime distributions {missing}")
    return [by_name[name] for name in sorted(wanted)]


def app_files(repo, stubs, app_dir):
    sidecar = os.path.join(repo, "sidecar")
    files = {
        f"{app_dir}/sidecar/{name}": os.path.join(sidecar, name)
        for name in sorted(os.listdir(sidecar))
        if name.endswith(".py") and not name.endswith("_test.py")
    }
    for stub in stubs:
        files[f"{app_dir}/inference/v1/{os.path.basename(stub)}"] = stub
    return files


def environment(repo, image):
    """The determinism settings come from the sidecar's own definition."""
    sys.path.insert(0, repo)
    from sidecar import determinism  # pylint: disable=import-outside-toplevel

    env = dict(determinism.ENVIRONMENT)
    env.update({
        "LANG": "C.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": f"{image['app_dir']}:{image['site_packages']}",
    })
    return env


def spec(repo, stubs, debs, wheels):
    with open(os.path.join(repo, "image", "image.json"), encoding="utf-8") as f:
        image = json.load(f)
    ca = [d for d in debs if os.path.basename(d).startswith("ca-certificates_")]
    if len(ca) != 1:
        raise BuildError(f"expected one ca-certificates .deb among the debs, found {len(ca)}")
    site = image["site_packages"].strip("/")
    return {
        "source_date_epoch": image["source_date_epoch"],
        "gzip": image["gzip"],
        "layers": [
            {"name": "debian", "debs": sorted(debs, key=os.path.basename),
             "exclude": image["debian_exclude"], "include": image["debian_include"]},
            {"name": "base", "generated": "base", "ca_certificates_deb": ca[0]},
            {"name": "python", "wheels": runtime_wheels(wheels, image["python_runtime"]),
             "site_packages": image["site_packages"],
             "exclude": [f"{site}/{pattern}" for pattern in sorted(image["python_exclude"])]},
            # The model and the plan that serves it for every height; an
            # operator mounting their own /models brings their own plan.
            {"name": "model", "dir": {"dest": image["model_dir"],
                                      "src": os.path.join(repo, "models", "trust_score")},
             "files": {image["plan"]: os.path.join(repo, "models", "plan.json")}},
            # Modules, not programs: 0644 whatever mode the build tool left.
            {"name": "app", "files": app_files(repo, stubs, image["app_dir"]), "file_mode": "0644"},
        ],
        "config": {
            "Entrypoint": image["entrypoint"],
            "Env": environment(repo, image),
            "ExposedPorts": {port: {} for port in image["exposed_ports"]},
            "Labels": image["labels"],
            "User": image["user"],
            "WorkingDir": image["app_dir"],
        },
    }


def attach_sbom(repo, spec, out, sbom_file=None):
    """The SBOM of the image just assembled in `out`, attached as its referrer."""
    subject = assemble.tagged(assemble.read_index(out), spec.get("tag", "latest"))
    data = sbom.dumps(sbom.document(repo, spec, subject))
    assemble.add_referrer(out, subject, sbom.MEDIA_TYPE, data)
    if sbom_file:
        with open(sbom_file, "wb") as f:
            f.write(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--stub", action="append", default=[])
    ap.add_argument("--deb", action="append", default=[])
    ap.add_argument("--wheel", action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--digest-file")
    ap.add_argument("--sbom", help="also write the SBOM (SPDX 2.3 JSON) here")
    args = ap.parse_args(argv)
    return assemble.run("image/build.py", lambda: spec(args.repo, args.stub, args.deb, args.wheel),
                        args.out, args.digest_file,
                        then=lambda image_spec, out: attach_sbom(args.repo, image_spec, out, args.sbom))


if __name__ == "__main__":
    raise SystemExit(main())
