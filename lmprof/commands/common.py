"""argparse from the options each command declares (lmprof.library): flags, groups, and back to values."""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from lmprof.config import RunConfig
from lmprof.library.options import Option, config_from_values, run_options


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Each option as its flag, in its --help section (sections in the order they first appear)."""
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for option in options:
        target: Any = parser
        if option.group is not None:
            if option.group not in groups:
                groups[option.group] = parser.add_argument_group(option.group)
            target = groups[option.group]
        if option.exclusive is not None:
            if option.exclusive not in exclusive:
                exclusive[option.exclusive] = target.add_mutually_exclusive_group()
            target = exclusive[option.exclusive]
        target.add_argument(option.spelling, **_argparse_keywords(option))


def _argparse_keywords(option: Option) -> dict[str, Any]:
    keywords: dict[str, Any] = {"dest": option.name, "help": option.help, "default": option.default}
    if option.is_flag:
        keywords["action"] = argparse.BooleanOptionalAction if option.switch else "store_true"
        return keywords
    keywords["type"] = option.type
    if option.repeatable:
        keywords["action"] = "append"
    if option.many:
        keywords["nargs"] = "+"
    keywords.update({k: getattr(option, k) for k in ("metavar", "choices") if getattr(option, k) is not None})
    return keywords


def values_of(args: argparse.Namespace, options: Sequence[Option]) -> dict[str, Any]:
    """The parsed values of ``options``, by name (what the API's keyword check returns for the same flags)."""
    return {option.name: getattr(args, option.name) for option in options}


def add_run_flags(parser: argparse.ArgumentParser, *, epochs: int | None = None) -> None:
    """Upstream's flags (names and defaults as in word_language_model/main.py) plus lmprof's, from RunConfig."""
    add_options(parser, run_options(epochs=epochs))


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig that these flags describe (validated)."""
    return config_from_values(vars(args))
