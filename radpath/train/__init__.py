"""RadPath training: input pipeline, Flax ResNet50, pmap training loop, evaluation, jax2tf export.

Importing this package is cheap (no jax/tensorflow): heavy modules import them themselves.
"""
