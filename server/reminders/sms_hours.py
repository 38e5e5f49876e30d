"""When an SMS may reach a resident: Monday to Saturday, 8:00 to 20:00 local time, not on a French
public holiday.

A sorting reminder from the public service is not commercial prospection (article L34-5 of the
code des postes et des communications électroniques does not apply), but the hours the profession
keeps for SMS (the AF2M/Fédération française des télécoms code of conduct: 8 h to 20 h, Monday to
Saturday, never on Sundays and public holidays) are what residents expect of any SMS, and a send
run from cron, or a retry falling due, must not buzz a phone at 3 a.m. An SMS item outside these
hours stays approved and goes with the first send inside them; e-mails and letters are not held.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

OPENS, CLOSES = time(8, 0), time(20, 0)
HOURS_LABEL = "du lundi au samedi de 8 h à 20 h, hors jours fériés"


def _easter(year: int) -> date:
    """Easter Sunday (Gregorian calendar, anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def public_holidays(year: int) -> frozenset[date]:
    """The eleven French public holidays (code du travail, art. L3133-1) of ``year``."""
    easter = _easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    return frozenset([date(year, m, d) for m, d in fixed] +
                     [easter + timedelta(days=n) for n in (1, 39, 50)])  # lundi de Pâques, Ascension, Pentecôte


def sms_allowed(moment: datetime, zone: ZoneInfo) -> bool:
    """True when an SMS sent at the aware ``moment`` arrives within the hours above."""
    local = moment.astimezone(zone)
    return (local.weekday() < 6 and local.date() not in public_holidays(local.year)
            and OPENS <= local.time() < CLOSES)
