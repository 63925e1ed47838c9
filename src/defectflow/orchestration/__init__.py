"""The Prefect-specific library code (tasks, cache keys, task runner, events, automations) and the plain
helpers the flows use, kept out of flows/ so the flows stay thin entry points."""
