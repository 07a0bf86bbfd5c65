"""A private Docker daemon (Debian 12's docker.io) for the engine tests.

Nothing of the host's Docker is used or changed: each Daemon runs its own
`dockerd` with data root, exec root (where it starts its own containerd),
pidfile and Unix socket in a temp directory, and every client command gets
DOCKER_HOST pointing at that socket and a private DOCKER_CONFIG. The clients
are Debian's by absolute path: a host may have another `docker` earlier on
PATH (this one has a static 28.x client in /usr/local/bin).

Networking is set so that two daemons (or a Podman) on one host cannot meet:
no default bridge (`--bridge=none`, so no docker0), iptables, IP forwarding and
masquerading off (the host's rules stay as they were), and networks the tests
create (`docker network create`, docker-compose's project network) take their
subnets from a pool of their own. Published ports are served by the userland
proxy (docker-proxy) on the host's loopback, which reaches the container over
its bridge without any iptables rule. The cgroup driver is cgroupfs (no
systemd here); the storage driver overlay2.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

from ops import sidecar_process

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
COMPOSE = "/usr/bin/docker-compose"
_TOOLS = (DOCKER, DOCKERD, COMPOSE, "/usr/sbin/docker-proxy", "/usr/bin/containerd")
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Podman's engine_test network is 10.231.0.0/24 (image/podman.py).
ADDRESS_POOL = "10.232.0.0/16"
START_TIMEOUT_S = 60.0


def unavailable_reason():
    """Why the private dockerd cannot run here, or None."""
    if os.geteuid() != 0:
        return "dockerd needs root"
    missing = [t for t in _TOOLS if not os.access(t, os.X_OK)]
    if missing:
        return f"missing {missing} (apt-get install docker.io docker-compose; ./bazelw installs them)"
    return None


class Daemon:
    """One dockerd; `docker(...)`/`compose(...)` run Debian's clients against it."""

    def __init__(self, parent_dir):
        self.dir = tempfile.mkdtemp(prefix="docker-", dir=parent_dir)
        self.socket = os.path.join(self.dir, "docker.sock")
        self.env = {"PATH": _SYSTEM_PATH, "HOME": self.dir, "DOCKER_HOST": f"unix://{self.socket}",
                    "DOCKER_CONFIG": os.path.join(self.dir, "config"), "TMPDIR": self.dir}
        self.log_path = os.path.join(self.dir, "dockerd.log")
        argv = [DOCKERD, f"--data-root={self.dir}/data", f"--exec-root={self.dir}/exec",
                f"--pidfile={self.dir}/dockerd.pid", f"--host=unix://{self.socket}",
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
                "--userland-proxy=true", f"--default-address-pool=base={ADDRESS_POOL},size=24",
                "--exec-opt=native.cgroupdriver=cgroupfs", "--storage-driver=overlay2"]
        with open(self.log_path, "wb") as log:
            # Its own session: the test's signals are not the daemon's.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.close()
                raise AssertionError(f"dockerd did not start:\n{log}")
            time.sleep(0.3)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-6000:]

    def run(self, *args, check=True, timeout=600, cwd=None):
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=cwd)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def docker(self, *args, **kwargs):
        return self.run(DOCKER, *args, **kwargs)

    def compose(self, *args, **kwargs):
        return self.run(COMPOSE, *args, **kwargs)

    def inspect(self, what, name):
        (info,) = json.loads(self.docker(what, "inspect", name).stdout)
        return info

    def server_version(self):
        return self.docker("version", "--format", "{{.Server.Version}}").stdout.strip()

    def close(self):
        """Containers, networks and the daemon go; then its directory. Each
        step runs even if the one before failed."""
        if self.proc.poll() is None:
            ids = self.docker("ps", "--all", "--quiet", check=False).stdout.split()
            if ids:
                self.docker("rm", "--force", *ids, check=False)
            self.docker("network", "prune", "--force", check=False)
        sidecar_process.end_process(self.proc)
        # A killed daemon can leave its overlay and shm mounts behind.
        with open("/proc/self/mounts", encoding="utf-8") as f:
            mounts = [line.split()[1] for line in f]
        for path in sorted((m for m in mounts if m.startswith(self.dir + "/")), key=len, reverse=True):
            subprocess.run(["umount", "--lazy", path], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
