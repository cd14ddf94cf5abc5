"""A command's options declared once, as data: the command line builds its flags from them, the API checks keywords against them.

``Option`` holds what a flag is (its name, type, default, choices, help,
spelling, whether it repeats); ``run_options()`` derives upstream's flags and
lmprof's own from RunConfig's ``setting()`` metadata. ``lmprof.commands.common``
turns a tuple of options into argparse flags; ``check()`` reads a Python
caller's keywords against the same tuple and raises the message the command
line prints for the same mistake (the message functions below are the one
source of each).

    >>> check("lmprof train", TRAIN_EXAMPLE, {"modle": "GRU"})   # doctest: +SKIP
    UsageError: unrecognized arguments: --modle GRU (did you mean --model?)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError, did_you_mean

UPSTREAM_GROUP = "upstream flags (word_language_model/main.py)"
LMPROF_GROUP = "lmprof flags"
COMPUTE = ("device", "threads")  # spelled the same on every command that computes, trained or not
HELP_FLAGS = ("-h", "--help")  # argparse's own, among the spellings a misspelt flag is matched against


@dataclass(frozen=True)
class Option:
    """One flag of a command: ``name`` is its keyword in Python and its dest in argparse."""

    name: str
    help: str
    type: Callable[[str], Any] | None = str  # None: an on/off flag
    default: Any = None
    flag: str | None = None  # the spelling when it is not --name-with-dashes (upstream's --batch_size)
    metavar: str | None = None
    choices: tuple[Any, ...] | None = None
    many: bool = False  # one or more values after the flag (nargs="+")
    repeatable: bool = False  # the flag may be given again (action="append")
    switch: bool = False  # an on/off flag with a --no- form (BooleanOptionalAction)
    group: str | None = None  # the --help section; None: the command's own
    exclusive: str | None = None  # options sharing this tag refuse each other

    @property
    def spelling(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def is_flag(self) -> bool:
        return self.type is None


def flag_option(name: str, help: str, **kw: Any) -> Option:
    """An on/off flag (False unless given)."""
    return Option(name, help, type=None, default=kw.pop("default", False), **kw)


_TYPES = {"str": str, "str | None": str, "int": int, "int | None": int, "float": float}


def setting_option(field: Any, default: Any = None, help: str | None = None) -> Option:
    """One RunConfig field as its option: spelling, help, metavar and choices from its ``setting()`` metadata."""
    meta = field.metadata
    flag = meta["flag"] or "--" + (field.name if meta["upstream"] else field.name.replace("_", "-"))
    group = UPSTREAM_GROUP if meta["upstream"] else LMPROF_GROUP
    text = help or meta["help"]
    if field.type == "bool":
        return Option(field.name, text, type=None, default=False, flag=flag, group=group)
    return Option(field.name, text, type=_TYPES[str(field.type)], default=field.default if default is None else default,
                  flag=flag, metavar=meta["metavar"], choices=meta["choices"], group=group)


ONNX_EXPORT = Option("onnx_export", "path to export the final model in onnx format (refused here unless torch.onnx "
                     "can run: it needs the onnxscript package)", default="", metavar="PATH", group=UPSTREAM_GROUP)
FORCE = flag_option("force", "let --out name a folder that already holds a run: lmprof's files there are removed "
                    "first", group=LMPROF_GROUP)


def compute_options(group: str | None = None) -> tuple[Option, ...]:
    """--device and --threads, as every command that computes spells them."""
    fields = [f for f in RunConfig.flag_fields() if f.name in COMPUTE]
    return tuple(replace(setting_option(f), group=group) for f in fields)


def run_options(*, epochs: int | None = None, help: Mapping[str, str] | None = None) -> tuple[Option, ...]:
    """Upstream's flags (names and defaults as in word_language_model/main.py), then lmprof's, from RunConfig.

    ``epochs``: this command's default; ``help``: a command's own wording of a flag (a sweep's --out).
    """
    texts = dict(help or {})
    fields = [f for f in RunConfig.flag_fields() if f.name not in COMPUTE]
    upstream = [setting_option(f, epochs if f.name == "epochs" else None, texts.get(f.name))
                for f in fields if f.metadata["upstream"]]
    own = [setting_option(f, None, texts.get(f.name)) for f in fields if not f.metadata["upstream"]]
    return (*upstream, ONNX_EXPORT, *own, FORCE, *compute_options(LMPROF_GROUP))


# --- the messages: one source each, for argparse (lmprof.cli.Parser) and for Python keywords -------------
def error_line(prog: str, message: str) -> str:
    """The one line a usage mistake ends with: ``lmprof train: error: ...``."""
    return f"{prog}: error: {message}"


def unrecognized(words: Sequence[str], spellings: Iterable[str]) -> str:
    """An unknown flag (and the words after it), with the closest known flag."""
    flag = next((w.split("=", 1)[0] for w in words if w.startswith("-")), words[0])
    hint = did_you_mean(flag, spellings) if flag.startswith("-") else ""
    return f"unrecognized arguments: {' '.join(words)}{hint}"


def invalid_choice(value: Any, choices: Iterable[Any]) -> str:
    names = [str(c) for c in choices]
    return f"invalid choice: {value!r} (choose from {', '.join(names)}){did_you_mean(str(value), names)}"


def invalid_value(kind: Callable[[str], Any], text: str) -> str:
    """A value its type cannot read (``--epochs abc``), worded as argparse words it."""
    return f"invalid {getattr(kind, '__name__', repr(kind))} value: {text!r}"


def argument_error(spelling: str, detail: str) -> str:
    """A bad value, framed as argparse frames it: ``argument --model: ...``."""
    return f"argument {spelling}: {detail}"


def not_allowed(spelling: str, other: str) -> str:
    return argument_error(spelling, f"not allowed with argument {other}")


# --- Python keywords, checked as the command line checks its flags ------------------------------------------
def check(options: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option's value: its default, or the keyword given, read as its flag would be (None: not given).

    Raises UsageError with the command line's message for the same mistake: an unknown name
    (``modle="GRU"`` as ``--modle GRU``), a value its type cannot read, a value outside its choices.
    """
    by_name = {o.name: o for o in options}
    values = {o.name: o.default for o in options}
    for name, value in given.items():
        if value is None:
            continue
        option = by_name.get(name)
        if option is None:
            words = [f"--{name}"] + ([] if value is True else [str(v) for v in _items(value)])
            raise UsageError(unrecognized(words, [*HELP_FLAGS, *(o.spelling for o in options)]))
        values[name] = read(option, value)
    _refuse_together(options, given)
    return values


def read(option: Option, value: Any) -> Any:
    """One keyword's value as its flag's parser would hold it (a list for a repeatable or many-valued flag)."""
    if option.is_flag:
        return bool(value)
    items = _items(value)
    if len(items) != 1 and not (option.many or option.repeatable):
        raise UsageError(argument_error(option.spelling, "expected one argument"))
    read_items = [_read_one(option, item) for item in items]
    return read_items if option.many or option.repeatable else read_items[0]


def _read_one(option: Option, item: Any) -> Any:
    assert option.type is not None
    try:
        converted = option.type(str(item))
    except (TypeError, ValueError):
        raise UsageError(argument_error(option.spelling, invalid_value(option.type, str(item)))) from None
    if option.choices is not None and converted not in option.choices:
        raise UsageError(argument_error(option.spelling, invalid_choice(converted, option.choices)))
    return converted


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _refuse_together(options: Sequence[Option], given: Mapping[str, Any]) -> None:
    seen: dict[str, Option] = {}
    for option in options:
        if option.exclusive is None or given.get(option.name) in (None, False):
            continue
        other = seen.setdefault(option.exclusive, option)
        if other is not option:
            raise UsageError(not_allowed(option.spelling, other.spelling))


def config_from_values(values: Mapping[str, Any]) -> RunConfig:
    """The RunConfig that a command's run options describe (validated)."""
    if values.get("onnx_export"):
        refuse_onnx_export()
    return RunConfig(**{f.name: values[f.name] for f in RunConfig.flag_fields()}).validate()


def own_values(values: Mapping[str, Any], options: Sequence[Option]) -> dict[str, Any]:
    """The values of ``options`` alone (a command's own, apart from the run's)."""
    return {o.name: values[o.name] for o in options}


def refuse_onnx_export() -> None:
    """Upstream's --onnx-export calls torch.onnx.export, which in this torch needs onnxscript (and onnx).

    Refused before anything trains, so no run is lost to a failure at its very end.
    """
    import importlib.util

    missing = [name for name in ("onnxscript", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"--onnx-export: torch.onnx.export needs {' and '.join(missing)}, not installed here "
                         f"(pip install {' '.join(missing)}); nothing was trained")
    raise UsageError("--onnx-export: lmprof does not export ONNX itself; export the saved model.pt with "
                     "torch.onnx.export as upstream's export_onnx() does")
