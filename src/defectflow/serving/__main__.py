"""`python -m defectflow.serving`: run the service with settings from DEFECTFLOW_* variables.

This is the container's entry point (it needs neither the CLI's dependencies nor params.yaml).
"""

from __future__ import annotations

import logging
import sys

from defectflow.errors import DefectflowError
from defectflow.serving.settings import ServingSettings


def run(settings: ServingSettings) -> None:
    """Serve `settings` with uvicorn (one process; concurrency comes from the thread pool)."""
    import uvicorn

    from defectflow.serving.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
                proxy_headers=False, server_header=False)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(ServingSettings.from_env())
    except DefectflowError as exc:
        print(f"defectflow serving: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
