"""Puts each lock entry's first --hash on the entry's own line.

pip-compile writes `name==version \` and then one `--hash=` per line; pip
reads both forms alike. With the first hash on the entry line, every line
that names a distribution also carries a hash, so a reviewer (or a grep)
can see at a glance that nothing is pinned without one.
"""

import re
import sys

_ENTRY = re.compile(r"^(\S+==\S+) \\\n\s+(--hash=sha256:[0-9a-f]{64})", re.M)


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(_ENTRY.sub(r"\1 \2", text))


if __name__ == "__main__":
    main(sys.argv[1])
