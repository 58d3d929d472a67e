"""`python -m pipelines.cli ...` is `curate ...` (the tests and benchmarks start it this way)."""

import sys

from pipelines.cli.main import main

sys.exit(main())
