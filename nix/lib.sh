# Sourced by the builders (busybox sh, no PATH: busybox runs its own applets).

# The image's own Python, started through its own loader and libraries, as
# third_party/python/python.bzl starts it for Bazel: nothing of the host.
# -S: no site-packages; -P: no script directory on sys.path; -B: no .pyc.
py() {
  PYTHONHOME="$python/usr" "$python/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
    --library-path "$python/lib/x86_64-linux-gnu:$python/usr/lib/x86_64-linux-gnu" \
    "$python/usr/bin/python3.11" -S -P -B "$@"
}

# Symlinks each "<file name>=<store path>" word of $2 as DIR/<file name>.
link_named() {
  mkdir -p "$1"
  for pair in $2; do
    ln -s "${pair#*=}" "$1/${pair%%=*}"
  done
}
