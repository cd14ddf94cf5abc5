"""What a result.json must hold for the views to read it: the types and ranges of the fields they read.

Run folders are handed around, so a result.json may be hand-edited, damaged
or hostile. ``check_document`` finds the first field of the wrong type
(a null section, a string where a number belongs, a row without its name,
an infinite number, an unknown unit) and returns its path and what it must
be; ``RunResult.load`` turns that into one line. The checks are built from
the typed sections of ``lmprof.record.sections`` (every section, the same
definitions the writers use). Keys a section does not name pass, as long as
they are plain JSON; the tests check strictly (``check_document(doc,
strict=True)``), where such a key is a complaint too.

    >>> check_document({"config": None})
    'config must be an object, got null'
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import PurePosixPath
from typing import Any, Callable

from lmprof.record import sections

Check = Callable[[Any, str], "str | None"]  # value, where -> a complaint, or None when the value is fine


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
        return f"a number of {len(str(abs(value))):,} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def finite_number(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{where} must be a number, got {_show(value)}"
    if not math.isfinite(value):
        return f"{where} must be a finite number, got {_show(value)}"
    return None


MAX_COUNT = 10**15  # calls, batches, tokens, bytes: past any real run, and what a table cell can show
MAX_SECONDS = 1e9  # about 31 years: a time past it is damage, and would print as a 300-digit cell


def count(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"{where} must be a whole number 0 or more, got {_show(value)}"
    if value > MAX_COUNT:
        return f"{where} must be at most 10**15, got a number of {len(str(value)):,} digits"
    return None


def seconds(value: Any, where: str) -> str | None:
    """A measured time: a finite number of seconds, 0 or more, below MAX_SECONDS."""
    bad = finite_number(value, where)
    if bad:
        return bad
    if not 0 <= value <= MAX_SECONDS:
        return f"{where} must be a time in seconds from 0 to 1e9, got {_show(value)}"
    return None


SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed takes


def seed(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        return f"{where} must be a whole number from -2**63 to 2**64 - 1, got {_show(value)}"
    return None


def flag(value: Any, where: str) -> str | None:
    return None if isinstance(value, bool) else f"{where} must be true or false, got {_show(value)}"


def text(value: Any, where: str) -> str | None:
    return None if isinstance(value, str) else f"{where} must be a string, got {_show(value)}"


def anything(value: Any, where: str) -> str | None:
    return None


def optional(check: Check) -> Check:
    """The check, or null (a NaN or infinite value is stored as null)."""
    return lambda value, where: None if value is None else check(value, where)


def one_of(*choices: str) -> Check:
    def check(value: Any, where: str) -> str | None:
        return None if value in choices else f"{where} must be one of {', '.join(choices)}, got {_show(value)}"
    return check


def file_name(value: Any, where: str) -> str | None:
    """A path inside the run folder: relative, and never climbing out of it."""
    if not isinstance(value, str) or not value:
        return f"{where} must be a file name, got {_show(value)}"
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        return f"{where} must name a file inside the run folder, got {_show(value)}"
    return None


def items(check: Check) -> Check:
    def check_list(value: Any, where: str) -> str | None:
        if not isinstance(value, list):
            return f"{where} must be a list, got {_show(value)}"
        return next((bad for i, item in enumerate(value) if (bad := check(item, f"{where}[{i}]"))), None)
    return check_list


def values(check: Check) -> Check:
    def check_values(value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return f"{where} must be an object, got {_show(value)}"
        return next((bad for key, item in value.items() if (bad := check(item, f"{where}.{key}"))), None)
    return check_values


def record(fields: dict[str, Check] | None = None, required: tuple[str, ...] = (), *, strict: bool = False) -> Check:
    """An object whose known fields pass their checks; unknown fields pass as they are (strict: are refused)."""
    known = fields or {}

    def check(value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return f"{where or 'the file'} must be an object, got {_show(value)}"
        for name in required:
            if name not in value:
                return f"{where or 'the file'} lacks its {name!r} field"
        for name, field_check in known.items():
            if name in value and (bad := field_check(value[name], f"{where}.{name}")):
                return bad
        unknown = [name for name in value if name not in known] if strict else []
        if unknown:
            return f"{where or 'the file'} has {unknown[0]!r}, a field lmprof.record.sections does not define"
        return None
    return check


NUM, OPT_NUM, INT, OPT_INT, STR, OPT_STR = finite_number, optional(finite_number), count, optional(count), text, optional(text)
OPT_SEC = optional(seconds)

# --- the checks built from the typed sections (lmprof.record.sections) ---------------------------------------
KINDS: dict[Any, Check] = {"count": count, "number": finite_number, "seconds": seconds, "seed": seed,
                           "file name": file_name, int: count, float: finite_number, str: text, bool: flag, Any: anything}


def check_for(hint: Any, strict: bool = False) -> Check:
    """The check of one field's type: a kind of value, a list, an object of values, a section, or null."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Required, typing.NotRequired):
        return check_for(args[0], strict)
    if origin is typing.Annotated:
        marker = hint.__metadata__[0]
        return one_of(*marker[1]) if isinstance(marker, tuple) else KINDS[marker]
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        inner = check_for(present[0], strict) if len(present) == 1 else anything
        return optional(inner) if type(None) in args else inner
    if origin is list:
        return items(check_for(args[0], strict))
    if origin is dict:
        return anything if args[1] is Any else values(check_for(args[1], strict))
    if typing.is_typeddict(hint):
        return section_check(hint, strict)
    return KINDS[hint]


