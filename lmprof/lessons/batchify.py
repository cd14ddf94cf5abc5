"""batchify: the token stream cut into batch_size columns, one contiguous slice of text each."""

from __future__ import annotations

import string
from typing import Any

import torch
from rich.console import RenderableType

from lmprof.lessons import TOPICS
from lmprof.lessons.page import letters_table, page, prose, section, source, table
from lmprof.reference.loop import batchify

ALPHABET = string.ascii_lowercase[:24]  # a..x: 24 tokens, 6 rows of 4


def as_letters(matrix: torch.Tensor, alphabet: str = ALPHABET) -> list[list[str]]:
    """Token ids 0..23 back to letters, row by row."""
    return [[alphabet[i] for i in row] for row in matrix.tolist()]


def corpus_shape(train_tokens: int, batch_size: int) -> dict[str, int]:
    """What batchify does to a stream of ``train_tokens`` ids (computed on the real tensor)."""
    matrix = batchify(torch.arange(train_tokens), batch_size)
    rows = matrix.size(0)
    return {
        "tokens": train_tokens,
        "batch_size": batch_size,
        "rows": rows,
        "columns": matrix.size(1),
        "dropped_tokens": train_tokens - matrix.numel(),
        # each column ends where the next begins: that pair of neighbours is never seen
        "seams": matrix.size(1) - 1,
        # column j starts at token j*rows: the ids of the first row show it
        "column_starts": matrix[0].tolist(),
    }


def demo(data: str | None = None, batch_size: int = 20, alphabet_columns: int = 4) -> dict[str, Any]:
    """The alphabet a..x in ``alphabet_columns`` columns, then the training corpus for ``batch_size``."""
    from lmprof.prepare import read_corpus

    matrix = batchify(torch.arange(len(ALPHABET)), alphabet_columns)
    rows = as_letters(matrix)
    seams = [(rows[-1][j], rows[0][j + 1]) for j in range(len(rows[0]) - 1)]
    corpus = read_corpus(data)
    return {
        "alphabet": {
            "columns": alphabet_columns,
            "shape": list(matrix.shape),
            "rows": [" ".join(r) for r in rows],
            "seams": [f"{a}->{b}" for a, b in seams],
            "contiguous": matrix.is_contiguous(),
        },
        "corpus": {"data": "embedded corpus" if data is None else data,
                   "vocabulary": len(corpus.dictionary),
                   **corpus_shape(corpus.train.numel(), batch_size)},
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    a, c = numbers["alphabet"], numbers["corpus"]
    rows = [r.split() for r in a["rows"]]
    n_rows, n_cols = a["shape"]
    return page(
        "batchify", TOPICS["batchify"],
        section("The code (lmprof/reference/loop.py, as upstream)"),
        source(batchify),
        prose(f"""
            The whole training text is one long stream of word ids. `batchify` cuts it
            into `bsz` equal slices and stands each slice up as a **column**: reading down a
            column reads the text in order. Here is the alphabet `a..x` (24 tokens), computed
            now with `batchify(torch.arange(24), {a['columns']})`:
        """),
        letters_table(rows, title=f"batchify(a..x, bsz={a['columns']}) -> shape {n_rows} x {n_cols}",
                      row_labels=[str(i) for i in range(n_rows)]),
        section("Why columns are independent"),
        prose(f"""
            A training step feeds a few rows at once: row `t` holds token `t` of every column,
            so the {n_cols} columns are {n_cols} sequences processed side by side, each with its
            own hidden state. The model never sees one column continue into the next, so at each
            **seam** a pair of neighbours is lost: here {', '.join(a['seams'])}
            (the model never learns `g` from `f`). That is the price of batch processing:
            {n_cols - 1} pairs out of {n_rows * n_cols - 1}.
        """),
        section("The training corpus, batch size " + str(c["batch_size"])),
        table(None, ["", "value"], [
            ("corpus", c["data"]),
            ("vocabulary", f"{c['vocabulary']:,} words"),
            ("train tokens", f"{c['tokens']:,}"),
            ("batchify(train, bsz)", f"{c['rows']:,} rows x {c['columns']} columns"),
            ("tokens dropped (do not fill a row)", f"{c['dropped_tokens']:,}"),
            ("seams (neighbour pairs never seen)", f"{c['seams']}"),
            ("column j starts at token", ", ".join(f"{s:,}" for s in c["column_starts"][:4]) + ", ..."),
        ]),
        prose(f"""
            Each column is {c['rows']:,} tokens of consecutive text; only {c['seams']} neighbour
            pairs and {c['dropped_tokens']} trailing tokens are lost, out of {c['tokens']:,}.
            Evaluation uses `bsz` 10 the same way. Next: `lmprof explain get_batch` cuts these
            columns into training batches.
        """),
    )
