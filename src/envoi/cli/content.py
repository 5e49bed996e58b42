"""Content from the command line: Adobe templates imported as drafts, notifications to operators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.cli.common import console, in_transaction, load_settings

template_app = typer.Typer(help="Templates: import from Adobe Campaign.")
app = typer.Typer()


@template_app.command("import-adobe")
def template_import_adobe(
    html_file: Annotated[Path, typer.Argument(help="The Adobe template's HTML, with JST expressions.")],
    event_type: Annotated[str, typer.Option("--event-type", help="The event type it is for.")],
    name: Annotated[str, typer.Option(help="The new template's name.")],
    sender: Annotated[str, typer.Option("--from", help="From header, e.g. 'Shop <shop@example.com>'.")],
    subject: Annotated[str, typer.Option(help="Subject, JST allowed.")],
) -> None:
    """Create a draft email template from an Adobe Campaign one; what cannot be converted is listed."""
    from envoi.templates.schemas import AdobeImportIn
    from envoi.templates.service import convert_adobe, create_template

    settings = load_settings()
    data = AdobeImportIn.model_validate(
        {
            "name": name,
            "eventType": event_type,
            "email": {"from": sender, "subject": subject, "html": html_file.read_text()},
        }
    )
    converted, left = convert_adobe(data)

    async def create(session: AsyncSession) -> int:
        return (await create_template(session, converted, actor="cli")).id

    template_id = in_transaction(settings, create, migrate=True)
    console.print(f"Created draft template {template_id} ('{name}'). Publish it once you have checked it.")
    for field, snippet in left:
        console.print(f"  not converted in {field}: {snippet}", soft_wrap=True, highlight=False, markup=False)


@app.command()
def notify(
    title: Annotated[str, typer.Option(help="What it is about, in a few words.")],
    body: Annotated[str, typer.Option(help="The message.")],
    group: Annotated[
        list[str] | None, typer.Option(help="Notify every active member of this security group; repeatable.")
    ] = None,
    operator: Annotated[list[str] | None, typer.Option(help="Notify this operator (login email); repeatable.")] = None,
    link: Annotated[str | None, typer.Option(help="A console path (/console/templates/4) or an address.")] = None,
    category: Annotated[str, typer.Option(help="action_required or info.")] = "info",
    email: Annotated[
        bool, typer.Option("--email", help="Send each an email copy too (to the outbox without SMTP).")
    ] = False,
) -> None:
    """Notify operators in the console (open consoles show it within a second), and by email with --email."""
    from envoi.notifications.email import EmailCopy
    from envoi.notifications.service import Category, Recipients
    from envoi.notifications.service import notify as notify_operators

    settings = load_settings()
    if not group and not operator:
        console.print("[red]Say whom to notify: --group and/or --operator.[/]")
        raise typer.Exit(2)
    if category not in {c.value for c in Category}:
        console.print("[red]--category is action_required or info[/]")
        raise typer.Exit(2)

    async def send(session: AsyncSession) -> int:
        notified = await notify_operators(
            session,
            Recipients(operators=operator or (), groups=group or ()),
            title=title,
            body=body,
            category=Category(category),
            link=link,
            email=EmailCopy.of(settings) if email else None,
        )
        return len(notified)

    count = in_transaction(settings, send)
    emailed = " and emailed them" if email and count else ""
    console.print(f"Notified {count} operator{'s' if count != 1 else ''}{emailed}.")
