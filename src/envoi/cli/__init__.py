"""The ``envoi`` command: serve, worker, migrate, bench, doctor, apikey, operator, template, notify, workflow,
profiles, dkim."""

from __future__ import annotations

import typer

from envoi.cli import access, content, dkim, doctor, profiles, run, workflows

app = typer.Typer(help="Envoi: transactional messaging. Events in, personalized messages out.", no_args_is_help=True)
app.registered_commands += run.app.registered_commands + content.app.registered_commands
app.registered_commands += doctor.app.registered_commands
app.add_typer(access.apikey_app, name="apikey")
app.add_typer(access.operator_app, name="operator")
app.add_typer(content.template_app, name="template")
app.add_typer(workflows.workflow_app, name="workflow")
app.add_typer(profiles.profiles_app, name="profiles")
app.add_typer(dkim.dkim_app, name="dkim")

__all__ = ["app"]