def section_check(section: Any, strict: bool = False) -> Check:
    """A TypedDict's check: its required fields present, every field it names of its type; others pass
    (``strict``: others are refused, except in the sections lmprof.record.sections.OPEN leaves open)."""
    hints = typing.get_type_hints(section, include_extras=True)
    return record({name: check_for(hint, strict) for name, hint in hints.items()},
                  required=tuple(sorted(section.__required_keys__)), strict=strict and section not in sections.OPEN)


DOCUMENT = section_check(sections.ResultDocument)
STRICT_DOCUMENT = section_check(sections.ResultDocument, strict=True)  # the tests: every key written is defined


def check_document(doc: Any, *, strict: bool = False) -> str | None:
    """The first field of a parsed result.json that the views could not read, said in words; None if all is well.

    ``strict`` (the tests' check of every result.json lmprof writes): a key no section defines is a complaint too.
    """
    complaint = (STRICT_DOCUMENT if strict else DOCUMENT)(doc, "")
    return complaint.lstrip(".") if complaint else None


# --- caps: how much of a file the views read ----------------------------------------------
SAMPLES_READ = 10_000  # per phase (and per-batch memory series): a bootstrap over more says nothing new,
                       # and 1,000,000 took 24 GB
ROWS_READ = 1_000  # line rows per function (the reference functions have tens), operators, component rows
LISTS_READ = {"phases": 100, "functions": 20, "epochs": 10_000}  # lists with their own, looser or tighter, cap
STRING_READ = 4_096  # characters of any one string (a 10 MB config value printed 12 MB)


def bound_document(doc: dict[str, Any]) -> list[str]:
    """Cut a checked result.json down to what the views read, in place; one note per kind of cut.

    Phase samples are thinned to one in k calls, the same calls in every phase (a comparison sums
    the step phases call by call); long lists keep their first rows; long strings their start.
    """
    notes: list[str] = []
    memory = doc.get("memory") or {}
    series = [memory] * 3 if isinstance(memory, dict) else []
    thinned = [_thin(row) for row in doc.get("phases") or []]
    thinned += [_thin(holder, key) for holder, key in zip(series, sections.MEMORY_SERIES)]
    if any(thinned):
        notes.append(f"per-batch samples thinned to at most {SAMPLES_READ:,} per phase "
                     f"(one in {max(thinned):,} calls kept)")
    cut_lists = _cut_lists(doc)
    if cut_lists:
        notes.append(f"only the first rows read of {', '.join(cut_lists)}")
    cut_strings = [0]
    _cut_strings(doc, cut_strings)
    if cut_strings[0]:
        notes.append(f"{cut_strings[0]:,} string(s) longer than {STRING_READ:,} characters cut")
    return notes




