"""get_batch: bptt rows of the batchified matrix as input, the same rows one later as target."""

from __future__ import annotations

from typing import Any

import torch
from rich.console import RenderableType

from lmprof.lessons import TOPICS
from lmprof.lessons.batchify import ALPHABET, as_letters
from lmprof.lessons.page import code, letters_table, page, prose, section, source, table
from lmprof.reference.loop import batchify, get_batch


def chunks(source_matrix: torch.Tensor, bptt: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Every (i, data, target) the training loop asks for, in its order."""
    return [(i, *get_batch(source_matrix, i, bptt)) for i in range(0, source_matrix.size(0) - 1, bptt)]


def demo(bptt: int = 2, columns: int = 4) -> dict[str, Any]:
    """All the batches of the alphabet matrix (a..x in ``columns`` columns) for ``bptt``."""
    matrix = batchify(torch.arange(len(ALPHABET)), columns)
    batches = []
    for i, data, target in chunks(matrix, bptt):
        batches.append({
            "i": i,
            "seq_len": data.size(0),
            "data_rows": [" ".join(r) for r in as_letters(data)],
            "target": " ".join(as_letters(target.view(1, -1))[0]),
            "target_as_rows": [" ".join(r) for r in as_letters(target.view(-1, columns))],
            "data_shape": list(data.shape),
            "target_shape": list(target.shape),
        })
    return {"bptt": bptt, "columns": columns, "matrix_rows": matrix.size(0),
            "batches": batches, "last_is_shorter": batches[-1]["seq_len"] < bptt}


def render(numbers: dict[str, Any]) -> RenderableType:
    bptt, batches = numbers["bptt"], numbers["batches"]
    first, last = batches[0], batches[-1]
    rows = [(str(b["i"]), str(b["seq_len"]), " / ".join(b["data_rows"]), b["target"],
             f"{tuple(b['data_shape'])} -> {tuple(b['target_shape'])}") for b in batches]
    return page(
        "get_batch", TOPICS["get_batch"],
        section("The code"),
        source(get_batch),
        prose(f"""
            `train()` walks down the batchified matrix `bptt` rows at a time:
            `for i in range(0, train_data.size(0) - 1, bptt)`. Each call returns the rows
            `i .. i+seq_len` as **data** and the same rows shifted down by one as **target**:
            the model reads a token and must predict the one below it in the same column.
            Here with bptt {bptt} on the alphabet matrix ({numbers['matrix_rows']} rows x
            {numbers['columns']} columns), computed now:
        """),
        letters_table([r.split() for r in first["data_rows"]], title=f"data, i=0, bptt={bptt}"),
        letters_table([r.split() for r in first["target_as_rows"]],
                      title="target, as rows"),
        table("Every batch of one epoch", ["i", "seq_len", "data rows", "target (flat)", "shapes"], rows,
              right=["i", "seq_len"]),
        section("Why the last chunk is shorter"),
        prose(f"""
            `seq_len = min(bptt, len(source) - 1 - i)`: the last row has no row below it to
            serve as its target, so the final batch takes only what is left. Here it has
            {last['seq_len']} row{'s' if last['seq_len'] != 1 else ''} instead of {bptt}.
            `evaluate()` weighs each chunk's loss by its length for the same reason.
            The target is flattened to `seq_len * batch` ids because the model's output is
            flattened the same way before the loss:
        """),
        code("""
            output, hidden = model(data, hidden)   # output: (seq_len * batch, ntokens)
            loss = criterion(output, targets)      # targets: (seq_len * batch,)
        """),
    )
