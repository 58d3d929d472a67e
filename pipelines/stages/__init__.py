"""The stages of a chain, one module each (ingest, quality, secrets, dedup, classify, cascade, revise, decide,
audit), every one a `BaseStage` (pipelines/core/stage.py): a versioned name, the columns it reads and adds, a
`transform`, its gates, the tables it publishes and its counts. Stages import core, judgement, udfs, schemas and
expectations, and each other; never chains, ops, evaluate or cli (tests/test_layers.py).

A new stage is one module here, one entry in a chain's tuple (pipelines/chains/run.py NIGHTLY, or iterate.py's
ROUND) and its test; its gate, if any, is a suite in expectations/suites.py.
"""
