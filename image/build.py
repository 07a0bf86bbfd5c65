"""Builds the validator image from pinned inputs: the one recipe Bazel and Nix share.

  build.py --repo ROOT --stub F... --deb F... --wheel F... --out OCI_DIR [--digest-file F]

ROOT holds image/image.json, sidecar/*.py, models/trust_score and models/plan.json; --stub are
the generated inference/v1 modules; --deb every .deb of
third_party/debian/packages.lock.json; --wheel every wheel of the lock (only
image.json's python_runtime set goes in). Everything that decides the image's
bytes is in image.json or derived here from the sources, never from the
builder's clock, paths, umask or locale.
"""

import argparse
import json
import os
import re
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import assemble  # noqa: E402  (sibling module, also run on its own)


class BuildError(ValueError):
    pass


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_distribution(path):
    return canonical(os.path.basename(path).split("-", 1)[0])


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
    return {
        "source_date_epoch": image["source_date_epoch"],
        "layers": [
            {"name": "debian", "debs": sorted(debs, key=os.path.basename),
             "exclude": image["debian_exclude"], "include": image["debian_include"]},
            {"name": "base", "generated": "base", "ca_certificates_deb": ca[0]},
            {"name": "python", "wheels": runtime_wheels(wheels, image["python_runtime"]),
             "site_packages": image["site_packages"]},
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--stub", action="append", default=[])
    ap.add_argument("--deb", action="append", default=[])
    ap.add_argument("--wheel", action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--digest-file")
    args = ap.parse_args(argv)
    return assemble.run("image/build.py", lambda: spec(args.repo, args.stub, args.deb, args.wheel),
                        args.out, args.digest_file)


if __name__ == "__main__":
    raise SystemExit(main())
