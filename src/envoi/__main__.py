"""``python -m envoi`` is the ``envoi`` command."""

from envoi.cli import app

app(prog_name="envoi")
