"""Chinese statutory working days, read from the work-calendar seed (one row per date).

The calendar is data: ``dbt_project/seeds/calendar/work_calendar.csv``, loaded by
``dbt seed`` for SQL and read here for Python, so both count the same days; nothing
calls chinesecalendar at run time.

Maintaining it (``python -m creditplus.workdays export [--through YEAR]``):

* Years chinesecalendar knows are exported from it, ``confirmed=true``; a test checks
  the seed against the library for every day it knows, so the two cannot drift.
* A year it does not know yet is written provisionally, ``confirmed=false``: weekends
  plus the fixed-date days off of 《全国年节及纪念日放假办法》 (2024 revision: 元旦
  1 Jan, 劳动节 1–2 May, 国庆 1–3 Oct). Lunar holidays, bridge days and 调休 make-up
  days are unknown until the State Council publishes the year's schedule (usually in
  November of the year before), so they count as ordinary weekdays and every result
  touching the year is marked unconfirmed (``CalendarWarning`` in Python,
  ``deadline_confirmed = false`` in SQL).
* When the schedule is published: upgrade chinesecalendar (requirements.in, ``make
  lock``) and re-export; or, before the library has it, edit that year's rows in the
  CSV by hand from the notice (``day_kind``, ``is_workday``, ``holiday_name``,
  ``confirmed=true``, ``source`` = the notice's number). Export keeps a fully confirmed
  year the library does not know, and replaces it once the library does.
* ``--through YEAR`` extends the seed (default: its current last year); keep it at least
  one year past the evaluation dates so deadlines at year end stay inside it.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from creditplus import config
from creditplus.errors import UserError

SEED_PATH = config.DBT_PROJECT_DIR / "seeds" / "calendar" / "work_calendar.csv"
# Before the platform's history (about 5 years); each year adds 365 rows to every night's dbt seed.
FIRST_YEAR = 2020
COLUMNS = ("calendar_date", "is_workday", "day_kind", "holiday_name", "confirmed", "source")
WORKDAY, WEEKEND, HOLIDAY, MAKEUP_WORKDAY = "workday", "weekend", "holiday", "makeup_workday"

# Days off fixed by date in 《全国年节及纪念日放假办法》 (2024 revision, in force 2025-01-01);
# names as chinesecalendar spells them.
FIXED_DATE_HOLIDAYS: tuple[tuple[int, int, str], ...] = (
    (1, 1, "New Year's Day"),
    (5, 1, "Labour Day"), (5, 2, "Labour Day"),
    (10, 1, "National Day"), (10, 2, "National Day"), (10, 3, "National Day"),
)
PROVISIONAL_SOURCE = "provisional: weekends and fixed-date statutory holidays only"


class CalendarWarning(UserWarning):
    """A result depends on a provisional (unconfirmed) calendar year."""


class CalendarRangeError(UserError):
    """A date outside the years the work calendar holds."""


@dataclass(frozen=True)
class CalendarDay:
    date: dt.date
    is_workday: bool
    day_kind: str
    holiday_name: str
    confirmed: bool
    source: str

    def row(self) -> dict[str, str]:
        return {"calendar_date": self.date.isoformat(), "is_workday": _flag(self.is_workday),
                "day_kind": self.day_kind, "holiday_name": self.holiday_name,
                "confirmed": _flag(self.confirmed), "source": self.source}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> CalendarDay:
        return cls(dt.date.fromisoformat(row["calendar_date"]), row["is_workday"] == "true", row["day_kind"],
                   row["holiday_name"], row["confirmed"] == "true", row["source"])


def _flag(value: bool) -> str:
    return "true" if value else "false"


# ---------------------------------------------------------------- run time: the seed
class Calendar:
    """The seed's days, with workdays and unconfirmed days indexed for counting."""

    def __init__(self, days: list[CalendarDay]):
        self.days = {d.date: d for d in days}
        self.first, self.last = min(self.days), max(self.days)
        self.workdays = sorted(d.date for d in days if d.is_workday)
        self.unconfirmed = sorted(d.date for d in days if not d.confirmed)

    def _check(self, *dates: dt.date) -> None:
        for d in dates:
            if not self.first <= d <= self.last:
                raise self._outside(f"{d} is", d.year)

    def _outside(self, what: str, year: int) -> CalendarRangeError:
        how = (f"set creditplus.workdays.FIRST_YEAR = {year} and run" if year < self.first.year else "run")
        return CalendarRangeError(f"{what} outside the work calendar ({self.first}..{self.last}); to extend it, "
                                  f"{how} `python -m creditplus.workdays export --through {max(year, self.last.year)}`")

    def _confirmed(self, after: dt.date, through: dt.date) -> bool:
        """No unconfirmed day in (after, through]; warns otherwise."""
        unconfirmed = bisect.bisect_right(self.unconfirmed, through) - bisect.bisect_right(self.unconfirmed, after)
        if unconfirmed > 0:
            years = sorted({d.year for d in self.unconfirmed if after < d <= through})
            warnings.warn(f"work calendar year(s) {', '.join(map(str, years))} provisional until the State Council "
                          f"publishes the schedule: lunar holidays and make-up days are not known; result unconfirmed",
                          CalendarWarning, stacklevel=3)
        return unconfirmed <= 0

    def _workdays_through(self, d: dt.date) -> int:
        return bisect.bisect_right(self.workdays, d)

    def is_workday(self, d: dt.date) -> bool:
        self._check(d)
        self._confirmed(d - dt.timedelta(days=1), d)
        return self.days[d].is_workday

    def add_workdays(self, d: dt.date, n: int) -> tuple[dt.date, bool]:
        """The n-th working day after d (d itself not counted), and whether it is confirmed."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._check(d)
        index = self._workdays_through(d) + n
        if index > len(self.workdays):
            raise self._outside(f"working day {n} after {d} is", self.last.year + 1)
        due = self.workdays[index - 1] if n else d
        return due, self._confirmed(d, due)

    def workdays_between(self, start_exclusive: dt.date, end_inclusive: dt.date) -> tuple[int, bool]:
        """Working days in (start_exclusive, end_inclusive] (0 if empty), and whether confirmed."""
        self._check(start_exclusive, end_inclusive)
        count = self._workdays_through(end_inclusive) - self._workdays_through(start_exclusive)
        return max(count, 0), self._confirmed(start_exclusive, end_inclusive)


def read_seed(path: Path = SEED_PATH) -> list[CalendarDay]:
    with path.open(newline="", encoding="utf-8") as f:
        return [CalendarDay.from_row(row) for row in csv.DictReader(f)]


@lru_cache(maxsize=None)
def calendar(path: Path = SEED_PATH) -> Calendar:
    return Calendar(read_seed(path))


def is_workday(d: dt.date) -> bool:
    return calendar().is_workday(d)


def add_workdays(d: dt.date, n: int) -> tuple[dt.date, bool]:
    return calendar().add_workdays(d, n)


def workdays_between(start_exclusive: dt.date, end_inclusive: dt.date) -> tuple[int, bool]:
    return calendar().workdays_between(start_exclusive, end_inclusive)


# ---------------------------------------------------------------- maintenance: export
def _days(year: int):
    d = dt.date(year, 1, 1)
    while d.year == year:
        yield d
        d += dt.timedelta(days=1)


def library_knows(year: int) -> bool:
    import chinese_calendar

    try:
        chinese_calendar.get_holiday_detail(dt.date(year, 12, 31))
    except NotImplementedError:
        return False
    return True


def library_year(year: int) -> list[CalendarDay]:
    """A year as chinesecalendar has it (the State Council's published schedule)."""
    import chinese_calendar

    source = f"chinesecalendar {metadata.version('chinesecalendar')}"
    days = []
    for d in _days(year):
        off, name = chinese_calendar.get_holiday_detail(d)
        kind = (HOLIDAY if name else WEEKEND) if off else (MAKEUP_WORKDAY if name else WORKDAY)
        days.append(CalendarDay(d, not off, kind, name or "", True, source))
    return days


def provisional_year(year: int) -> list[CalendarDay]:
    """A year whose schedule is not published: weekends and fixed-date holidays, unconfirmed."""
    fixed = {(m, day): name for m, day, name in FIXED_DATE_HOLIDAYS}
    days = []
    for d in _days(year):
        name = fixed.get((d.month, d.day), "")
        kind = HOLIDAY if name else WEEKEND if d.weekday() >= 5 else WORKDAY
        days.append(CalendarDay(d, kind == WORKDAY, kind, name, False, PROVISIONAL_SOURCE))
    return days


def build(through: int, existing: Iterable[CalendarDay] = ()) -> list[CalendarDay]:
    """The seed's rows FIRST_YEAR..through: library years, else kept hand-confirmed years, else provisional."""
    by_year: dict[int, list[CalendarDay]] = {}
    for day in existing:
        by_year.setdefault(day.date.year, []).append(day)
    rows = []
    for year in range(FIRST_YEAR, through + 1):
        kept = by_year.get(year, [])
        if library_knows(year):
            rows += library_year(year)
        elif kept and all(d.confirmed for d in kept):
            rows += kept
        else:
            rows += provisional_year(year)
    return rows


def export(path: Path = SEED_PATH, through: int | None = None) -> Path:
    """Write the seed; ``through`` defaults to its current last year (at least the library's + 1)."""
    existing = read_seed(path) if path.exists() else []
    last_known = max(y for y in range(FIRST_YEAR, dt.date.today().year + 2) if library_knows(y))
    through = through or max([last_known + 1] + [d.date.year for d in existing])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(day.row() for day in build(through, existing))
    calendar.cache_clear()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m creditplus.workdays", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help="write the work-calendar seed from chinesecalendar (+ provisional years)")
    p.add_argument("--through", type=int, default=None, help="last year to write (default: the seed's last year)")
    p.add_argument("--out", type=Path, default=SEED_PATH)
    args = parser.parse_args(argv)
    print(f"wrote {export(args.out, args.through)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
