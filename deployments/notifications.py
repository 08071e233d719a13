"""Messages about the pipeline's events, sent by the Prefect server: a notification block and an automation.

`pipeline-cli deploy` calls `ensure_notifications`. With ``PIPELINE_NOTIFY_WEBHOOK_URL`` set, it saves
a Custom Webhook notification block with that URL (a Slack or Teams incoming webhook, or any
endpoint that takes a JSON POST) and an automation that sends one message per promotion,
rollback, drift and degraded-performance event of any dataset. Without it, an automation left by
an earlier deploy is removed, so messages stop when the variable is unset.
"""

from __future__ import annotations

import os
from datetime import timedelta

from pipeline_io.events import DRIFT_DETECTED, MODEL_PROMOTED, MODEL_ROLLED_BACK, PERFORMANCE_DEGRADED

WEBHOOK_ENV = "PIPELINE_NOTIFY_WEBHOOK_URL"
BLOCK_NAME = "pipeline-events-webhook"
AUTOMATION_NAME = "pipeline-events-notify"
NOTIFIED = (MODEL_PROMOTED, MODEL_ROLLED_BACK, DRIFT_DETECTED, PERFORMANCE_DEGRADED)

# Jinja, rendered by the server with the triggering event
SUBJECT = "{{ event.event }}: {{ event.resource['pipeline.dataset'] }}"
BODY = ("{{ event.event }} for dataset {{ event.resource['pipeline.dataset'] }}"
        "{% for r in event.related %}, model {{ r.id }} v{{ r['pipeline.model.version'] }}{% endfor %}"
        " at {{ event.occurred }}: {{ event.payload | tojson }}")


def ensure_notifications() -> str | None:
    """Create or replace the webhook block and the automation; returns the automation's name, or None when off."""
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url = os.environ.get(WEBHOOK_ENV, "").strip()
    _remove_automation(Automation)
    if not url:
        return None
    block = CustomWebhookNotificationBlock(name="pipeline events", url=url,
                                           json_data={"subject": "{{subject}}", "body": "{{body}}"})
    block_id = block.save(BLOCK_NAME, overwrite=True)
    Automation(
        name=AUTOMATION_NAME,
        description=f"Sends {', '.join(NOTIFIED)} to the webhook in {WEBHOOK_ENV} (created by `pipeline-cli deploy`).",
        trigger=EventTrigger(match={"prefect.resource.id": "pipeline.dataset.*"}, expect=set(NOTIFIED), posture=Posture.Reactive,
                             threshold=1, within=timedelta(0)),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
    return AUTOMATION_NAME


def _remove_automation(automation_cls: type) -> None:
    try:
        automation_cls.read(name=AUTOMATION_NAME).delete()
    except ValueError:  # none yet
        pass
