"""Plain helpers the Prefect flows use (cache keys, the run report), kept out of flows/ so the flows stay thin."""
