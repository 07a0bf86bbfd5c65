#!/usr/bin/env python3
"""Refresh third_party/debian/packages.lock.json from this machine's apt metadata.

Usage (on Debian 12 with the default bookworm, bookworm-updates and
bookworm-security sources):

    apt-get update
    python3 tools/debian_lock.py            # rewrite the lock
    python3 tools/debian_lock.py --check    # exit 1 if the lock is stale

The closure of third_party/debian/packages.txt is computed from the
Depends and Pre-Depends fields (never Recommends/Suggests) of the version apt
would install (`apt-cache show --no-all-versions`). Of alternatives
(`a | b`), one already chosen wins, else the first one that is neither excluded
nor purely virtual. A purely virtual name is satisfied by its
alphabetically first provider, unless a chosen package provides it already.

EXCLUDED lists packages the image never needs at run time: they only serve
dpkg maintainer scripts (postinst/prerm), which never run because the image is
assembled from the .debs' data.tar, not installed with dpkg. A dependency
clause whose every alternative is excluded is dropped, and the drop is printed.

Each entry: name, version, arch, sha256, size, url (the pool URL of the archive
apt saw it in, https) and snapshot_url (snapshot.debian.org at the archive's
InRelease Date plus 12 hours, so that the snapshot that imported that
Release is included).
Stdlib-only; needs apt-cache, apt-get and dpkg on PATH.
"""

import argparse
import datetime
import email.utils
import json
import os
import re
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ROOTS = os.path.join(REPO_ROOT, "third_party", "debian", "packages.txt")
DEFAULT_LOCK = os.path.join(REPO_ROOT, "third_party", "debian", "packages.lock.json")
ARCH = "amd64"

# name -> why it is not part of the runtime image.
EXCLUDED = {
    "debconf": "ca-certificates' postinst asks debconf which CAs to trust; the image builds its bundle itself",
    "debconf-2.0": "virtual name of debconf (see debconf)",
    "cdebconf": "alternative provider of debconf-2.0 (see debconf)",
    "openssl": "ca-certificates' update-ca-certificates runs `openssl rehash`; Python's ssl needs only libssl3",
    "dpkg": "readline-common's postinst registers info pages (dpkg | install-info); nothing runs dpkg in the image",
    "install-info": "see dpkg",
    "perl-base": "interpreter of debconf/dpkg maintainer scripts",
}

FIELD = re.compile(r"^(Filename|SHA256): (\S+)$", re.M)
ARCHIVE_HOSTS = {"debian": "https://deb.debian.org/debian/", "debian-security": "https://deb.debian.org/debian-security/"}


def run(*argv):
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout


