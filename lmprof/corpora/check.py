"""Checks a corpus folder before any training starts, so a bad one costs nothing.

Each problem becomes one UsageError that names the file and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmprof.errors import UsageError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class CorpusSize:
    """Tokens per split, counted as the Corpus will count them (words + one <eos> a line)."""

    train: int
    valid: int
    test: int


def count_tokens(path: Path) -> int:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {e.start}): convert it, e.g. iconv -t UTF-8"
        ) from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    lines = text.splitlines()
    return sum(len(line.split()) + 1 for line in lines)


def check_corpus(folder: str | Path, batch_size: int, bptt: int, eval_batch_size: int = 10) -> CorpusSize:
    root = Path(folder)
    if not root.exists():
        raise UsageError(f"corpus folder {folder} does not exist: pass --data DIR with train.txt, valid.txt, test.txt")
    if not root.is_dir():
        raise UsageError(f"--data {folder} is not a folder: it must hold train.txt, valid.txt, test.txt")
    missing = [f"{s}.txt" for s in SPLITS if not (root / f"{s}.txt").is_file()]
    if missing:
        raise UsageError(f"corpus folder {folder} lacks {', '.join(missing)}: it must hold train.txt, valid.txt, test.txt")
    counts = {s: count_tokens(root / f"{s}.txt") for s in SPLITS}
    if (root / "train.txt").stat().st_size == 0:
        raise UsageError(f"{root / 'train.txt'} is empty: there is nothing to train on")
    # Training: batch_size columns, each long enough for one bptt window and its target.
    need = batch_size * (bptt + 1)
    if counts["train"] < need:
        raise UsageError(
            f"{root / 'train.txt'} has {counts['train']} tokens, too few for --batch_size {batch_size} "
            f"columns of --bptt {bptt} + 1 tokens ({need} needed): use a larger corpus or smaller sizes"
        )
    # Evaluation: 10 columns, each with at least one input and its target.
    for split in ("valid", "test"):
        if counts[split] < 2 * eval_batch_size:
            raise UsageError(
                f"{root / (split + '.txt')} has {counts[split]} tokens, too few for {eval_batch_size} "
                f"evaluation columns of 2 tokens: add text to it"
            )
    return CorpusSize(**counts)
