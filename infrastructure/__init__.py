"""Adapters: the eventsourcing application, recorders, read model, audit, settings.

Events and snapshots stored before Dateline was installed as the `dateline.*`
namespace name their classes by the old module paths ("domain.city:City.Reported").
Registering the old package name lets the library resolve those topics to the same
classes, so the log is read as it was written (its bytes, and so its hashes, never
change); new events are stored under the new names.
"""

from typing import Any, cast

from eventsourcing.utils import register_topic

import dateline.domain

register_topic("domain", cast(Any, dateline.domain))
