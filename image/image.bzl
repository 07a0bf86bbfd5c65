"""oci_image: the validator image as an OCI layout, built by image/build.py."""

def _oci_image_impl(ctx):
    layout = ctx.actions.declare_directory(ctx.attr.name)
    digest = ctx.actions.declare_file(ctx.attr.name + ".digest")
    args = ctx.actions.args()

    # Declared inputs sit at their workspace paths in the execroot, so the
    # execroot is the "repo" build.py reads sidecar/, models/ and image/ from.
    args.add("--repo", ".")
    args.add_all(ctx.files.stubs, before_each = "--stub")
    args.add_all(ctx.files.debs, before_each = "--deb")
    args.add_all(ctx.files.wheels, before_each = "--wheel")
    args.add("--out", layout.path)
    args.add("--digest-file", digest.path)
    ctx.actions.run(
        executable = ctx.executable._build,
        arguments = [args],
        inputs = ctx.files.srcs + ctx.files.stubs + ctx.files.debs + ctx.files.wheels,
        outputs = [layout, digest],
        mnemonic = "OciImage",
        progress_message = "Assembling OCI image %s" % layout.short_path,
    )
    return [DefaultInfo(
        files = depset([layout, digest]),
        runfiles = ctx.runfiles([layout, digest]),
    )]

oci_image = rule(
    implementation = _oci_image_impl,
    attrs = {
        "debs": attr.label_list(allow_files = [".deb"]),
        "srcs": attr.label_list(allow_files = True, doc = "image.json, sidecar sources, the model"),
        "stubs": attr.label_list(allow_files = [".py"]),
        "wheels": attr.label_list(allow_files = [".whl"]),
        "_build": attr.label(default = "//image:build", executable = True, cfg = "exec"),
    },
)
