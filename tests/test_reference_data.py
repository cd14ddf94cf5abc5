"""reference/data.py: the same word ids as upstream's Dictionary, from the same two passes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lmprof.reference.data import Corpus

from .conftest import SHARED_DATA

UPSTREAM_DATA = SHARED_DATA.parents[1] / "upstream" / "word_language_model" / "data.py"


def upstream_corpus(folder: Path) -> object:
    """Upstream's Corpus, loaded from its own file (never copied into the project)."""
    spec = importlib.util.spec_from_file_location("upstream_data", UPSTREAM_DATA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Corpus(str(folder))


@pytest.mark.skipif(not UPSTREAM_DATA.is_file(), reason="upstream's data.py is not beside the project")
def test_the_same_ids_as_upstreams_dictionary(tiny_corpus: Path) -> None:
    ours, theirs = Corpus(str(tiny_corpus)), upstream_corpus(tiny_corpus)
    assert ours.dictionary.idx2word == theirs.dictionary.idx2word  # type: ignore[attr-defined]
    for split in ("train", "valid", "test"):
        mine, upstream = getattr(ours, split), getattr(theirs, split)
        assert mine.dtype == upstream.dtype and mine.tolist() == upstream.tolist(), split


def test_ids_by_first_appearance_across_the_files(tmp_path: Path) -> None:
    for name, text in (("train.txt", "the cat\nsat\n"), ("valid.txt", "\nthe dog\n"), ("test.txt", "cat\n")):
        (tmp_path / name).write_text(text, encoding="utf8")
    corpus = Corpus(str(tmp_path))
    assert corpus.dictionary.idx2word == ["the", "cat", "<eos>", "sat", "dog"]
    assert corpus.train.tolist() == [0, 1, 2, 3, 2]
    assert corpus.valid.tolist() == [2, 0, 4, 2]  # an empty line is one <eos>
    assert corpus.test.tolist() == [1, 2]
