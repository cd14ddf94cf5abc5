"""The embedded corpus and the WikiText-2 download (against a server of our own on 127.0.0.1)."""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import math
import threading
from pathlib import Path
from typing import Iterator

import pytest

from lmprof.corpora import synth, wikitext
from lmprof.corpora.check import check_corpus
from lmprof.errors import UsageError

SMALL = {"train": 4000, "valid": 800, "test": 800}


def test_synth_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    a, b, c = synth.generate(0, SMALL), synth.generate(0, SMALL), synth.generate(1, SMALL)
    assert a == b
    assert a["train"] != c["train"]


def test_synth_writes_the_upstream_layout(tmp_path: Path) -> None:
    folder = synth.write(tmp_path / "c", seed=3, sizes=SMALL)
    size = check_corpus(folder, batch_size=20, bptt=35)
    assert abs(size.train - SMALL["train"]) < 200 and size.valid >= SMALL["valid"]


def test_default_corpus_has_a_zipf_vocabulary_of_thousands() -> None:
    texts = synth.generate(0)
    counts = collections.Counter(texts["train"].split())
    ranked = [n for _, n in counts.most_common()]
    assert 5000 < len(counts) < 12000
    # Zipf: frequency falls roughly as 1/rank among content words
    assert ranked[10] > 4 * ranked[200] > 0


def unigram_perplexity(train: str, valid: str) -> float:
    counts = collections.Counter(w for line in train.splitlines() for w in line.split() + ["<eos>"])
    total, vocab = sum(counts.values()), len(counts) + 1
    words = [w for line in valid.splitlines() for w in line.split() + ["<eos>"]]
    return math.exp(-sum(math.log((counts[w] + 1) / (total + vocab)) for w in words) / len(words))


@pytest.mark.slow
def test_an_lstm_learns_the_embedded_corpus_well_below_unigram_perplexity(tmp_path: Path) -> None:
    from lmprof import RunConfig, run

    texts = synth.generate(0)
    unigram = unigram_perplexity(texts["train"], texts["valid"])
    cfg = RunConfig(epochs=1, emsize=64, nhid=64, threads=2)
    result = run(cfg, log=lambda line: None, run_dir=tmp_path / "run")
    val_ppl = result.epochs[0]["val_ppl"]
    assert val_ppl < 0.6 * unigram, (val_ppl, unigram)


# --- WikiText-2 download -----------------------------------------------------

@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, bytes]]]:
    """An HTTP server on 127.0.0.1 serving three files; blob ids patched to match them."""
    root = tmp_path / "www"
    root.mkdir()
    files = {name: f"{name} line one\nline two\n".encode() for name in wikitext.BLOB_IDS}
    for name, data in files.items():
        (root / name).write_bytes(data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, files
    finally:
        server.shutdown()
        server.server_close()


def test_git_blob_id_matches_git_hash_object() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert wikitext.git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_download_verifies_writes_and_skips_verified(served, tmp_path, monkeypatch) -> None:
    url, _, files = served
    monkeypatch.setattr(wikitext, "BLOB_IDS", {n: wikitext.git_blob_id(d) for n, d in files.items()})
    seen: list[str] = []
    out = wikitext.download(tmp_path / "dest", base_url=url, progress=lambda n, done, total: seen.append(n))
    assert set(out.values()) == {"downloaded"} and set(seen) == set(files)
    for name, data in files.items():
        assert (tmp_path / "dest" / name).read_bytes() == data
    again = wikitext.download(tmp_path / "dest", base_url=url)
    assert set(again.values()) == {"already verified"}


def test_download_refuses_a_file_with_the_wrong_hash(served, tmp_path, monkeypatch) -> None:
    url, root, files = served
    ids = {n: wikitext.git_blob_id(d) for n, d in files.items()}
    (root / "valid.txt").write_bytes(b"tampered\n")
    monkeypatch.setattr(wikitext, "BLOB_IDS", ids)
    with pytest.raises(UsageError, match="valid.txt .* git blob id"):
        wikitext.download(tmp_path / "dest", base_url=url)
    assert not (tmp_path / "dest" / "valid.txt").exists()  # nothing half-kept
    assert (tmp_path / "dest" / "train.txt").exists()


def test_download_offline_is_one_clear_error(tmp_path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(UsageError, match="cannot download"):
        wikitext.download(tmp_path / "dest", base_url=f"http://127.0.0.1:{port}", timeout=3)


def test_data_command_downloads_through_the_cli(served, tmp_path, monkeypatch, capsys) -> None:
    from lmprof.cli import main

    url, _, files = served
    monkeypatch.setattr(wikitext, "BLOB_IDS", {n: wikitext.git_blob_id(d) for n, d in files.items()})
    assert main(["data", "wikitext-2", "--dest", str(tmp_path / "w"), "--url", url]) == 0
    assert "downloaded" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--train-tokens", "2000"]) == 0
    assert hashlib.sha1((tmp_path / "s" / "train.txt").read_bytes()).hexdigest() == hashlib.sha1(
        synth.generate(0, {**synth.DEFAULT_SIZES, "train": 2000})["train"].encode()).hexdigest()
