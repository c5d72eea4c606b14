"""Entry points: ``python -m lago_jax.experiments.clevr_robot`` and ``.metaworld``.

Both run :func:`lago_jax.experiments.pipeline.run_pipeline` on their environment suite.
"""
