"""What a good toll event is: the spec's rules (`schemas/tolls_event.json`, checked by
`speed.validate`) with the plazas table's plaza ids and the `validation.max_amount` setting."""

from __future__ import annotations

from lambdalake.config import ValidationSettings
from speed.validate import EventRules, Known

EVENT_SPEC = "tolls_event"


def toll_rules(settings: ValidationSettings, plaza_ids: Known = None) -> EventRules:
    """The rules of a toll event (`plaza_ids`: the known plazas, None to accept every plaza)."""
    return EventRules(EVENT_SPEC, settings, known={"plaza_id": plaza_ids},
                      maximum={"amount": settings.max_amount})
