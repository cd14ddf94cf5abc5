"""views/format.py: one way to write each kind of number, and one way to say it is missing."""

from __future__ import annotations

import pytest

from lmprof.views.format import (MISSING, bar, bar_width, duration, in_unit, number, percent, pick_unit, ratio,
                                 significant, size)


@pytest.mark.parametrize(("seconds", "text"), [
    (12.5, "12.50 s"), (0.0456, "45.60 ms"), (0.00031, "310.0 µs"), (1234.0, "1234 s"), (None, MISSING)])
def test_duration_picks_the_unit_that_reads_best(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_units_can_be_fixed() -> None:
    assert pick_unit(0.5, "s") == "s" and in_unit(0.5, "ms") == "500.0" and pick_unit(0.5) == "ms"


@pytest.mark.parametrize(("count", "text"), [
    (512, "512 B"), (1024, "1.0 KiB"), (3 * 2**20, "3.0 MiB"), (5 * 2**30, "5.00 GiB"), (-2048, "-2.0 KiB"),
    (None, MISSING)])
def test_size_in_binary_units(count: int | None, text: str) -> None:
    assert size(count) == text


def test_missing_and_not_finite_read_differently() -> None:
    assert percent(None) == ratio(None) == MISSING
    assert number(None) == "not finite"  # result.json stores NaN and inf as null
    assert number(1234.5678) == "1,234.57" and percent(0.125) == "12.5%" and ratio(1.5) == "1.50×"
    assert significant(float("nan")) == "nan" and significant(123456.0) == "123,456" and significant(0.1234567) == "0.1235"


def test_bars() -> None:
    assert bar(0.5) == "█████" and bar(0.0) == "" and bar(2.0) == "█" * 10 and bar(0.05) == "▌"  # four eighths of one cell
    assert bar_width(0.5) == 50.0 and bar_width(None) == 0.0 and bar_width(3) == 100.0
