"""Imports every domain's tables so that `Base.metadata` knows them all (Alembic, tests)."""

from tidings.accounts import models as accounts_models
from tidings.audit import models as audit_models
from tidings.campaigns import models as campaigns_models
from tidings.dispatch import models as dispatch_models
from tidings.inbound import models as inbound_models
from tidings.loyalty import models as loyalty_models
from tidings.members import models as members_models
from tidings.notifications import models as notifications_models
from tidings.orders import models as orders_models
from tidings.profiles import models as profiles_models
from tidings.reports import models as reports_models
from tidings.segments import models as segments_models
from tidings.tracking import models as tracking_models
from tidings.triggers import models as triggers_models

__all__ = [
    "accounts_models",
    "audit_models",
    "campaigns_models",
    "dispatch_models",
    "inbound_models",
    "loyalty_models",
    "members_models",
    "notifications_models",
    "orders_models",
    "profiles_models",
    "reports_models",
    "segments_models",
    "tracking_models",
    "triggers_models",
]
