"""RunConfig: upstream's defaults, validation in one line, and the flags generated from its fields."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from lmprof.commands.common import add_run_flags, config_from_args
from lmprof.config import RunConfig
from lmprof.errors import UsageError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_run_flags(p, epochs=3)
    return p


def test_upstream_defaults() -> None:
    c = RunConfig()
    assert (c.model, c.emsize, c.nhid, c.nlayers, c.lr, c.clip, c.epochs, c.batch_size, c.bptt, c.dropout,
            c.seed, c.log_interval, c.nhead) == ("LSTM", 200, 200, 2, 20.0, 0.25, 40, 20, 35, 0.2, 1111, 200, 2)


@pytest.mark.parametrize(("changes", "words"), [
    ({"model": "LTSM"}, "unknown --model 'LTSM'"), ({"nhid": 0}, "--nhid must be a positive integer"),
    ({"log_interval": -1}, "--log-interval must be"), ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
    ({"tied": True, "nhid": 32, "emsize": 16}, "--tied needs --nhid equal to --emsize"),
])
def test_validate_names_the_flag(changes: dict[str, object], words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)):
        RunConfig(**changes).validate()  # type: ignore[arg-type]


def test_every_flag_field_is_a_flag_with_its_help() -> None:
    actions = {a.dest: a for a in parser()._actions}
    for field in RunConfig.flag_fields():
        assert field.name in actions, field.name
        assert actions[field.name].help == field.metadata["help"]
    assert "synth_seed" not in actions  # a setting no flag sets
    assert actions["log_interval"].option_strings == ["--log-interval"]
    assert actions["batch_size"].option_strings == ["--batch_size"]  # upstream's spelling, as it is
    assert actions["max_batches"].option_strings == ["--max-batches"]
    assert tuple(actions["device"].choices) == ("auto", "cpu", "cuda", "mps")


def test_flags_round_trip_to_a_config() -> None:
    args = parser().parse_args(["--model", "GRU", "--nhid", "32", "--emsize", "32", "--tied", "--lr", "5",
                                "--log-interval", "7", "--dry-run", "--max-batches", "4", "--threads", "2"])
    cfg = config_from_args(args)
    assert cfg == RunConfig(model="GRU", nhid=32, emsize=32, tied=True, lr=5.0, log_interval=7, dry_run=True,
                            max_batches=4, threads=2, epochs=3)
    assert config_from_args(parser().parse_args([])) == RunConfig(epochs=3)


def test_from_dict_ignores_fields_it_does_not_know() -> None:
    doc = {**dataclasses.asdict(RunConfig(nhid=64)), "extra": {"sweep_run": "old files had it"}}
    assert RunConfig.from_dict(doc) == RunConfig(nhid=64)
