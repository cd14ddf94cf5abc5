"""What a result.json must hold for the views to read it: the types and ranges of the fields they read.

Run folders are handed around, so a result.json may be hand-edited, damaged
or hostile. ``check_document`` finds the first field of the wrong type
(a null section, a string where a number belongs, a row without its name,
an infinite number, an unknown unit) and returns its path and what it must
be; ``RunResult.load`` turns that into one line. Keys it does not know pass,
so sections other modules add (components, memory, gradients, samples) load
as long as they are plain JSON of the shape named here.

    >>> check_document({"config": None})
    'config must be an object, got null'
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Any, Callable

Check = Callable[[Any, str], "str | None"]  # value, where -> a complaint, or None when the value is fine

LINE_UNITS = ("auto", "s", "ms", "us")  # lmprof.instrument.lines.UNITS (instrument/ sits above result)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{where} must be a number, got {_show(value)}"
    if not math.isfinite(value):
        return f"{where} must be a finite number, got {_show(value)}"
    return None


def count(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"{where} must be a whole number 0 or more, got {_show(value)}"
    return None


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


def record(fields: dict[str, Check] | None = None, required: tuple[str, ...] = ()) -> Check:
    """An object whose known fields pass their checks; unknown fields pass as they are."""
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
        return None
    return check


NUM, OPT_NUM, INT, OPT_INT, STR, OPT_STR = number, optional(number), count, optional(count), text, optional(text)

EPOCH = record({"epoch": INT, "lr": OPT_NUM, "batches": OPT_INT, "tokens": OPT_INT, "train_seconds": OPT_NUM,
                "tokens_per_s": OPT_NUM, "val_loss": OPT_NUM, "val_ppl": OPT_NUM})
PHASE_ROW = record({"name": STR, "label": STR, "calls": INT, "seconds": NUM, "host_seconds": OPT_NUM,
                    "share": OPT_NUM, "samples": items(OPT_NUM)}, required=("name", "calls", "seconds"))
LINE_ROW = record({"line": INT, "hits": INT, "seconds": NUM, "share": OPT_NUM, "source": STR}, required=("line",))
FUNCTION = record({"name": STR, "qualname": STR, "file": STR, "first_line": INT, "calls": INT,
                   "total_seconds": NUM, "share_of_run": OPT_NUM, "lines": items(LINE_ROW)}, required=("name",))
OP_ROW = record({"name": STR, "input_shapes": STR, "calls": INT, "self_cpu_seconds": OPT_NUM,
                 "cpu_total_seconds": OPT_NUM, "self_cuda_seconds": OPT_NUM, "share": OPT_NUM,
                 "cuda_share": OPT_NUM}, required=("name", "calls"))

DOCUMENT = record({
    "schema_version": INT,
    "command": STR,
    "config": record({"model": STR, "emsize": INT, "nhid": INT, "nlayers": INT, "bptt": INT, "batch_size": INT,
                      "epochs": INT, "lr": NUM, "clip": NUM, "dropout": NUM, "data": OPT_STR}),
    "environment": record(),
    "metrics": record({"status": STR, "message": OPT_STR, "epochs": items(EPOCH), "test_loss": OPT_NUM,
                       "test_ppl": OPT_NUM, "wall_seconds": OPT_NUM, "pid": OPT_INT, "host": OPT_STR}),
    "phases": items(PHASE_ROW),
    "phase_summary": record({"clock": STR, "wall_seconds": OPT_NUM, "train_seconds": OPT_NUM,
                             "coverage": OPT_NUM}),
    "lines": record({"unit": one_of(*LINE_UNITS), "sync": STR, "functions": items(FUNCTION)}),
    "ops": record({"rows": items(OP_ROW), "steps": OPT_INT, "trace_dir": file_name,
                   "trace_files": items(file_name), "sort_by": STR}),
    "flops": record(), "components": record(), "memory": record(), "gradients": record(),
    "sweep": record({"run": STR, "key": OPT_STR, "vocab_size": OPT_INT, "started": OPT_STR, "finished": OPT_STR,
                     "host": OPT_STR, "pid": OPT_INT, "scheduler": OPT_STR, "job_id": OPT_STR, "attempt": OPT_INT,
                     "epochs": items(record({"epoch": INT}, required=("epoch",)))}),
    "files": values(file_name),
}, required=("config",))


def check_document(doc: Any) -> str | None:
    """The first field of a parsed result.json that the views could not read, said in words; None if all is well."""
    complaint = DOCUMENT(doc, "")
    return complaint.lstrip(".") if complaint else None
