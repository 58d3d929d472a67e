"""Model A (raw crawl) against Model B (curated corpus), and scorers against human labels.

metrics (pure functions: expected maximum, shares, perplexity, bootstrap), data (training sets, the held-out rule,
the packaged prompt and text sets), lm (the tiny GPT model and its training), models (the orchestration behind
`curate evaluate`), outputs (report, figure, MLflow, the `evaluations` table), scorer (`curate evaluate-scorer`).
A new metric is a function in metrics.py, computed per model in models.py and reported by outputs.py.
"""
