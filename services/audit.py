"""The audit log: who changed what, with the state before and after."""

from data.extensions import db
from data.models import AuditLog


def audit(user_id: int | None, action: str, entity: str, entity_id: int, before, after) -> None:
    db.session.add(
        AuditLog(user_id=user_id, action=action, entity=entity, entity_id=entity_id, before=before, after=after)
    )
