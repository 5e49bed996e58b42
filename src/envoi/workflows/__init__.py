"""Workflows: definitions, runs, activities, the scheduler and error management."""
