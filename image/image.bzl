"""oci_image: the validator image as an OCI layout, built by image/build.py.

One action writes the layout (with the SBOM attached as a referrer of the
image manifest), the manifest digest, and the SBOM again as its own file:
output group `sbom`, also the `sbom` output's label."""

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
    args.add("--sbom", ctx.outputs.sbom.path)
    ctx.actions.run(
        executable = ctx.executable._build,
        arguments = [args],
        inputs = ctx.files.srcs + ctx.files.stubs + ctx.files.debs + ctx.files.wheels,
        outputs = [layout, digest, ctx.outputs.sbom],
        mnemonic = "OciImage",
        progress_message = "Assembling OCI image %s" % layout.short_path,
    )
    return [
        DefaultInfo(
            files = depset([layout, digest]),
            runfiles = ctx.runfiles([layout, digest]),
        ),
        OutputGroupInfo(sbom = depset([ctx.outputs.sbom])),
    ]

oci_image = rule(
    implementation = _oci_image_impl,
    attrs = {
        "debs": attr.label_list(allow_files = [".deb"]),
        "sbom": attr.output(mandatory = True, doc = "the SBOM (SPDX 2.3 JSON) the layout carries"),
        "srcs": attr.label_list(allow_files = True, doc = "image.json, sidecar sources, the model, the locks"),
        "stubs": attr.label_list(allow_files = [".py"]),
        "wheels": attr.label_list(allow_files = [".whl"]),
        "_build": attr.label(default = "//image:build", executable = True, cfg = "exec"),
    },
)
