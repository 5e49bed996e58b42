"""Cron expressions: every syntax form, the errors, the day rules, leap years, time zones and DST."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from envoi.workflows.cron import Cron, CronError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def next_after(expression: str, moment: datetime, zone: str = "UTC") -> datetime:
    return Cron.parse(expression, zone).next_after(moment)


# -- the API -----------------------------------------------------------------------------------------------------------


def test_parse_keeps_the_expression_and_defaults_to_utc() -> None:
    cron = Cron.parse("0 9 * * *")
    assert (cron.expression, cron.timezone) == ("0 9 * * *", "UTC")
    assert cron == Cron("0 9 * * *", "UTC")
    assert hash(cron) == hash(Cron("0 9 * * *"))
    assert repr(cron) == "Cron(expression='0 9 * * *', timezone='UTC')"
    assert cron.next_after(utc(2024, 5, 1, 8)) == utc(2024, 5, 1, 9)


def test_the_constructor_validates_too() -> None:
    with pytest.raises(CronError):
        Cron("61 * * * *")


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


def test_the_result_is_utc_whatever_the_moment_offset() -> None:
    moment = datetime(2024, 5, 1, 15, 0, tzinfo=timezone(timedelta(hours=5)))  # 10:00 UTC
    result = next_after("30 10 * * *", moment)
    assert result == utc(2024, 5, 1, 10, 30)
    assert result.tzinfo is UTC


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Cron.parse("* * * * *").next_after(datetime(2024, 5, 1))


# -- strictly after, and seconds ---------------------------------------------------------------------------------------


def test_a_moment_exactly_on_a_match_gives_the_next_one() -> None:
    assert next_after("0 10 * * *", utc(2024, 5, 1, 10)) == utc(2024, 5, 2, 10)
    assert next_after("* * * * *", utc(2024, 5, 1, 10)) == utc(2024, 5, 1, 10, 1)


def test_seconds_in_the_moment_are_ignored_for_matching() -> None:
    assert next_after("0 10 * * *", utc(2024, 5, 1, 9, 59, 59, 999999)) == utc(2024, 5, 1, 10)
    assert next_after("0 10 * * *", utc(2024, 5, 1, 10, 0, 0, 1)) == utc(2024, 5, 2, 10)
    assert next_after("* * * * *", utc(2024, 5, 1, 10, 0, 30)) == utc(2024, 5, 1, 10, 1)


# -- syntax forms ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        ("* * * * *", utc(2024, 5, 1, 23, 59), utc(2024, 5, 2, 0, 0)),
        ("5,35 * * * *", utc(2024, 5, 1, 10, 6), utc(2024, 5, 1, 10, 35)),
        ("5,35 * * * *", utc(2024, 5, 1, 10, 35), utc(2024, 5, 1, 11, 5)),
        ("0 9-11 * * *", utc(2024, 5, 1, 9), utc(2024, 5, 1, 10)),
        ("0 9-11 * * *", utc(2024, 5, 1, 11), utc(2024, 5, 2, 9)),
        ("*/20 * * * *", utc(2024, 5, 1, 10, 20), utc(2024, 5, 1, 10, 40)),
        ("*/20 * * * *", utc(2024, 5, 1, 10, 41), utc(2024, 5, 1, 11, 0)),
        ("10-30/10 * * * *", utc(2024, 5, 1, 10, 10), utc(2024, 5, 1, 10, 20)),
        ("10-30/10 * * * *", utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 11, 10)),
        ("50/5 * * * *", utc(2024, 5, 1, 10, 50), utc(2024, 5, 1, 10, 55)),
        ("50/5 * * * *", utc(2024, 5, 1, 10, 55), utc(2024, 5, 1, 11, 50)),
        ("0 */6 * * *", utc(2024, 5, 1, 18), utc(2024, 5, 2, 0)),
        ("0 0 1,15 * *", utc(2024, 5, 1), utc(2024, 5, 15)),
        ("1-5,40-45/5 * * * *", utc(2024, 5, 1, 10, 5), utc(2024, 5, 1, 10, 40)),
        ("0 0 1 */3 *", utc(2024, 5, 1), utc(2024, 7, 1)),
        ("0 0 * * 1-5/2", utc(2024, 5, 1), utc(2024, 5, 3)),  # Wednesday to Friday
        ("*/90 * * * *", utc(2024, 5, 1, 10, 1), utc(2024, 5, 1, 11, 0)),  # a step past the end: only the start
        ("  0  12  *  *  *  ", utc(2024, 5, 1), utc(2024, 5, 1, 12)),
    ],
)
def test_syntax_forms(expression: str, moment: datetime, expected: datetime) -> None:
    assert next_after(expression, moment) == expected


def test_month_names_in_any_case_and_in_ranges() -> None:
    assert next_after("0 0 1 jan,Jul *", utc(2024, 2, 1)) == utc(2024, 7, 1)
    assert next_after("0 0 1 jan,Jul *", utc(2024, 7, 1)) == utc(2025, 1, 1)
    assert next_after("0 0 1 MAR-may *", utc(2024, 5, 1)) == utc(2025, 3, 1)


def test_day_names_in_any_case_and_in_ranges() -> None:
    # 2024-05-03 is a Friday
    assert next_after("0 8 * * mon-FRI", utc(2024, 5, 3, 8)) == utc(2024, 5, 6, 8)
    assert next_after("0 8 * * Sat,sun", utc(2024, 5, 3, 8)) == utc(2024, 5, 4, 8)


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun"])
def test_sunday_is_0_7_or_sun(sunday: str) -> None:
    # 2024-05-01 is a Wednesday
    assert next_after(f"0 0 * * {sunday}", utc(2024, 5, 1)) == utc(2024, 5, 5)


def test_a_weekday_range_may_end_on_7() -> None:
    # Friday to Sunday; 2024-05-04 is a Saturday
    assert next_after("0 0 * * 5-7", utc(2024, 5, 4)) == utc(2024, 5, 5)
    assert next_after("0 0 * * 5-7", utc(2024, 5, 5)) == utc(2024, 5, 10)


# -- day-of-month and day-of-week --------------------------------------------------------------------------------------


def test_two_restricted_day_fields_match_when_either_does() -> None:
    # the 13th or any Friday; October 2024's 13th is a Sunday, its Fridays the 11th and 18th
    assert next_after("0 0 13 * 5", utc(2024, 10, 11)) == utc(2024, 10, 13)
    assert next_after("0 0 13 * FRI", utc(2024, 10, 13)) == utc(2024, 10, 18)


def test_an_unrestricted_weekday_leaves_the_day_of_month_alone() -> None:
    assert next_after("0 0 13 * *", utc(2024, 10, 11)) == utc(2024, 10, 13)
    assert next_after("0 0 13 * *", utc(2024, 10, 13)) == utc(2024, 11, 13)


def test_an_unrestricted_day_of_month_leaves_the_weekday_alone() -> None:
    assert next_after("0 0 * * 5", utc(2024, 10, 11)) == utc(2024, 10, 18)


def test_a_day_field_starting_with_a_star_counts_as_unrestricted() -> None:
    # Vixie cron's rule: "*/10" with Monday means both, the 1st, 11th, 21st or 31st that is a Monday
    assert next_after("0 0 */10 * 1", utc(2024, 1, 1)) == utc(2024, 3, 11)


# -- macros ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", utc(2024, 5, 1, 11)),
        ("@daily", utc(2024, 5, 2)),
        ("@midnight", utc(2024, 5, 2)),
        ("@weekly", utc(2024, 5, 5)),
        ("@monthly", utc(2024, 6, 1)),
        ("@yearly", utc(2025, 1, 1)),
        ("@annually", utc(2025, 1, 1)),
        ("@DAILY", utc(2024, 5, 2)),
    ],
)
def test_macros(macro: str, expected: datetime) -> None:
    assert next_after(macro, utc(2024, 5, 1, 10, 30)) == expected


# -- month ends and leap years -----------------------------------------------------------------------------------------


def test_the_29th_of_february_waits_for_a_leap_year() -> None:
    assert next_after("0 0 29 2 *", utc(2027, 1, 1)) == utc(2028, 2, 29)
    assert next_after("0 0 29 2 *", utc(2028, 2, 29)) == utc(2032, 2, 29)
    assert next_after("0 0 29 2 *", utc(2097, 3, 1)) == utc(2104, 2, 29)  # 2100 is no leap year


def test_the_31st_skips_shorter_months() -> None:
    assert next_after("0 0 31 * *", utc(2024, 4, 1)) == utc(2024, 5, 31)
    assert next_after("59 23 30 * *", utc(2024, 2, 1)) == utc(2024, 3, 30, 23, 59)


def test_the_year_rolls_over() -> None:
    assert next_after("0 0 * * *", utc(2024, 12, 31, 23, 59)) == utc(2025, 1, 1)
    assert next_after("0 0 1 1 *", utc(2024, 1, 1)) == utc(2025, 1, 1)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 31 2 *", "never matches: day-of-month '31' never falls in month '2'"),
        ("0 0 30,31 FEB *", "never matches: day-of-month '30,31' never falls in month 'FEB'"),
        ("0 0 31 4,6,9,11 *", "never matches: day-of-month '31' never falls in month '4,6,9,11'"),
        ("0 0 31 2 */2", "never matches: day-of-month '31' never falls in month '2'"),
    ],
)
def test_an_expression_that_never_matches_is_refused(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=f"^{re.escape(message)}$"):
        Cron.parse(expression)


def test_an_impossible_day_of_month_is_fine_with_a_weekday() -> None:
    # the 31st of February or a Monday: the Mondays of February; 2024-02-01 is a Thursday
    assert next_after("0 0 31 2 MON", utc(2024, 1, 1)) == utc(2024, 2, 5)


# -- errors ------------------------------------------------------------------------------------------------------------

FIELDS = "expected 5 fields (minute hour day-of-month month day-of-week)"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", f"{FIELDS}, got 4 in '* * * *'"),
        ("* * * * * *", f"{FIELDS}, got 6 in '* * * * * *'"),
        ("", f"{FIELDS}, got 0 in ''"),
        ("60 * * * *", "minute field '60': 60 is out of range, values are 0 to 59"),
        ("1,61 * * * *", "minute field '1,61': 61 is out of range, values are 0 to 59"),
        ("* 24 * * *", "hour field '24': 24 is out of range, values are 0 to 23"),
        ("* * 0 * *", "day-of-month field '0': 0 is out of range, values are 1 to 31"),
        ("* * 32 * *", "day-of-month field '32': 32 is out of range, values are 1 to 31"),
        ("* * * 13 *", "month field '13': 13 is out of range, values are 1 to 12"),
        ("* * * * 8", "day-of-week field '8': 8 is out of range, values are 0 to 7"),
        ("5-1 * * * *", "minute field '5-1': the range 5-1 runs backwards"),
        ("* * * * SAT-SUN", "day-of-week field 'SAT-SUN': the range SAT-SUN runs backwards"),
        ("*/0 * * * *", "minute field '*/0': a step must be at least 1"),
        ("* 1-5/0 * * *", "hour field '1-5/0': a step must be at least 1"),
        ("x * * * *", "minute field 'x': 'x' is not a number"),
        ("*/x * * * *", "minute field '*/x': 'x' is not a number"),
        ("1-2-3 * * * *", "minute field '1-2-3': '2-3' is not a number"),
        ("\u00b2 * * * *", "minute field '\u00b2': '\u00b2' is not a number"),
        ("* * * FOO *", "month field 'FOO': 'FOO' is not a number or a name"),
        ("* * * * MOX", "day-of-week field 'MOX': 'MOX' is not a number or a name"),
        ("1,,2 * * * *", "minute field '1,,2': a value is missing"),
        ("-1 * * * *", "minute field '-1': a value is missing"),
        ("*/ * * * *", "minute field '*/': a value is missing"),
        (
            "@reboot",
            "unknown macro '@reboot': use one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually",
        ),
    ],
)
def test_errors_name_the_field_and_the_problem(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=f"^{re.escape(message)}$"):
        Cron.parse(expression)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "Europe", "utc"])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(CronError, match=f"^{re.escape(f'unknown time zone {zone!r}')}$"):
        Cron.parse("* * * * *", zone)


# -- time zones and daylight saving time -------------------------------------------------------------------------------


def test_fields_match_the_wall_clock_of_the_time_zone() -> None:
    assert next_after("0 9 * * *", utc(2024, 1, 10), "Europe/Paris") == utc(2024, 1, 10, 8)  # CET, UTC+1
    assert next_after("0 9 * * *", utc(2024, 7, 10), "Europe/Paris") == utc(2024, 7, 10, 7)  # CEST, UTC+2
    assert next_after("0 9 * * *", utc(2024, 7, 10, 7), "Europe/Paris") == utc(2024, 7, 11, 7)


def test_the_local_day_decides_the_weekday() -> None:
    # Monday 2024-05-06 00:30 in Tokyo is Sunday 15:30 UTC
    assert next_after("30 0 * * MON", utc(2024, 5, 1), "Asia/Tokyo") == utc(2024, 5, 5, 15, 30)


def test_a_skipped_time_runs_once_when_the_clock_jumps_past_it() -> None:
    # Paris, 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 runs at 03:00 CEST that day
    daily = Cron.parse("30 2 * * *", "Europe/Paris")
    assert daily.next_after(utc(2024, 3, 30, 12)) == utc(2024, 3, 31, 1)
    assert daily.next_after(utc(2024, 3, 31, 1)) == utc(2024, 4, 1, 0, 30)


def test_every_minute_of_a_skipped_hour_collapses_into_one_run() -> None:
    every_minute = Cron.parse("* * * * *", "Europe/Paris")
    assert every_minute.next_after(utc(2024, 3, 31, 0, 59)) == utc(2024, 3, 31, 1, 0)
    assert every_minute.next_after(utc(2024, 3, 31, 1, 0)) == utc(2024, 3, 31, 1, 1)


def test_a_skipped_time_in_new_york() -> None:
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT, 07:00 UTC
    assert next_after("30 2 * * *", utc(2024, 3, 9, 12), "America/New_York") == utc(2024, 3, 10, 7)


def test_a_half_hour_jump() -> None:
    # Lord Howe Island, 2024-10-06: 02:00 (UTC+10:30) jumps to 02:30 (UTC+11), 15:30 UTC the day before
    assert next_after("15 2 * * *", utc(2024, 10, 5), "Australia/Lord_Howe") == utc(2024, 10, 5, 15, 30)


def test_a_repeated_time_runs_once_at_its_first_occurrence() -> None:
    # Paris, 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:30 comes at 00:30 UTC, then again at 01:30 UTC
    daily = Cron.parse("30 2 * * *", "Europe/Paris")
    assert daily.next_after(utc(2024, 10, 26, 12)) == utc(2024, 10, 27, 0, 30)
    assert daily.next_after(utc(2024, 10, 27, 0, 30)) == utc(2024, 10, 28, 1, 30)


def test_an_hourly_job_skips_the_repeated_hour() -> None:
    hourly = Cron.parse("0 * * * *", "Europe/Paris")
    assert hourly.next_after(utc(2024, 10, 27, 0)) == utc(2024, 10, 27, 2)  # 02:00 CEST, then 03:00 CET


def test_a_moment_inside_the_repeated_hour_waits_for_its_end() -> None:
    # 01:15 UTC is 02:15 CET, the second pass: the minutes left in it already ran during the first
    assert next_after("* * * * *", utc(2024, 10, 27, 1, 15), "Europe/Paris") == utc(2024, 10, 27, 2)
    assert next_after("30 2 * * *", utc(2024, 10, 27, 1, 15), "Europe/Paris") == utc(2024, 10, 28, 1, 30)
