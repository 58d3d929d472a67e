"""The two chains: `run` (the nightly chain, NIGHTLY) and `iterate` (rounds of relabel, retrain, rescore and
re-decide until a fixed point). Each is a tuple of stages run by the executor (pipelines/core/execute.py), plus
the context it builds. A new chain is a module here; a new stage in a chain is one entry in its tuple.
"""
