"""RadPath: the diffuse glioma class (A / O / G, CPM-RadPath) from four MRI sequences.

One import package; each stage of the pipeline is a subpackage, and imports run one way
(`lint-imports` checks it, see `[tool.importlinter]` in pyproject.toml):

    contract            what crosses the stages: errors, labels CSV, model input, signature, metrics
    preprocess          read, check, normalise, the max-tumour slice, the model input
    synth | train | serving   the synthetic cohort; Flax training + jax2tf export; the model server
    client | web        the gRPC client and CLI; the web app for clinicians (its own service)

`radpath.cli` is the `radpath` command's dispatcher.
"""
