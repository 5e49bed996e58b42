"""Envoi: transactional messaging and notifications."""

__version__ = "0.1.0"
