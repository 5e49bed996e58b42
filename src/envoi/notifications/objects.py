"""What a notification can be about: for each type of object, its page in the console and the operators who
hold a role on it (its creator and editors). Packages that come later (workflows, email deliveries) register
theirs with ``register_object``; notifications never import them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.models import AuditEntry, Operator
from envoi.errors import ValidationFailed
from envoi.templates.models import TemplateAuditEntry

RoleResolver = Callable[[AsyncSession, str], Awaitable[list[Operator]]]
LinkBuilder = Callable[[str], str]


@dataclass(frozen=True)
class ObjectRef:
    """An object by its type and id, as the audit log names them: ("template", "4"), ("event_type", "order")."""

    type: str
    id: str


@dataclass(frozen=True)
class _Kind:
    link: LinkBuilder | None
    roles: RoleResolver | None


_KINDS: dict[str, _Kind] = {}


def register_object(object_type: str, *, link: LinkBuilder | None = None, roles: RoleResolver | None = None) -> None:
    _KINDS[object_type] = _Kind(link, roles)


def console_link(ref: ObjectRef) -> str | None:
    """The console page of an object, or None for a type that has none."""
    kind = _KINDS.get(ref.type)
    return kind.link(ref.id) if kind and kind.link else None


async def operators_in_roles(session: AsyncSession, ref: ObjectRef) -> list[Operator]:
    kind = _KINDS.get(ref.type)
    if kind is None or kind.roles is None:
        known = ", ".join(sorted(name for name, k in _KINDS.items() if k.roles))
        raise ValidationFailed(f"objects of type {ref.type!r} have no roles; types with roles: {known}", field="roles")
    return await kind.roles(session, ref.id)


# Who created or edited an object, in the audit log (operator ids) or a trail that names actors by login.
_EDITS = ("created", "updated", "changed")


def _login_of(actor: str) -> str | None:
    """ "ops@example.com" and "ops@example.com (api key 12)" are the operator ops@example.com; "api key 3
    (billing)", "demo" and "cli" are no operator."""
    login = actor.partition(" (")[0].strip().lower()
    return login if "@" in login else None


async def _template_roles(session: AsyncSession, object_id: str) -> list[Operator]:
    if not object_id.isdigit():
        raise ValidationFailed(f"a template id is a number, not {object_id!r}", field="roles")
    actors = await session.scalars(
        select(TemplateAuditEntry.actor)
        .where(TemplateAuditEntry.template_id == int(object_id), TemplateAuditEntry.action.in_(_EDITS))
        .distinct()
    )
    logins = {login for actor in actors if (login := _login_of(actor))}
    audited = set(
        await session.scalars(
            select(AuditEntry.operator_id).where(
                AuditEntry.object_type == "template",
                AuditEntry.object_id == object_id,
                AuditEntry.action.in_(_EDITS),
                AuditEntry.operator_id.is_not(None),
            )
        )
    )
    if not logins and not audited:
        return []
    rows = await session.scalars(
        select(Operator)
        .where(Operator.active.is_(True), Operator.email.in_(logins) | Operator.id.in_(audited))
        .order_by(Operator.id)
    )
    return list(rows)


register_object("template", link=lambda object_id: f"/console/templates/{quote(object_id)}", roles=_template_roles)
register_object("event", link=lambda object_id: f"/console/events/{quote(object_id)}")
register_object("event_type", link=lambda name: "/console/events?" + urlencode({"type": name}))
