"""A private, rootful Podman store and a throwaway registry, for the engine tests.

Nothing of the host's container configuration is read or changed: each Engine
writes its own containers.conf and storage.conf into a temp directory and
points CONTAINERS_CONF / CONTAINERS_STORAGE_CONF (which podman and skopeo both
honour) at them, with the store inside that directory. The settings are the
ones that work on a Debian 12 host without systemd: runc, the cgroupfs cgroup
manager, file events, no default ulimits and the vfs storage driver (no
overlay mounts needed; the cost is a full copy of the image per container, so
close() removes everything). The network backend is pinned to netavark, with
network definitions in the temp directory (podman-compose creates one) and a
subnet of its own: left to itself podman picks CNI or netavark by whether the
store is empty, and two stores on one host then put the same 10.88.0.0/16 on
two bridges, so published ports of one of them answer "no route to host".
Engines share the bridge and subnet: run one engine's containers at a time.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from ops import sidecar_process

_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERS_CONF = """[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
network_config_dir = "{dir}/networks"
default_subnet = "10.231.0.0/24"
"""


def tool(name):
    return shutil.which(name, path=_SYSTEM_PATH)


def unavailable_reason():
    """Why podman cannot run here, or None."""
    if os.geteuid() != 0:
        return "rootful podman needs root"
    missing = [t for t in ("podman", "skopeo", "runc", "docker-registry", "podman-compose") if not tool(t)]
    if missing:
        return f"missing {missing} (apt-get install podman runc skopeo docker-registry podman-compose; ./bazelw installs them)"
    if not os.path.isdir("/sys/fs/cgroup"):
        return "no cgroup filesystem"
    return None


def registry_missing():
    """Why Debian's docker-registry cannot run here, or None."""
    return None if tool("docker-registry") else "docker-registry is not installed (apt-get install docker-registry)"


def short_tmpdir(prefix):
    """A temp dir under /tmp, not TEST_TMPDIR: conmon's socket paths must stay under 108 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """One private podman store; every command runs with its config."""

    def __init__(self, parent_dir):
        self.dir = tempfile.mkdtemp(prefix="podman-", dir=parent_dir)
        conf = os.path.join(self.dir, "containers.conf")
        storage = os.path.join(self.dir, "storage.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(CONTAINERS_CONF.format(dir=self.dir))
        with open(storage, "w", encoding="utf-8") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{self.dir}/graph"\nrunroot = "{self.dir}/run"\n')
        self.env = {"PATH": _SYSTEM_PATH, "HOME": self.dir, "CONTAINERS_CONF": conf,
                    "CONTAINERS_STORAGE_CONF": storage, "TMPDIR": self.dir}

    def run(self, *args, check=True, timeout=600):
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def podman(self, *args, **kwargs):
        return self.run(tool("podman"), *args, **kwargs)

    def skopeo(self, *args, **kwargs):
        return self.run(tool("skopeo"), *args, **kwargs)

    def image_digest(self, ref):
        return self.podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()

    def inspect(self, name):
        (info,) = json.loads(self.podman("container", "inspect", name).stdout)
        return info

    def close(self):
        self.podman("rm", "--all", "--force", "--time", "0", check=False)
        self.podman("pod", "rm", "--all", "--force", check=False)
        self.podman("rmi", "--all", "--force", check=False)
        self.podman("system", "reset", "--force", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def memory_peak_bytes(pid):
    """The peak memory of the cgroup `pid` is in: cgroup v1's memory controller
    (memory.max_usage_in_bytes) or v2's unified hierarchy (memory.peak)."""
    with open(f"/proc/{pid}/cgroup", encoding="ascii") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    v1 = [path for _, controllers, path in lines if "memory" in controllers.split(",")]
    if v1:
        peak = f"/sys/fs/cgroup/memory{v1[0]}/memory.max_usage_in_bytes"
    else:
        (path,) = [path for hid, _, path in lines if hid == "0"]
        peak = f"/sys/fs/cgroup{path}/memory.peak"
    with open(peak, encoding="ascii") as f:
        return int(f.read())


class Registry:
    """Debian's docker-registry (the CNCF distribution registry) on a free
    loopback port with its storage in a temp directory."""

    def __init__(self, parent_dir):
        self.dir = tempfile.mkdtemp(prefix="registry-", dir=parent_dir)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                    f"http:\n  addr: {self.host}\n")
        self.log_path = os.path.join(self.dir, "registry.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([tool("docker-registry"), "serve", config], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"registry did not start:\n{open(self.log_path).read()}")
            time.sleep(0.2)

    def close(self):
        sidecar_process.end_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
