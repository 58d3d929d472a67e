"""The product: a curation stage for pretraining corpora. Layers, bottom to top: core, judgement, stages, ops,
evaluate, chains, cli (README.md, "Layout"; tests/test_layers.py holds the rule)."""

import udfs  # noqa: F401 - sets the OpenMP wait policy before anything imports torch (udfs/__init__.py)
