"""Makes a development CA, a sidecar (server) certificate and a chain node (client) certificate with openssl.

  bazel run //ops:dev_certs -- DIR [--server-name=NAME ...]

writes DIR/ca.crt (with ca.key), DIR/server.crt + server.key (serverAuth; for
localhost, 127.0.0.1, ::1 and each --server-name) and DIR/client.crt +
client.key (clientAuth), all P-256, valid for --days. The sidecar takes
--tls-cert-file=DIR/server.crt --tls-key-file=DIR/server.key
--tls-client-ca-file=DIR/ca.crt; a client, --cacert=DIR/ca.crt
--cert=DIR/client.crt --key=DIR/client.key. For development only: a
validator's certificates come from its own CA, and the CA key stays off the
machine. Tests use the same functions to make the certificates they refuse.
"""

import os
import shutil
import subprocess
import sys
import tempfile

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


def openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if not exe:
        raise RuntimeError("openssl not found (apt-get install openssl; ./bazelw installs it)")
    r = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


def _key_and_csr(out: str, name: str, common_name: str) -> tuple[str, str]:
    key, csr = os.path.join(out, f"{name}.key"), os.path.join(out, f"{name}.csr")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={common_name}")
    return key, csr


def make_ca(out: str, name: str = "ca", days: int = 365, is_ca: bool = True) -> tuple[str, str]:
    """A self-signed CA (or, with is_ca=False, a self-signed certificate that is no CA): (cert, key)."""
    cert, key = os.path.join(out, f"{name}.crt"), os.path.join(out, f"{name}.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-out", cert, "-subj", f"/CN=veid-sidecar development {name}", "-days", str(days),
            "-addext", f"basicConstraints=critical,CA:{'TRUE' if is_ca else 'FALSE'}",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign" if is_ca else "keyUsage=critical,digitalSignature")
    return cert, key


def make_leaf(out: str, name: str, ca: tuple[str, str], usage: str | None, days: int = 365,
              names: tuple[str, ...] = SERVER_NAMES) -> tuple[str, str]:
    """A certificate signed by `ca` with extended key usage `usage` (serverAuth, clientAuth or None: no
    extension) and subjectAltNames `names`; days=-1 makes one that expired yesterday. Returns (cert, key)."""
    key, csr = _key_and_csr(out, name, names[0] if names else name)
    ext = os.path.join(out, f"{name}.ext")
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
    if usage:
        lines.append(f"extendedKeyUsage={usage}")
    if names:
        lines.append("subjectAltName=" + ",".join(("IP:" if ":" in n or n[0].isdigit() else "DNS:") + n for n in names))
    with open(ext, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    cert = os.path.join(out, f"{name}.crt")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-days", str(days), "-extfile", ext, "-out", cert)
    os.remove(csr)
    os.remove(ext)
    return cert, key


def make_dev_set(out: str, server_names: tuple[str, ...] = (), days: int = 365) -> dict[str, str]:
    """The development CA, server and client certificates in `out`: {role: path}."""
    os.makedirs(out, exist_ok=True)
    ca = make_ca(out, "ca", days)
    server = make_leaf(out, "server", ca, "serverAuth", days, SERVER_NAMES + tuple(server_names))
    client = make_leaf(out, "client", ca, "clientAuth", days, ("chain-node",))
    return {"ca": ca[0], "server_cert": server[0], "server_key": server[1],
            "client_cert": client[0], "client_key": client[1]}


def write_secret_volume(volume: str, files: dict[str, str]) -> str:
    """Lays out `volume` as Kubernetes mounts a Secret: each file is a symlink
    through `..data` to a versioned directory, so an update (this function
    again) swaps every file at once. `files` maps file names to sources."""
    version = tempfile.mkdtemp(prefix="..", dir=volume) if os.path.isdir(volume) else None
    if version is None:
        os.makedirs(volume)
        version = tempfile.mkdtemp(prefix="..", dir=volume)
    for name, source in files.items():
        shutil.copyfile(source, os.path.join(version, name))
    tmp = os.path.join(volume, "..data_tmp")
    os.symlink(os.path.basename(version), tmp)
    os.replace(tmp, os.path.join(volume, "..data"))
    for name in files:
        if not os.path.islink(os.path.join(volume, name)):
            os.symlink(os.path.join("..data", name), os.path.join(volume, name))
    return volume


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--server-name=")]
    names = tuple(a.split("=", 1)[1] for a in argv if a.startswith("--server-name="))
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    out = os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", ""), args[0])
    if os.path.exists(os.path.join(out, "ca.key")):
        print(f"{out} already holds a CA; remove it first", file=sys.stderr)
        return 1
    paths = make_dev_set(os.path.abspath(out), names)
    for role, path in paths.items():
        print(f"{role}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
