"""Logs (structlog) and metrics (Prometheus, summed over the processes of a host)."""
