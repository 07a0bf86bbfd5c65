"""Holds --hold idle half-sent requests to the metrics port and, with --churn, keeps opening new ones.

Runs until SIGTERM or --duration, then prints {"held": n, "opened": n,
"health_max_s": s, "health_failures": n} (a /health probe at once, then once a second, while
hostile). A child process so that its CPU and GIL are not the measuring
client's. Loopback only.
"""

import argparse
import json
import signal
import socket
import threading
import time

from tests import hostile_http


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hold", type=int, default=5000)
    p.add_argument("--churn", type=float, default=0.0, help="new half-requests per second (the oldest held one is closed)")
    p.add_argument("--duration", type=float, default=600.0)
    a = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    hostile_http.raise_nofile(a.hold + 200)
    held = hostile_http.HalfRequests(a.port, a.hold)
    opened = len(held.socks)
    health = {"max": 0.0, "failures": 0}

    def probe():
        while True:
            try:
                status, _, _, seconds = hostile_http.get(f"http://127.0.0.1:{a.port}/health", timeout=5)
                health["max"] = max(health["max"], seconds)
                health["failures"] += status != 200
            except OSError:
                health["failures"] += 1
            if stop.wait(1.0):
                return

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    print("ready", flush=True)
    end = time.monotonic() + a.duration
    period = 1.0 / a.churn if a.churn > 0 else None
    next_at = time.monotonic()
    while not stop.is_set() and time.monotonic() < end:
        if period is None:
            stop.wait(0.5)
            continue
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", a.port))
            s.sendall(hostile_http.HALF_REQUEST)
        except OSError:
            pass
        held.socks.append(s)
        held.socks.pop(0).close()
        opened += 1
    stop.set()
    n = len(held.socks)
    held.close()
    print(json.dumps({"held": n, "opened": opened, "health_max_s": health["max"],
                      "health_failures": health["failures"]}), flush=True)


if __name__ == "__main__":
    main()
