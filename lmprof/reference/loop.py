"""The training program under study: upstream's main.py, one function per job.

Read it beside PyTorch's word_language_model/main.py: the same functions,
the same statements, the same numbers. Two differences, both for teaching:
every function gets what it uses as arguments (nothing is read from module
globals), and each part of the work sits inside ``with phase(...)``, a marker
that does nothing unless an lmprof instrument listens.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn as nn

from lmprof.config import RunConfig
from lmprof.errors import LossNotFinite
from lmprof.fsutil import atomic_file
from lmprof.phases import phase
from lmprof.reference.data import Corpus
from lmprof.reference.model import Hidden, RNNModel, TransformerModel

Log = Callable[[str], None]


def perplexity(loss: float) -> float:
    """exp(loss), or infinity where exp overflows (a diverged model)."""
    return math.exp(loss) if loss < 709.0 else math.inf


###############################################################################
# Load data
###############################################################################

def batchify(data: torch.Tensor, bsz: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Cut the token stream into ``bsz`` columns, one contiguous slice of text each.

    Starting from sequential data, batchify arranges the dataset into columns.
    For instance, with the alphabet as the sequence and batch size 4, we'd get
        ┌ a g m s ┐
        │ b h n t │
        │ c i o u │
        │ d j p v │
        │ e k q w │
        └ f l r x ┘.
    These columns are treated as independent by the model, which means that the
    dependence of e.g. 'g' on 'f' cannot be learned, but allows more efficient
    batch processing. Tokens that do not fill a whole row are dropped.
    """
    # Work out how cleanly we can divide the dataset into bsz parts.
    nbatch = data.size(0) // bsz
    # Trim off any extra elements that wouldn't cleanly fit (remainders).
    data = data.narrow(0, 0, nbatch * bsz)
    # Evenly divide the data across the bsz batches.
    data = data.view(bsz, -1).t().contiguous()
    return data.to(device)


###############################################################################
# Training code
###############################################################################

