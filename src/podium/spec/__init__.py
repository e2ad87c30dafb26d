"""Workflow specification: models, loading with caps, templating and validation."""
