"""MLflow models-from-code entry point for the distilled heads: the registered model holds this file and the
head's weights, not a pickled Python object (see udfs/heads.py)."""

import mlflow

from udfs.heads import CurateHeadModel

mlflow.models.set_model(CurateHeadModel())
