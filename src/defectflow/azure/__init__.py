"""Azure Blob Storage: credentials, listing/downloading images under a prefix, incremental ingestion.

`ingest_from_blob` (in `defectflow.azure.ingest`) is the entry point for the CLI and the Prefect
training flow; `BlobSource` is shared with batch scoring.
"""
