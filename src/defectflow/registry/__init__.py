"""Model registry: the MLflow pyfunc that ships, registration, promotion."""
