"""Walkthrough 10: a held-out test set, read once, by the checkpoint validation chose.

Run:   python examples/10_test_set.py            (the page: lmprof explain test_set)
Try:   epochs=8 below: does the kept checkpoint stay the last one once lr 20 overshoots?
"""

from __future__ import annotations

from lmprof.lessons.test_set import demo


def main() -> None:
    numbers = demo(epochs=4, max_batches=25)  # the reference loop itself, on the embedded corpus
    for row in numbers["epochs"]:
        kept = "saved (best so far)" if row["saved"] else "not saved; lr / 4"
        print(f"epoch {row['epoch']}: lr {row['lr']:g}  valid ppl {row['val_ppl']:8.2f}  {kept}")
    print(f"validation read {numbers['valid_evaluations']} time(s); "
          f"test set evaluated {numbers['test_evaluations']} time(s), with epoch {numbers['best_epoch']}'s checkpoint")
    print(f"best valid ppl {numbers['best_val_ppl']:.2f}  vs  test ppl {numbers['test_ppl']:.2f}")


if __name__ == "__main__":
    main()
