"""Sustained skipping of launches: the monitor is overloaded (more probes than this host can
run), and says so instead of measuring less in silence.

Once a second the daemon hands `OverloadWatch.sample` the launcher's running totals of
launches made and skipped. Over the last `window` seconds, when at least `min_due`
launches were due and more than `share` of them were skipped (default 5 % of the last
60 s), the watch reports a reason — `/readyz` turns 503 with it — and logs one WARNING;
one INFO when it ends. A single late launch (a GC pause, a VM hiccup) is counted as
skipped as always, but does not make the monitor unready.
"""

from __future__ import annotations

import collections
import logging

log = logging.getLogger(__name__)

#: the defaults: the share of launches skipped over the window that means overload
SHARE = 0.05
WINDOW_SECONDS = 60
MIN_DUE = 100


class OverloadWatch:
    def __init__(
        self, window: int = WINDOW_SECONDS, share: float = SHARE, min_due: int = MIN_DUE
    ) -> None:
        self.window = window
        self.share = share
        self.min_due = min_due
        self._samples: collections.deque[tuple[int, int]] = collections.deque()
        self.reason: str | None = None

    def reset(self) -> None:
        """Forget the samples: the totals start again (a reload's new launcher)."""
        self._samples.clear()

    def sample(self, launched: int, skipped: int) -> str | None:
        """Running totals now; returns the overload reason, or None while coping."""
        self._samples.append((launched, skipped))
        while len(self._samples) > self.window + 1:
            self._samples.popleft()
        first_launched, first_skipped = self._samples[0]
        made = launched - first_launched
        missed = skipped - first_skipped
        due = made + missed
        overloaded = due >= self.min_due and missed > self.share * due
        if overloaded:
            reason = (
                f"overload: {missed / due:.0%} of launches skipped in the last "
                f"{len(self._samples) - 1} s ({missed} of {due})"
            )
            if self.reason is None:
                log.warning("%s; the host cannot run this many probes", reason)
            self.reason = reason
        elif self.reason is not None:
            log.info("launches keep up again (%d of %d skipped in the window)", missed, due)
            self.reason = None
        return self.reason
