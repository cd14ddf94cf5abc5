"""Fixtures shared by the test files: tiny corpora and configs that train in a second."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2-lite"
TINY_SIZES = {"train": 3000, "valid": 600, "test": 600}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small copy of the embedded corpus (a few thousand tokens)."""
    from lmprof.corpora import synth

    return synth.write(tmp_path_factory.mktemp("tiny-corpus"), seed=0, sizes=TINY_SIZES)


@pytest.fixture
def tiny_args(tiny_corpus: Path, tmp_path: Path) -> list[str]:
    """CLI flags for a run that takes about a second."""
    return ["--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--epochs", "1",
            "--max-batches", "4", "--bptt", "8", "--out", str(tmp_path / "run")]
