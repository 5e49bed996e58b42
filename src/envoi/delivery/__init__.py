"""The worker: claim a batch, route, check quarantine, render, send, record. Retries and quarantine."""
