"""Judgement without Spark stages: teacher labels and their cache (label, sampling), the scorers the classify stage
wraps (scorers: champion or exemplar; teachers: the packaged teachers), and distillation of a new champion
(distill). Imports only core, udfs and schemas; the stages build on it.

A new labeler kind goes in udfs/labelers.py's registry; a new packaged teacher in udfs/teachers.py and
teachers.TeacherScorer; a new model kind for distillation in udfs/heads.py and distill.py.
"""
