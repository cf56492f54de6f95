"""The dispatcher: moves each run from step to step, runs delays and retries."""
