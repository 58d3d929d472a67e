"""The infrastructure every other layer stands on: config and the constitution (what the user declares), the Stage
protocol and the executor that runs a chain of stages with the run lifecycle (runs row, MLflow run, staging, gates,
publish, accounting), the lake (Delta tables), the engine (Spark Connect session), the model registry, tracking,
locks, progress and the fault hooks. It imports nothing else of the product.

A change to how every run behaves (a new lifecycle step, a new table-wide rule) goes here; a new table is one
StructType in schemas/tables.py plus its key in publish.KEYS.
"""
