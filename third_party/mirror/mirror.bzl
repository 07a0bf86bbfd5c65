"""Bazel's own downloads with the input mirrors first (see mirror.py).

`pinned_archive` is `http_archive` for a file pinned by sha256 whose URL list
is built when it is fetched: `<mirror>/sha256/<sha256>/<file name>` for each
base in VEID_MIRRORS (environment or `--repo_env`), then the upstream URL.
Bazel's downloader moves to the next URL when one is missing and fails on a
checksum mismatch, naming the repository, and its repository cache serves the
file by sha256 before any URL is tried.

VEID_MIRRORS is deliberately not in `environ`: a pinned file is the same bytes
wherever it comes from, so changing the mirror list must not refetch.
"""

MIRRORS_ENV = "VEID_MIRRORS"

def _mirror_bases(rctx):
    # The configured bases as URLs, in order (as mirror.py's bases()).
    found = []
    value = rctx.os.environ.get(MIRRORS_ENV, "")
    for sep in (",", "\t", "\n"):
        value = value.replace(sep, " ")
    for item in value.split(" "):
        if not item:
            continue
        if item.startswith("/"):
            item = "file://" + item
        elif not (item.startswith("file:///") or item.startswith("https://") or item.startswith("http://")):
            fail("{}: '{}' is neither an absolute directory nor a file://, https:// or http:// base".format(MIRRORS_ENV, item))
        found.append(item.rstrip("/"))
    return found

def _pinned_archive_impl(rctx):
    filename = rctx.attr.url.rsplit("/", 1)[-1]
    urls = ["{}/sha256/{}/{}".format(base, rctx.attr.sha256, filename) for base in _mirror_bases(rctx)]
    rctx.download_and_extract(
        url = urls + [rctx.attr.url],
        sha256 = rctx.attr.sha256,
        type = rctx.attr.type,
        stripPrefix = rctx.attr.strip_prefix,
    )
    rctx.file("BUILD.bazel", rctx.attr.build_file_content)

pinned_archive = repository_rule(
    implementation = _pinned_archive_impl,
    attrs = {
        "build_file_content": attr.string(mandatory = True),
        "sha256": attr.string(mandatory = True),
        "strip_prefix": attr.string(),
        "type": attr.string(),
        "url": attr.string(mandatory = True, doc = "upstream; its last path segment is the file name on a mirror"),
    },
    doc = "An archive pinned by sha256, fetched from the input mirrors first.",
)

def pinned_archives(archives):
    """Declares a pinned_archive per dict of an ARCHIVES list.

    Args:
      archives: dicts with name, url, sha256, build_file_content, and
        optionally type and strip_prefix.
    """
    for archive in archives:
        pinned_archive(
            name = archive["name"],
            build_file_content = archive["build_file_content"],
            sha256 = archive["sha256"],
            strip_prefix = archive.get("strip_prefix", ""),
            type = archive.get("type", ""),
            url = archive["url"],
        )

def _archives_json_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.name)
    ctx.actions.write(out, json.encode([json.decode(a) for a in ctx.attr.archives]))
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles([out]))]

_archives_json = rule(
    implementation = _archives_json_impl,
    attrs = {"archives": attr.string_list()},
)

def archives_json(name, archives):
    """A JSON file listing the name, url and sha256 of ARCHIVES dicts.

    Args:
      name: the file (and target) name.
      archives: as pinned_archives takes them.
    """
    _archives_json(
        name = name,
        archives = [json.encode({k: a[k] for k in ("name", "sha256", "url")}) for a in archives],
    )
