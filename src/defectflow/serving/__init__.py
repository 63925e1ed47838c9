"""The scoring service: FastAPI over the edge bundle (`defectflow serve`, `python -m defectflow.serving`)."""
