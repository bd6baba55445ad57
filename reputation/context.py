"""What every pipeline stage receives: the run id, the settings and the run's reference time."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from .config import Settings

log = logging.getLogger("reputation")


@dataclass(frozen=True)
class StageContext:
    """Shared, read-only state of one run.

    A stage is a function ``build_x(con, ctx) -> int`` that reads canonical tables from the DuckDB
    connection ``con``, writes its own table(s) (every row carrying ``ctx.run_id``), documents them
    with :func:`reputation.store.comment_table`, and returns the number of rows it wrote.

    Example
    -------
    >>> from datetime import datetime
    >>> ctx = StageContext(run_id="r1", settings=Settings(), as_of=datetime(2026, 1, 31))
    >>> ctx.run_id
    'r1'
    """

    run_id: str
    settings: Settings
    as_of: datetime
    extras: dict[str, object] = field(default_factory=dict)
    #: ``as_of`` was set in the config (a replay of that moment) rather than taken from the latest
    #: message: flags and overrides dated after it are then left out (see
    #: :func:`reputation.scoring.flags.build_flag_evidence`).
    as_of_pinned: bool = False

    def info(self, message: str, *args: object) -> None:
        log.info(message, *args)
