"""Operating a lake after its runs: versions (corpus versions and the lake states they belong to), diff, restore,
maintain (compaction and vacuum), repair (broken invariants), export (training shards), report (report_data
collects, report renders) and demo (the packaged demo crawl). They import core and judgement only.

A new operation is one module here with its command in pipelines/cli/lake.py; one that rewrites tables takes the
writer lock and records itself in `runs` (see restore.py).
"""
