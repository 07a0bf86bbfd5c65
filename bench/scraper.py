"""Scrapes /metrics (and /health) from N threads, non-stop or at --rate, until killed or --duration ends.

Prints "ready" once it handles SIGTERM and its threads run, and
{"scrapes": n, "failures": n} on exit; benchmarks run it next to a latency
phase to see what abusive scraping costs the request path.
"""

import argparse
import json
import signal
import threading
import time
import urllib.request


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--rate", type=float, default=0.0, help="scrapes per second per thread; 0: as fast as it can")
    a = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts = {"scrapes": 0, "failures": 0}
    lock = threading.Lock()

    def loop():
        period = 1.0 / a.rate if a.rate > 0 else 0.0
        next_at = time.monotonic()
        while not stop.is_set():
            if period:
                next_at += period
                if stop.wait(max(0.0, next_at - time.monotonic())):
                    break
            ok = True
            for path in ("/metrics", "/health"):
                try:
                    with urllib.request.urlopen(a.url + path, timeout=5) as r:
                        r.read()
                        ok = ok and r.status == 200
                except OSError:
                    ok = False
            with lock:
                counts["scrapes"] += 1
                counts["failures"] += 0 if ok else 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(a.threads)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    stop.wait(a.duration)
    stop.set()
    for t in threads:
        t.join(10)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
