"""Models-from-code entry point for the logged pyfunc: MLflow runs this file at load time
instead of unpickling an object (safer, and independent of the training process)."""

from mlflow.models import set_model

from defectflow.registry.pyfunc import DefectClassifier

set_model(DefectClassifier())