def parse_stanzas(text):
    """Parses deb822 text (Packages, InRelease body, apt-cache show) to dicts."""
    stanzas, cur, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif line[0] in " \t":
            if key:
                cur[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def parse_relation(field):
    """'a (>= 1) | b:any, c' -> [[('a', '>=', '1'), ('b', None, None)], [('c', None, None)]]."""
    clauses = []
    for clause in field.split(","):
        clause = clause.strip()
        if not clause:
            continue
        alts = []
        for alt in clause.split("|"):
            m = re.match(r"^\s*([a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9\-]+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?\s*(?:\[.*\])?\s*$", alt)
            if not m:
                raise SystemExit(f"debian_lock: cannot parse dependency {alt!r} in {field!r}")
            alts.append((m.group(1), m.group(2), m.group(3)))
        clauses.append(alts)
    return clauses


def version_satisfies(version, op, wanted):
    if op is None:
        return True
    dpkg_op = {"<<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">>": "gt", "<": "le", ">": "ge"}[op]
    return subprocess.run(["dpkg", "--compare-versions", version, dpkg_op, wanted]).returncode == 0


class Archives:
    """Maps a pool Filename to the archive apt saw it in (from `apt-get indextargets`)."""

    def __init__(self):
        self.by_filename = {}
        out = run("apt-get", "indextargets", "--format", "$(FILENAME)\t$(REPO_URI)\t$(ORIGIN)\t$(COMPONENT)",
                  "Identifier: Packages", f"Architecture: {ARCH}")
        for line in sorted(out.splitlines()):
            filename, repo_uri, origin, component = line.split("\t")
            if origin != "Debian" or not os.path.exists(filename):
                continue
            archive = repo_uri.rstrip("/").rsplit("/", 1)[1]
            if archive not in ARCHIVE_HOSTS:
                continue
            release = filename.split(f"_{component}_binary-")[0] + "_InRelease"
            with open(release, encoding="utf-8", errors="replace") as f:
                date = re.search(r"^Date: (.+)$", f.read(), re.M).group(1)
            stamp = email.utils.parsedate_to_datetime(date).astimezone(datetime.timezone.utc)
            stamp += datetime.timedelta(hours=12)
            snapshot = f"https://snapshot.debian.org/archive/{archive}/{stamp:%Y%m%dT%H%M%SZ}/"
            for block in run("/usr/lib/apt/apt-helper", "cat-file", filename).split("\n\n"):
                fields = dict(FIELD.findall(block))
                if "Filename" in fields:
                    key = (fields["Filename"], fields["SHA256"])
                    self.by_filename.setdefault(key, (ARCHIVE_HOSTS[archive], snapshot))


class Resolver:
    """Breadth-first closure; apt-cache is asked once per level (it is slow
    where its binary cache is disabled, as in container images)."""

    def __init__(self):
        self.archives = Archives()
        self.cache = {}  # name -> stanza, or None when purely virtual / unknown
        self.chosen = {}  # name -> stanza
        self.provides = {}  # virtual name -> set of chosen providers
        self.dropped = []  # (package, clause text, reason)
        self.constraints = []  # (package, dep, op, version)

    def prefetch(self, names):
        names = sorted({n for n in names if n not in self.cache})
        if not names:
            return
        out = run("apt-cache", "show", "--no-all-versions", *[f"{n}:{ARCH}" for n in names])
        for stanza in parse_stanzas(out):
            if stanza.get("Architecture") in (ARCH, "all"):
                self.cache.setdefault(stanza["Package"], stanza)
        for n in names:
            self.cache.setdefault(n, None)

    def providers(self, name):
        out = run("apt-cache", "showpkg", name)
        section = out.split("Reverse Provides:", 1)[1] if "Reverse Provides:" in out else ""
        return sorted({line.split()[0].split(":")[0] for line in section.splitlines() if line.split()})

    def resolve(self, roots):
        batch = list(dict.fromkeys(roots))
        while batch:
            self.prefetch(batch)
            clauses = []
            for name in batch:
                stanza = self.cache[name]
                if stanza is None:
                    raise SystemExit(f"debian_lock: no {ARCH} package {name!r}; run apt-get update?")
                self.chosen[name] = stanza
                for p in parse_relation(stanza.get("Provides", "")):
                    self.provides.setdefault(p[0][0], set()).add(name)
                for field in ("Pre-Depends", "Depends"):
                    clauses += [(name, c) for c in parse_relation(stanza.get(field, ""))]
            self.prefetch(a[0] for _, c in clauses for a in c if a[0] not in EXCLUDED)
            batch = []
            for name, clause in clauses:
                dep = self.satisfy(name, clause, batch)
                if dep is not None and dep not in self.chosen and dep not in batch:
                    batch.append(dep)
        for pkg, dep, op, ver in self.constraints:
            version = self.chosen[dep]["Version"]
            if not version_satisfies(version, op, ver):
                raise SystemExit(f"debian_lock: {pkg} wants {dep} ({op} {ver}) but apt offers {version}")

    def satisfy(self, pkg, clause, scheduled):
        """Returns the package that satisfies clause (None if dropped or virtual-satisfied)."""
        text = " | ".join(a[0] + (f" ({a[1]} {a[2]})" if a[1] else "") for a in clause)
        for dep, op, ver in clause:
            if dep in self.chosen or dep in scheduled:
                self.constraints.append((pkg, dep, op, ver))
                return dep
            if dep in self.provides:
                return None
        usable = [a for a in clause if a[0] not in EXCLUDED]
        if not usable:
            self.dropped.append((pkg, text, EXCLUDED[clause[0][0]]))
            return None
        for dep, op, ver in usable:
            if self.cache.get(dep) is not None:
                self.constraints.append((pkg, dep, op, ver))
                return dep
        providers = [p for p in self.providers(usable[0][0]) if p not in EXCLUDED]
        if not providers:
            raise SystemExit(f"debian_lock: nothing provides {text} (wanted by {pkg})")
        self.provides.setdefault(usable[0][0], set()).add(providers[0])
        return providers[0]

    def entries(self):
        out = []
        for name in sorted(self.chosen):
            s = self.chosen[name]
            key = (s["Filename"], s["SHA256"])
            if key not in self.archives.by_filename:
                raise SystemExit(f"debian_lock: {name} {s['Version']} is not in a Debian archive index ({s['Filename']})")
            base, snapshot = self.archives.by_filename[key]
            out.append({
                "name": name,
                "version": s["Version"],
                "arch": s["Architecture"],
                "sha256": s["SHA256"],
                "size": int(s["Size"]),
                "url": base + s["Filename"],
                "snapshot_url": snapshot + s["Filename"],
            })
        return out


def read_roots(path):
    with open(path, encoding="utf-8") as f:
        return [line.split("#", 1)[0].strip() for line in f if line.split("#", 1)[0].strip()]


def render(entries):
    return json.dumps(entries, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packages", default=DEFAULT_ROOTS, help="root package list (default: %(default)s)")
    ap.add_argument("--lock", default=DEFAULT_LOCK, help="lock file to write (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if the lock differs")
    args = ap.parse_args(argv)

    resolver = Resolver()
    resolver.resolve(read_roots(args.packages))
    for pkg, text, why in resolver.dropped:
        print(f"debian_lock: {pkg}: dropped dependency '{text}': {why}", file=sys.stderr)
    text = render(resolver.entries())
    if args.check:
        try:
            with open(args.lock, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"debian_lock: {args.lock} is stale; run `python3 tools/debian_lock.py`", file=sys.stderr)
            return 1
        print(f"debian_lock: {args.lock} is up to date ({len(resolver.chosen)} packages)", file=sys.stderr)
        return 0
    tmp = args.lock + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, args.lock)
    print(f"debian_lock: wrote {len(resolver.chosen)} packages to {args.lock}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
