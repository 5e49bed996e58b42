"""Imports every model so that ``Base.metadata`` describes the whole schema (for Alembic and tests)."""

from envoi.access import models as access_models
from envoi.bounces import models as bounces_models
from envoi.campaigns import models as campaigns_models
from envoi.channels import outbox
from envoi.db import meta
from envoi.db.base import Base
from envoi.delivery import models as delivery_models
from envoi.events import models as events_models
from envoi.notifications import models as notifications_models
from envoi.providers import models as providers_models
from envoi.reports import models as reports_models
from envoi.templates import models as templates_models
from envoi.tracking import models as tracking_models
from envoi.webhooks import models as webhooks_models
from envoi.workflows import models as workflows_models

metadata = Base.metadata

__all__ = [
    "access_models",
    "bounces_models",
    "campaigns_models",
    "delivery_models",
    "events_models",
    "meta",
    "metadata",
    "notifications_models",
    "outbox",
    "providers_models",
    "reports_models",
    "templates_models",
    "tracking_models",
    "webhooks_models",
    "workflows_models",
]
