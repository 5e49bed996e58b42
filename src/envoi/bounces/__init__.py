"""Bounces and complaints: the inbound SMTP listener, VERP return paths, DSN and ARF parsing, quarantine."""
