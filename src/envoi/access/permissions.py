"""What a caller may do: permissions, the built-in security groups that grant them, and the principal (an
operator in the console, or an API key) whose permissions every route checks."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from envoi.errors import Forbidden


class Permission(enum.StrEnum):
    MANAGE_OPERATORS = "manage_operators"  # operators, groups, API keys, the audit log
    EDIT_TEMPLATES = "edit_templates"  # event types, templates, layouts, seeds, proofs
    PUBLISH = "publish"  # publish, republish, pause, resume, unpublish
    PUSH_EVENTS = "push_events"  # REST and SOAP ingestion
    VIEW_EVENTS = "view_events"  # read events, messages, templates, the outbox, the quarantine
    MANAGE_WORKFLOWS = "manage_workflows"
    MANAGE_DELIVERIES = "manage_deliveries"  # providers, the quarantine, marketing deliveries


ALL = frozenset(Permission)


@dataclass(frozen=True)
class BuiltInGroup:
    name: str
    label: str
    permissions: frozenset[Permission]


BUILT_IN_GROUPS = (
    BuiltInGroup("administrators", "Administrators", ALL),
    BuiltInGroup(
        "template_editors",
        "Template editors",
        frozenset({Permission.EDIT_TEMPLATES, Permission.PUBLISH, Permission.VIEW_EVENTS}),
    ),
    BuiltInGroup(
        "workflow_supervisors", "Workflow supervisors", frozenset({Permission.MANAGE_WORKFLOWS, Permission.VIEW_EVENTS})
    ),
    BuiltInGroup(
        "delivery_supervisors",
        "Delivery supervisors",
        frozenset({Permission.MANAGE_DELIVERIES, Permission.VIEW_EVENTS}),
    ),
    BuiltInGroup("viewers", "Viewers", frozenset({Permission.VIEW_EVENTS})),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an operator (console session, or one of their API keys) or a service account's key."""

    actor: str  # as the audit trail names it: "ops@example.com", "api key 12 (billing)"
    permissions: frozenset[Permission]
    operator_id: int | None = None
    key_id: int | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"this needs the {permission.value} permission, which {self.actor} does not have")