def _thin(row: Any, key: str = "samples") -> int:
    samples = row.get(key) if isinstance(row, dict) else None
    if not isinstance(samples, list) or len(samples) <= SAMPLES_READ:
        return 0
    every = -(-len(samples) // SAMPLES_READ)
    row[key] = samples[::every]
    if key == "samples":
        row["samples_every"] = int(row.get("samples_every") or 1) * every
    return every


def _cut_lists(doc: dict[str, Any]) -> list[str]:
    lists: list[tuple[str, Any, str]] = [("phases", doc, "phases"), ("operators", doc.get("ops"), "rows"),
                                         ("functions", doc.get("lines"), "functions"),
                                         ("epochs", doc.get("metrics"), "epochs"),
                                         ("components", doc.get("components"), "rows")]
    functions = (doc.get("lines") or {}).get("functions") or []
    lists += [(f"lines of {f.get('name', '?')}", f, "lines") for f in functions[:LISTS_READ["functions"]]
              if isinstance(f, dict)]
    cut = []
    for name, holder, key in lists:
        limit = LISTS_READ.get(name, ROWS_READ)
        if isinstance(holder, dict) and isinstance(holder.get(key), list) and len(holder[key]) > limit:
            holder[key] = holder[key][:limit]
            cut.append(f"{name} ({limit:,})")
    return cut


def _cut_strings(value: Any, counter: list[int]) -> Any:
    """Long strings cut in place (dict values and list items); returns the value, cut when a string."""
    if isinstance(value, str):
        if len(value) > STRING_READ:
            counter[0] += 1
            return value[:STRING_READ] + "…"
        return value
    if isinstance(value, dict):
        for key in list(value):
            new_key = _cut_strings(key, counter)
            item = _cut_strings(value.pop(key), counter)
            value[new_key] = item
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, (str, dict, list)):
                value[i] = _cut_strings(item, counter)
    return value



# --- a sweep folder's files (sweep.json, results.jsonl) -------------------------------------------
SWEEP_PLAN = record({
    "name": STR, "epochs": INT, "models": items(STR),
    "runs": items(record({"key": STR, "label": STR, "model": STR, "folder": OPT_STR},
                         required=("key", "label", "model"))),
    "groups": items(record({"factor": STR, "rows": items(record({"value": STR, "keys": values(STR)},
                                                                required=("value", "keys")))},
                           required=("factor", "rows"))),
}, required=("models", "runs", "groups"))
SWEEP_ROW = record({
    "kind": STR, "key": STR, "run": STR, "epoch": INT, "train_seconds": OPT_SEC, "val_ppl": OPT_NUM,
    "val_loss": OPT_NUM, "clipped_fraction": OPT_NUM, "preclip_norm_max": OPT_NUM, "preclip_norm_median": OPT_NUM,
    "jobs": OPT_INT, "threads": OPT_INT, "status": STR, "message": OPT_STR, "test_ppl": OPT_NUM,
    "test_loss": OPT_NUM, "nparams": OPT_INT, "host": OPT_STR, "memory": record(), "gpu": OPT_STR, "cpu": OPT_STR,
    "device": OPT_STR, "vocab_size": OPT_INT, "started": OPT_STR, "finished": OPT_STR, "executor": OPT_STR,
}, required=("kind", "key"))


def check_sweep_plan(doc: Any) -> str | None:
    """What in a parsed sweep.json the sweep views could not read, in words; None if all is well."""
    complaint = SWEEP_PLAN(doc, "")
    if complaint:
        return complaint.lstrip(".")
    for g, group in enumerate(doc["groups"]):
        for r, row in enumerate(group["rows"]):
            missing = [m for m in doc["models"] if m not in row["keys"]]
            if missing:
                return f"groups[{g}].rows[{r}].keys lacks the run of {missing[0]!r}"
    return None


def check_sweep_row(row: Any) -> str | None:
    """Why one row of results.jsonl cannot be read by the sweep views; None if it can."""
    complaint = SWEEP_ROW(row, "")
    return complaint.lstrip(".") if complaint else None
