"""Event types, ingestion of events, and event queries."""
