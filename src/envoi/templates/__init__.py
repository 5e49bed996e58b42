"""Templates: drafts, immutable published versions, pause and resume, Liquid rendering."""
