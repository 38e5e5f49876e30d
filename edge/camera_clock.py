"""The camera box's clock against the agent's: how far the times it stamps on burst photos are off.

A burst's photos carry the camera box's time (their files' mtime), the agent reads everything else
by its own clock (GPS- or NTP-disciplined): a box without a battery starts in 1970, a cheap one
drifts minutes. A lift took its times from the photos, so a box 3 minutes behind made every live
lift look 3 minutes old: it took the GPS fix of 3 minutes ago (another street), the RFID reads of
3 minutes ago, and a box in 1970 had every lift refused by the server as past its retention.

What tells the two clocks apart is a burst the agent watched being written: a folder that appeared
between two listings of the running scanner, one at a time (a card put back, a copy of old bursts
or the first listing after a start bring many at once, or none seen appearing). When its photos
stop changing, the agent knows on its own clock when it saw the last change, and the newest mtime
says the same moment on the camera's: their difference is one sample of the offset, plus however
late the agent saw it (the scanner's half-second poll; more for a burst that waited somewhere). A
burst can be seen late, never early, so the estimate is the smallest of the last ``SAMPLES``: any
number of late ones (a camera box emptying its upload queue one burst at a time, a folder copied
in with its old times) does not move it while one burst of the window was seen on time. A clock
set forward (NTP on the camera box) lowers it at once; a clock set back (the box rebooted to 1970)
shows as ``JUMP_SAMPLES`` bursts in a row that agree with each other within ``AGREE_S`` but sit far
above the estimate (a backlog's bursts differ by the time between their lifts): the window then
starts again from them.

Every burst's times are then corrected by the estimate, a backlog's included: a burst shot 5
minutes ago by a box 3 minutes behind is 5 minutes old, not 8, and takes the fix of its own time.
Below ``CORRECT_FROM_S`` the difference is the poll's, not the camera's: times stay as stamped.

The window outlives a restart (``edge.camera_clock_file``: a truck loses power many times a day):
it was learnt afresh at each start, and the bursts shot while the agent was down took the camera's
own times. A window restored from the state file stands until the first burst watched live of this
run, if its last sample is at most ``RESTORED_MAX_AGE_S`` old on the agent's clock (a cheap camera's
crystal drifts up to about 100 ppm, 4 s in 12 hours: less than the truck stands at a bin; older,
it is not trusted), and only for photos stamped no earlier than that last
sample (a camera's clock behind it was set back or restarted from 1970 since) and that it does not
put ahead of the agent's now (a clock set forward since). Until then, as before any state, times
are the camera's own. The first live burst joins the restored samples when it passes the same test,
else starts the window alone.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

SAMPLES = 9  # live bursts the estimate is the smallest of: about 5 minutes of lifts
JUMP_SAMPLES = 2  # bursts in a row that tell of the camera's clock set back
AGREE_S = 5.0  # how close their samples are: the poll and settle, not the 30 s between two lifts
CORRECT_FROM_S = 2.0  # smaller offsets are within the scanner's poll and settle: not corrected
REPORT_S = 30.0  # an offset this large is logged and shown (the fleet page's "horloge caméra décalée")
RESTORED_MAX_AGE_S = 12 * 3600.0  # a saved window older than this is not trusted: drift (see above)


@dataclass(frozen=True, slots=True)
class ClockState:
    """What outlives a restart: the window's samples and its newest sample's two times."""

    samples: tuple[float, ...]
    seen_at: datetime  # the agent's clock
    stamped_at: datetime  # the camera's

    def offset_s(self) -> float:
        return min(self.samples)

    def fits(self, stamped_at: datetime, now: datetime) -> bool:
        """Whether a photo stamped ``stamped_at`` may be corrected by this state: not stamped before
        its last sample (the camera's clock set back since) nor put ahead of ``now`` by it (set forward)."""
        slack = timedelta(seconds=AGREE_S)
        try:
            corrected = stamped_at + timedelta(seconds=self.offset_s())
            return stamped_at >= self.stamped_at - slack and corrected <= now + slack
        except OverflowError:
            return False


def _span(seconds: float) -> str:
    """``3 min 12 s``, ``56 years``: the size of an offset, for a person."""
    size = abs(seconds)
    if size >= 2 * 365 * 86400:
        return f"{size / (365.25 * 86400):.0f} years"
    if size >= 2 * 86400:
        return f"{size / 86400:.0f} days"
    if size >= 2 * 3600:
        return f"{size / 3600:.1f} h"
    if size >= 120:
        return f"{size // 60:.0f} min {size % 60:.0f} s"
    return f"{size:.0f} s"


class CameraClock:
    """Running estimate of (agent's clock - camera box's clock), in seconds; fed by the burst scanner,
    read by the heartbeat (another thread)."""

    def __init__(self, samples: int = SAMPLES, on_change: Callable[[ClockState], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._samples: deque[float] = deque(maxlen=samples)  # bounded: weeks of bursts, same memory
        self._reported: float | None = None  # the large offset last logged; None while small
        self._restored: ClockState | None = None  # the window before the restart, until a live burst
        self._on_change = on_change  # the state file, written at each sample

    def restore(self, state: ClockState, now: datetime | None = None) -> bool:
        """Start from the window saved before a restart, if it is recent enough (``RESTORED_MAX_AGE_S``)."""
        age = ((now or datetime.now(UTC)) - state.seen_at).total_seconds()
        if not -AGREE_S <= age <= RESTORED_MAX_AGE_S:
            log.info("camera clock: the estimate saved %s %s is not used (trusted for %.0f h); learning it afresh",
                     _span(age), "ago" if age >= 0 else "ahead of this agent's clock", RESTORED_MAX_AGE_S / 3600)
            return False
        with self._lock:
            self._samples.clear()
            self._restored = state
        log.info("camera clock: %+.1f s, as estimated before the restart (%s ago), until a burst is seen being "
                 "written", state.offset_s(), _span(age))
        return True

    def observe(self, seen_at: datetime, stamped_at: datetime) -> None:
        """A burst watched live: its last change seen at ``seen_at`` (the agent's clock), stamped
        ``stamped_at`` (the camera's)."""
        with self._lock:
            samples, restored, self._restored = self._samples, self._restored, None
            if restored is not None and restored.fits(stamped_at, seen_at):
                samples.extend(restored.samples)  # the window goes on across the restart
            elif restored is not None:
                log.warning("camera clock changed while the agent was stopped: the estimate saved before the "
                            "restart is dropped")
            samples.append((seen_at - stamped_at).total_seconds())
            last = list(samples)[-JUMP_SAMPLES:]
            if (len(samples) > len(last) and max(last) - min(last) <= AGREE_S
                    and min(last) - min(samples) > REPORT_S):
                samples.clear()  # the camera's clock was set back: what was learnt before is wrong now
                samples.extend(last)
            offset, state = min(samples), ClockState(tuple(samples), seen_at, stamped_at)
        self._report(offset)
        if self._on_change is not None:
            self._on_change(state)

    def offset_s(self) -> float | None:
        """The estimate (positive: the camera is behind): the restored one until a burst is watched
        live; None before either."""
        with self._lock:
            if self._samples:
                return min(self._samples)
            return None if self._restored is None else self._restored.offset_s()

    def reported_offset_s(self) -> float | None:
        """The estimate for the heartbeat (wire 1.3): rounded to 0.1 s (the poll makes it no finer),
        None while unknown."""
        offset = self.offset_s()
        return None if offset is None else round(offset, 1)

    def correct(self, stamped_at: datetime) -> datetime:
        """``stamped_at`` (the camera's clock) on the agent's clock, as far as it is known."""
        with self._lock:
            restored, live = self._restored, bool(self._samples)
        if not live and restored is not None and not restored.fits(stamped_at, datetime.now(UTC)):
            return stamped_at  # the camera's clock moved while the agent was stopped: its own times stand
        offset = self.offset_s()
        if offset is None or abs(offset) < CORRECT_FROM_S:
            return stamped_at
        try:
            return stamped_at + timedelta(seconds=offset)
        except OverflowError:  # a stamp near year 1 or 9999: left as it is rather than lose the lift
            return stamped_at

    def _report(self, offset: float) -> None:
        """Logged when the offset becomes large, when it moves by as much again, and when it is small."""
        reported = self._reported
        if abs(offset) >= REPORT_S and (reported is None or abs(offset - reported) >= REPORT_S):
            self._reported = offset
            log.warning("camera clock %s %s the agent's (from the last %d bursts seen being written): burst times "
                        "are corrected by it; set the camera box's clock (NTP) to stop it",
                        _span(offset), "behind" if offset > 0 else "ahead of", len(self._samples))
        elif abs(offset) < REPORT_S and reported is not None:
            self._reported = None
            log.info("camera clock within %.0f s of the agent's again (%+.1f s)", REPORT_S, offset)
