"""The work calendar: seed vs chinesecalendar, deadlines against the 2026 schedule, provisional 2027."""
from __future__ import annotations

import csv
import datetime as dt
import warnings

import pytest

from creditplus import workdays
from creditplus.workdays import CalendarRangeError, CalendarWarning

D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def seed() -> list[workdays.CalendarDay]:
    return workdays.read_seed()


def test_seed_matches_chinesecalendar_for_every_day_it_knows(seed):
    known = sorted({d.date.year for d in seed if workdays.library_knows(d.date.year)})
    assert known == list(range(workdays.FIRST_YEAR, 2027))
    for year in known:
        assert [d for d in seed if d.date.year == year] == workdays.library_year(year), year
    assert sum(d.is_workday for d in seed if d.date.year == 2026) == 248  # the State Council's 2026 total


def test_seed_is_contiguous_and_reexport_changes_nothing(seed):
    dates = [d.date for d in seed]
    assert dates[0] == D("2020-01-01") and dates[-1] >= D("2027-12-31")
    assert all(b - a == dt.timedelta(days=1) for a, b in zip(dates, dates[1:]))
    assert workdays.build(dates[-1].year, seed) == seed


@pytest.mark.parametrize("submitted, due", [
    ("2026-09-18", "2026-09-29"),  # spec: Fri; 20 Sep make-up day counts, 25–27 Sep Mid-Autumn do not
    ("2026-09-30", "2026-10-15"),  # last day before 国庆 1–7 Oct; Sat 10 Oct is a make-up day
    ("2026-04-24", "2026-05-08"),  # Fri before 劳动节 1–5 May
    ("2026-06-18", "2026-06-30"),  # day before 端午 19–21 Jun
    ("2026-02-13", "2026-03-02"),  # Fri before 春节 15–23 Feb; make-up Sat 14 and 28 Feb count
    ("2026-02-28", "2026-03-10"),  # submitted on a make-up Saturday
    ("2026-10-10", "2026-10-20"),  # submitted on a make-up Saturday
    ("2026-10-03", "2026-10-15"),  # submitted on a holiday
    ("2026-05-01", "2026-05-13"),  # submitted on a holiday; make-up Sat 9 May counts
    ("2025-12-31", "2026-01-12"),  # across the year; 元旦 1–3 Jan, make-up Sun 4 Jan
])
def test_seven_working_days_against_the_2026_schedule(submitted, due):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalendarWarning)  # confirmed years never warn
        assert workdays.add_workdays(D(submitted), 7) == (D(due), True)


def test_day_kinds_and_counting():
    assert workdays.is_workday(D("2026-09-20"))       # make-up Sunday
    assert not workdays.is_workday(D("2026-10-07"))   # 国庆
    assert not workdays.is_workday(D("2026-09-19"))   # ordinary Saturday
    assert workdays.workdays_between(D("2026-09-18"), D("2026-09-30")) == (8, True)
    assert workdays.workdays_between(D("2026-09-30"), D("2026-09-18")) == (0, True)
    assert workdays.add_workdays(D("2026-09-19"), 0) == (D("2026-09-19"), True)
    with pytest.raises(ValueError):
        workdays.add_workdays(D("2026-09-19"), -1)


def test_2027_is_provisional_marked_unconfirmed_and_warns():
    with pytest.warns(CalendarWarning, match="2027"):
        assert workdays.add_workdays(D("2026-12-28"), 7) == (D("2027-01-07"), False)  # 1 Jan 元旦
    with pytest.warns(CalendarWarning):
        assert workdays.workdays_between(D("2026-12-31"), D("2027-01-08")) == (5, False)
    assert workdays.workdays_between(D("2027-01-08"), D("2026-12-31")) == (0, True)  # empty span
    with pytest.warns(CalendarWarning):
        assert not workdays.is_workday(D("2027-10-01"))   # 国庆, fixed by law
    assert workdays.calendar().days[D("2027-05-02")].day_kind == "holiday"  # 劳动节 day 2 (2024 revision)
    with pytest.warns(CalendarWarning):
        assert workdays.is_workday(D("2027-02-08"))       # 春节 not known yet: a weekday, unconfirmed


def test_outside_the_calendar_is_a_clear_error():
    with pytest.raises(CalendarRangeError, match="export --through 2028"):
        workdays.add_workdays(D("2027-12-28"), 7)
    with pytest.raises(CalendarRangeError, match="FIRST_YEAR = 2019"):
        workdays.is_workday(D("2019-12-31"))


def test_export_keeps_a_hand_confirmed_year_and_adds_provisional_ones(tmp_path, seed):
    path = tmp_path / "work_calendar.csv"
    hand = [workdays.CalendarDay(d.date, d.is_workday, d.day_kind, d.holiday_name, True, "国办发明电〔2026〕X号")
            if d.date.year == 2027 else d for d in seed]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, workdays.COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(d.row() for d in hand)

    assert workdays.main(["export", "--out", str(path), "--through", "2028"]) == 0
    written = workdays.read_seed(path)
    assert [d for d in written if d.date.year <= 2027] == hand
    assert [d for d in written if d.date.year == 2028] == workdays.provisional_year(2028)
    with pytest.warns(CalendarWarning, match="2028"):
        assert workdays.calendar(path).add_workdays(D("2027-12-28"), 7) == (D("2028-01-06"), False)
