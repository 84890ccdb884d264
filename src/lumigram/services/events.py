"""The router of job events: each event to its job's channel, and to every observer.

Channels (Telegram, the API's callbacks, the admin panel) and observers (metrics)
are adapters behind the ``JobEvents`` port. A channel handles its own expected
failures (a blocked bot, an unreachable callback URL); anything else it raises reaches
the worker, which fails the job (and so refunds it) rather than count it delivered.
An observer's failure is logged and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from lumigram.domain.jobs import Channel, JobEvent
from lumigram.services.ports import JobEvents

log = logging.getLogger(__name__)


class JobEventRouter:
    def __init__(
        self, channels: Mapping[Channel, JobEvents], observers: Sequence[JobEvents] = ()
    ) -> None:
        self.channels = dict(channels)
        self.observers = list(observers)

    async def publish(self, event: JobEvent) -> None:
        channel = self.channels.get(event.job.channel)
        if channel is None:
            log.warning("job %s: no adapter for channel %s", event.job.id, event.job.channel)
        else:
            await channel.publish(event)
        for observer in self.observers:
            try:
                await observer.publish(event)
            except Exception:
                log.exception(
                    "job %s: %s event not observed by %r", event.job.id, event.kind, observer
                )
