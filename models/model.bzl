"""trained_model: runs the training script for one model version inside the build.

The output is a directory laid out exactly like the committed model, so a test
can compare the two file by file. `isa` caps oneDNN's kernel choice
(ONEDNN_MAX_CPU_ISA) to reproduce what an older CPU would compute.
"""

def _trained_model_impl(ctx):
    # Under retrained/ so its runfiles never shadow the committed trust_score/.
    out = ctx.actions.declare_directory("retrained/" + ctx.attr.name)
    env = {"ONEDNN_MAX_CPU_ISA": ctx.attr.isa} if ctx.attr.isa else {}
    ctx.actions.run(
        executable = ctx.executable.trainer,
        arguments = ["--output_dir=" + out.path, "--version=" + ctx.attr.version],
        outputs = [out],
        env = env,
        mnemonic = "TrainModel",
        progress_message = "Training %s (oneDNN ISA cap: %s)" % (out.short_path, ctx.attr.isa or "none"),
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles([out]))]

trained_model = rule(
    implementation = _trained_model_impl,
    attrs = {
        "isa": attr.string(doc = "ONEDNN_MAX_CPU_ISA for the training run; empty: this CPU's best."),
        "trainer": attr.label(executable = True, cfg = "exec", mandatory = True),
        "version": attr.string(mandatory = True, doc = "The release to train (train.py's RELEASES)."),
    },
)

def trained_models(name, trainer, version, isas):
    """One trained_model per ISA cap: `name` for none, `name_<isa>` for each cap."""
    trained_model(name = name, trainer = trainer, version = version)
    for isa in isas:
        trained_model(name = "%s_%s" % (name, isa.lower()), trainer = trainer, version = version, isa = isa)
