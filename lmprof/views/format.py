"""Every number a view writes: durations, plain numbers, shares, bytes, bars, and what a missing value reads as.

One module, so the terminal tables, the report, the notebook and the walkthroughs
write the same value the same way (3.21 s, 45.60 ms, 310.0 µs; 12.5%; 1.5 MiB).

    >>> duration(0.0456), percent(0.125), size(3 * 2**20), number(None)
    ('45.60 ms', '12.5%', '3.0 MiB', 'not finite')
"""

from __future__ import annotations

MISSING = "—"  # a value that was not measured
NOT_FINITE = "not finite"  # result.json stores NaN and infinities as null
UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}
UNIT_LABEL = {"s": "s", "ms": "ms", "us": "µs"}
BAR_WIDTH = 10


def pick_unit(seconds: float, unit: str | None = "auto") -> str:
    """s, ms or us: the given one, or (auto) the largest in which ``seconds`` is at least 1."""
    if unit and unit != "auto":
        return unit
    return "s" if seconds >= 1 else "ms" if seconds >= 1e-3 else "us"


def in_unit(seconds: float, unit: str) -> str:
    """A number in ``unit`` with three or four significant figures: 1234, 123.4, 12.34, 1.23."""
    value = seconds * UNIT_SCALE[unit]
    return f"{value:.0f}" if value >= 1000 else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def duration(seconds: float | None) -> str:
    """A duration in the unit that reads best: 3.21 s, 45.60 ms, 310.0 µs; "—" when not measured."""
    if seconds is None:
        return MISSING
    unit = pick_unit(seconds)
    return f"{in_unit(seconds, unit)} {UNIT_LABEL[unit]}"


def number(value: float | None, digits: int = 2) -> str:
    """Perplexities and losses with ``digits`` decimals, thousands separated; a stored null is not finite."""
    if value is None:
        return NOT_FINITE
    if abs(value) >= 1e15:  # a diverged perplexity (or a hand-edited file): not a 300-digit cell
        return f"{value:.{digits}e}"
    return f"{value:,.{digits}f}"


def significant(value: float, digits: int = 4) -> str:
    """A float to ``digits`` significant digits, thousands separated when large."""
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def percent(share: float | None) -> str:
    """A share of a whole: 12.5%; "—" when not measured."""
    return MISSING if share is None else f"{share:.1%}"


def size(count: float | None) -> str:
    """A byte count in the binary unit that reads best: 512 B, 3.0 KiB, 1.5 MiB, 2.00 GiB; "—" when not measured."""
    if count is None:
        return MISSING
    scaled, sign = float(abs(count)), "-" if count < 0 else ""
    for unit in ("B", "KiB", "MiB"):
        if scaled < 1024:
            return f"{sign}{scaled:.0f} {unit}" if unit == "B" else f"{sign}{scaled:.1f} {unit}"
        scaled /= 1024
    return f"{sign}{scaled:.2f} GiB"


def ratio(value: float | None) -> str:
    """How many times a reference: 1.32×; "—" when one side is missing."""
    return MISSING if value is None else f"{value:.2f}×"


def bar_width(share: float | None) -> float:
    """A CSS width in percent of the bar's track: the share of the whole, clamped to 0..100."""
    return round(100 * min(max(share or 0.0, 0.0), 1.0), 2)


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A bar in eighths of a character: 0.5 -> five full blocks of ten."""
    eighths = round(max(0.0, min(share, 1.0)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")



# --- strings that came from a file -------------------------------------------------------
def from_file(text: object) -> str:
    """A string read from a file, ready for a rich markup string: control characters visible, markup escaped."""
    from rich.markup import escape

    from lmprof.safe_files import visible

    return escape(visible(str(text)))
