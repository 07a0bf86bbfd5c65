"""Scrapes /metrics (and /health) as fast as it can from N threads until killed or --duration ends.

Prints {"scrapes": n, "failures": n} on exit; benchmarks run it next to a
latency phase to see what abusive scraping costs the request path.
"""

import argparse
import json
import signal
import threading
import urllib.request


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration", type=float, default=600.0)
    a = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts = {"scrapes": 0, "failures": 0}
    lock = threading.Lock()

    def loop():
        while not stop.is_set():
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
    stop.wait(a.duration)
    stop.set()
    for t in threads:
        t.join(10)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
