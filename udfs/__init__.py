"""Functions the stages run on rows and batches (parsing, rules, hashes, models), with no engine and no lake."""

import os

# OpenMP threads that wait spin by default (GNU libgomp, under torch's CPU kernels: the encoder, the stack teachers).
# On a machine other work also uses, the spinning takes the cores the work waits for: a 300-document night's classify
# on 2 cores at load 4-6 took 61-66 s spinning and 34-35 s with passive waits; idle, both 22 s. libgomp reads this
# once, when torch is imported, so it is set here, before any module of the product imports torch; a value the user
# set is kept. Spark's Python workers cap OpenMP for the same reason (OMP_NUM_THREADS = spark.task.cpus).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
