#!/bin/sh
# Regenerates requirements_lock.txt from requirements.in against PyPI.
# pip-tools runs from a throw-away venv on the toolchain's interpreter, with
# the host's pip configuration shut out, so the lock records PyPI's hashes
# for exactly the platform the build targets.
set -eu
cd "$(dirname "$0")/.."
interpreter=$(sed -n 's/^BOOTSTRAP_INTERPRETER = "\(.*\)"$/\1/p' third_party/python/python.bzl)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every PIP_* setting but the CA bundle would change what pip looks at.
for v in $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/\1/p'); do
  [ "$v" = PIP_CERT ] || unset "$v"
done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1
"$interpreter" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q pip-tools==7.6.2
"$tmp/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --output-file requirements_lock.txt requirements.in
"$interpreter" tools/format_lock.py requirements_lock.txt
# The wheel URLs Nix fetches by (pip's lock records hashes only).
"$interpreter" tools/wheel_urls.py
echo "requirements_lock.txt and third_party/pip/wheels.lock.json regenerated;"
echo "run ./bazelw test //third_party/pip:lock_test and tools/nix_check.sh"
