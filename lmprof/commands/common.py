"""Flags shared by every command that trains: upstream's, then lmprof's own."""

from __future__ import annotations

import argparse

from lmprof.config import DEVICES, RunConfig

_DEFAULTS = RunConfig()


def add_run_flags(parser: argparse.ArgumentParser, *, epochs: int | None = None) -> None:
    """Upstream's flags (names and defaults as in word_language_model/main.py) plus lmprof's."""
    d = _DEFAULTS
    up = parser.add_argument_group("upstream flags (word_language_model/main.py)")
    up.add_argument("--data", type=str, default=None,
                    help="corpus folder with train.txt, valid.txt, test.txt (default: lmprof's embedded corpus)")
    up.add_argument("--model", type=str, default=d.model,
                    help="type of network (RNN_TANH, RNN_RELU, LSTM, GRU, Transformer)")
    up.add_argument("--emsize", type=int, default=d.emsize, help="size of word embeddings")
    up.add_argument("--nhid", type=int, default=d.nhid, help="number of hidden units per layer")
    up.add_argument("--nlayers", type=int, default=d.nlayers, help="number of layers")
    up.add_argument("--lr", type=float, default=d.lr, help="initial learning rate")
    up.add_argument("--clip", type=float, default=d.clip, help="gradient clipping")
    up.add_argument("--epochs", type=int, default=epochs or d.epochs, help="upper epoch limit")
    up.add_argument("--batch_size", type=int, default=d.batch_size, metavar="N", help="batch size")
    up.add_argument("--bptt", type=int, default=d.bptt, help="sequence length")
    up.add_argument("--dropout", type=float, default=d.dropout, help="dropout applied to layers (0 = no dropout)")
    up.add_argument("--tied", action="store_true", help="tie the word embedding and softmax weights")
    up.add_argument("--seed", type=int, default=d.seed, help="random seed")
    up.add_argument("--log-interval", type=int, default=d.log_interval, metavar="N", help="report interval")
    up.add_argument("--save", type=str, default=None,
                    help="path to save the final model (default: model.pt in the run folder)")
    up.add_argument("--nhead", type=int, default=d.nhead,
                    help="the number of heads in the encoder/decoder of the transformer model")
    up.add_argument("--dry-run", action="store_true", help="verify the code and the model")
    up.add_argument("--use-optimizer", action="store_true", help="use AdamW instead of plain SGD")
    up.add_argument("--accel", action="store_true", help="use an accelerator when present (same as --device auto)")
    own = parser.add_argument_group("lmprof flags")
    own.add_argument("--max-batches", type=int, default=None, metavar="N",
                     help="stop each epoch's training after N batches (quick runs)")
    own.add_argument("--out", type=str, default=None, metavar="DIR",
                     help="run folder (default: runs/<command>-<model>-<time>)")
    own.add_argument("--device", choices=DEVICES, default=d.device,
                     help="auto: the accelerator when present, else cpu")
    own.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig that these flags describe (validated)."""
    return RunConfig(
        data=args.data, model=args.model, emsize=args.emsize, nhid=args.nhid, nlayers=args.nlayers,
        lr=args.lr, clip=args.clip, epochs=args.epochs, batch_size=args.batch_size, bptt=args.bptt,
        dropout=args.dropout, tied=args.tied, seed=args.seed, log_interval=args.log_interval,
        save=args.save, nhead=args.nhead, dry_run=args.dry_run, use_optimizer=args.use_optimizer,
        accel=args.accel, max_batches=args.max_batches, out=args.out, device=args.device,
        threads=args.threads,
    ).validate()


def add_report_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", action="store_true",
                        help="also write report.html into the folder (the page `lmprof report` makes)")