def repackage_hidden(h: Hidden) -> Hidden:
    """Wraps hidden states in new Tensors, to detach them from their history.

    Without this, the next batch's backward pass would run back through every
    batch before it, to the start of the dataset.
    """
    if isinstance(h, torch.Tensor):
        return h.detach()
    else:
        return tuple(repackage_hidden(v) for v in h)  # type: ignore[return-value]


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows i .. i+bptt of ``source`` as input, the same rows shifted by one as target.

    With bptt 2 on the alphabet matrix above, get_batch(source, 0) gives
        ┌ a g m s ┐ ┌ b h n t ┐
        └ b h n t ┘ └ c i o u ┘
    (the target flattened to one row: b h n t c i o u). The model predicts
    each token from those before it in its column; the last chunk of a
    column may be shorter than bptt.
    """
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].view(-1)
    return data, target


def evaluate(
    model: nn.Module, data_source: torch.Tensor, cfg: RunConfig, criterion: nn.Module, ntokens: int
) -> float:
    # Turn on evaluation mode which disables dropout.
    model.eval()
    total_loss = 0.
    if cfg.model != "Transformer":
        hidden = model.init_hidden(cfg.eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, cfg.bptt):
            data, targets = get_batch(data_source, i, cfg.bptt)
            if cfg.model == "Transformer":
                output = model(data)
                output = output.view(-1, ntokens)
            else:
                output, hidden = model(data, hidden)
                hidden = repackage_hidden(hidden)
            # Weighted by the chunk's length, so the shorter last chunk counts less.
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train(
    model: nn.Module,
    train_data: torch.Tensor,
    cfg: RunConfig,
    criterion: nn.Module,
    ntokens: int,
    *,
    lr: float,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    log: Log = print,
) -> int:
    """One epoch over train_data; returns the number of batches run."""
    # Turn on training mode which enables dropout.
    model.train()
    total_loss = 0.
    start_time = time.time()
    if cfg.model != "Transformer":
        hidden = model.init_hidden(cfg.batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, cfg.bptt)):
        with phase("data"):
            data, targets = get_batch(train_data, i, cfg.bptt)
        # Starting each batch, we detach the hidden state from how it was previously produced.
        # If we didn't, the model would try backpropagating all the way to start of the dataset.
        with phase("zero_grad"):
            if optimizer is not None:
                optimizer.zero_grad()
            else:
                model.zero_grad()
        if cfg.model == "Transformer":
            with phase("forward"):
                output = model(data)
                output = output.view(-1, ntokens)
        else:
            with phase("repackage"):
                hidden = repackage_hidden(hidden)
            with phase("forward"):
                output, hidden = model(data, hidden)
        with phase("loss"):
            loss = criterion(output, targets)
        with phase("backward"):
            loss.backward()

        # `clip_grad_norm` helps prevent the exploding gradient problem in RNNs / LSTMs.
        with phase("clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        with phase("update"):
            if optimizer is not None:
                optimizer.step()
            else:
                # Plain SGD, one fused multiply-add per parameter (p - lr * grad).
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)

        with phase("logging"):
            total_loss += loss.item()
            if not math.isfinite(total_loss):
                raise LossNotFinite(epoch, batch)

            if batch % cfg.log_interval == 0 and batch > 0:
                cur_loss = total_loss / cfg.log_interval
                elapsed = time.time() - start_time
                log('| epoch {:3d} | {:5d}/{:5d} batches | lr {:02.2f} | ms/batch {:5.2f} | '
                    'loss {:5.2f} | ppl {:8.2f}'.format(
                        epoch, batch, len(train_data) // cfg.bptt, lr,
                                elapsed * 1000 / cfg.log_interval, cur_loss, perplexity(cur_loss)))
                total_loss = 0
                start_time = time.time()
        if cfg.dry_run or batch + 1 == cfg.max_batches:  # lmprof: --max-batches
            break
    return batch + 1


###############################################################################
# The epoch driver
###############################################################################

class Watch:
    """What the epoch loop tells whoever keeps the records (lmprof's runner: ``lmprof.record.epochs.EpochRecords``).

    The loop only reports; every method here does nothing, so ``main`` run bare
    is upstream's program. ``validated`` may raise LossNotFinite (a NaN loss, or
    a sweep's divergence rule): the loop then stops as diverged.
    """

    def built(self, model: nn.Module, ntokens: int, train_data: torch.Tensor) -> None: ...
    def training(self, epoch: int) -> None: ...
    def trained(self, epoch: int, lr: float, batches: int) -> None: ...
    def validated(self, val_loss: float) -> None: ...
    def stopped(self, status: str, message: str = "") -> None: ...
    def tested(self, test_loss: float) -> None: ...


def build_model(cfg: RunConfig, ntokens: int, device: torch.device) -> nn.Module:
    if cfg.model == "Transformer":
        return TransformerModel(ntokens, cfg.emsize, cfg.nhead, cfg.nhid, cfg.nlayers, cfg.dropout).to(device)
    return RNNModel(cfg.model, ntokens, cfg.emsize, cfg.nhid, cfg.nlayers, cfg.dropout, cfg.tied).to(device)


def tokens_seen(train_data: torch.Tensor, bptt: int, batches: int) -> int:
    """Target tokens in the first ``batches`` chunks (the last chunk may be short)."""
    rows = min(batches * bptt, train_data.size(0) - 1)
    return rows * train_data.size(1)


def save_checkpoint(model: nn.Module, cfg: RunConfig, path: str) -> None:
    """A state_dict and the config: loads with torch.load(weights_only=True), no pickled code."""
    with atomic_file(path) as f:  # a reader never sees half a checkpoint; a failed save leaves no temp file
        torch.save({"config": cfg.to_dict(), "state_dict": model.state_dict()}, f)


def main(
    cfg: RunConfig,
    data_path: str,
    save_path: str,
    device: torch.device,
    *,
    log: Log = print,
    watch: Watch = Watch(),
) -> nn.Module:
    """Upstream's main.py from ``torch.manual_seed`` to the test evaluation; returns the model."""
    # Set the random seed manually for reproducibility.
    torch.manual_seed(cfg.seed)
    log(f"Using device: {device}")

    with phase("corpus"):
        corpus = Corpus(data_path)
    with phase("batchify"):
        eval_batch_size = cfg.eval_batch_size
        train_data = batchify(corpus.train, cfg.batch_size, device)
        val_data = batchify(corpus.valid, eval_batch_size, device)
        test_data = batchify(corpus.test, eval_batch_size, device)

    ntokens = len(corpus.dictionary)
    with phase("model_build"):
        model = build_model(cfg, ntokens, device)
        criterion = nn.NLLLoss()
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr) if cfg.use_optimizer else None
    watch.built(model, ntokens, train_data)

    # Loop over epochs.
    lr = cfg.lr
    best_val_loss = None
    # At any point you can hit Ctrl + C to break out of training early.
    try:
        for epoch in range(1, cfg.epochs + 1):
            epoch_start_time = time.time()
            watch.training(epoch)
            batches = train(model, train_data, cfg, criterion, ntokens,
                            lr=lr, epoch=epoch, optimizer=optimizer, log=log)
            watch.trained(epoch, lr, batches)
            with phase("evaluate_valid"):
                val_loss = evaluate(model, val_data, cfg, criterion, ntokens)
            log('-' * 89)
            log('| end of epoch {:3d} | time: {:5.2f}s | valid loss {:5.2f} | '
                'valid ppl {:8.2f}'.format(epoch, (time.time() - epoch_start_time),
                                           val_loss, perplexity(val_loss)))
            log('-' * 89)
            watch.validated(val_loss)
            # Save the model if the validation loss is the best we've seen so far.
            with phase("checkpoint_save"):
                if not best_val_loss or val_loss < best_val_loss:
                    save_checkpoint(model, cfg, save_path)
                    best_val_loss = val_loss
                else:
                    # Anneal the learning rate if no improvement has been seen in the validation dataset.
                    lr /= 4.0
    except KeyboardInterrupt:
        log('-' * 89)
        log('Exiting from training early')
        watch.stopped("interrupted")
    except LossNotFinite as e:  # lmprof: a NaN loss ends the run here, without a test
        log('-' * 89)
        log(f'Stopped: {e}')
        watch.stopped("diverged", str(e))
        return model

    # Load the best saved model.
    with phase("checkpoint_load"):
        if best_val_loss is not None:  # lmprof: a run stopped in its first epoch saved nothing
            checkpoint = torch.load(save_path, map_location=device, weights_only=True)
            model.load_state_dict(checkpoint["state_dict"])
            if isinstance(model, RNNModel):
                # after load the rnn params are not a continuous chunk of memory;
                # this makes them a continuous chunk, and will speed up forward pass
                model.rnn.flatten_parameters()

    # Run on test data.
    with phase("evaluate_test"):
        test_loss = evaluate(model, test_data, cfg, criterion, ntokens)
    log('=' * 89)
    log('| End of training | test loss {:5.2f} | test ppl {:8.2f}'.format(
        test_loss, perplexity(test_loss)))
    log('=' * 89)
    watch.tested(test_loss)
    return model
