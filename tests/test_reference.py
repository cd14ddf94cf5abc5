"""The reference loop's pieces on the inputs of upstream's own comments."""

from __future__ import annotations

import string

import pytest
import torch

from lmprof.reference.data import Corpus
from lmprof.reference.loop import batchify, get_batch, repackage_hidden
from lmprof.reference.model import RNNModel, TransformerModel

ALPHABET = list(string.ascii_lowercase[:24])  # a..x


def letters(t: torch.Tensor) -> list[str]:
    return [ALPHABET[i] for i in t.tolist()]


def test_batchify_alphabet_gives_upstreams_6x4_matrix() -> None:
    data = torch.arange(24)
    matrix = batchify(data, 4)
    assert matrix.shape == (6, 4)
    rows = [" ".join(letters(row)) for row in matrix]
    assert rows == ["a g m s", "b h n t", "c i o u", "d j p v", "e k q w", "f l r x"]
    assert matrix.is_contiguous()


def test_batchify_drops_the_remainder() -> None:
    assert batchify(torch.arange(27), 4).shape == (6, 4)  # 3 tokens do not fill a row


def test_get_batch_bptt2_gives_input_and_target_offset_by_one() -> None:
    source = batchify(torch.arange(24), 4)
    data, target = get_batch(source, 0, bptt=2)
    assert [letters(r) for r in data] == [list("agms"), list("bhnt")]
    assert letters(target) == list("bhntciou")


def test_get_batch_last_chunk_is_shorter() -> None:
    source = batchify(torch.arange(24), 4)
    starts = list(range(0, source.size(0) - 1, 4))
    data, target = get_batch(source, starts[-1], bptt=4)
    assert data.size(0) == 1 and target.numel() == 4  # 6 rows: chunks of 4 then 1


def test_repackage_hidden_detaches_nested_tuples_and_keeps_values() -> None:
    w = torch.ones(2, requires_grad=True)
    h = (w * 2, (w * 3, w * 4))
    out = repackage_hidden(h)
    flat_in = [h[0], h[1][0], h[1][1]]
    flat_out = [out[0], out[1][0], out[1][1]]
    for a, b in zip(flat_in, flat_out):
        assert a.grad_fn is not None and b.grad_fn is None and not b.requires_grad
        assert torch.equal(a, b)


def test_dictionary_ids_follow_first_appearance_train_valid_test(tmp_path) -> None:
    (tmp_path / "train.txt").write_text("the cat\nsat\n", encoding="utf8")
    (tmp_path / "valid.txt").write_text("a cat\n\n", encoding="utf8")
    (tmp_path / "test.txt").write_text("dog the\n", encoding="utf8")
    corpus = Corpus(str(tmp_path))
    assert corpus.dictionary.idx2word == ["the", "cat", "<eos>", "sat", "a", "dog"]
    assert corpus.train.tolist() == [0, 1, 2, 3, 2]
    assert corpus.valid.tolist() == [4, 1, 2, 2]  # an empty line still gives <eos>
    assert corpus.test.tolist() == [5, 0, 2]
    assert corpus.train.dtype == torch.int64


def test_tied_weights_share_one_parameter_and_save_ntokens_x_emsize() -> None:
    ntokens, emsize = 500, 32
    untied = RNNModel("LSTM", ntokens, emsize, emsize, 2, 0.2, tie_weights=False)
    tied = RNNModel("LSTM", ntokens, emsize, emsize, 2, 0.2, tie_weights=True)
    assert tied.decoder.weight is tied.encoder.weight
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(tied) == ntokens * emsize


def test_tied_needs_nhid_equal_emsize() -> None:
    with pytest.raises(ValueError, match="nhid must be equal to emsize"):
        RNNModel("LSTM", 100, 16, 32, 1, tie_weights=True)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_rnn_forward_shapes_and_hidden(kind: str) -> None:
    torch.manual_seed(0)
    model = RNNModel(kind, 50, 8, 12, 2, 0.0)
    hidden = model.init_hidden(3)
    out, new_hidden = model(torch.randint(0, 50, (5, 3)), hidden)
    assert out.shape == (15, 50)
    assert torch.allclose(out.exp().sum(1), torch.ones(15), atol=1e-5)  # log-probabilities
    if kind == "LSTM":
        assert isinstance(hidden, tuple) and new_hidden[0].shape == (2, 3, 12)
    else:
        assert new_hidden.shape == (2, 3, 12)


def test_unknown_rnn_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="LSTM"):
        RNNModel("CNN", 10, 4, 4, 1)


def test_init_weights_ranges_and_zero_bias() -> None:
    model = RNNModel("LSTM", 300, 16, 16, 1)
    assert model.encoder.weight.abs().max() <= 0.1
    assert model.decoder.weight.abs().max() <= 0.1
    assert torch.count_nonzero(model.decoder.bias) == 0


def test_transformer_builds_like_nn_transformer_and_masks_the_future() -> None:
    torch.manual_seed(0)
    model = TransformerModel(40, 8, 2, 16, 2, 0.0).eval()
    # nn.Transformer built its own encoder (2 layers, as asked) before the decoder was replaced
    assert len(model.encoder.layers) == 2 and isinstance(model.decoder, torch.nn.Linear)
    src = torch.randint(0, 40, (6, 3))
    out = model(src)
    assert out.shape == (6, 3, 40)
    assert model.src_mask is not None and torch.isinf(model.src_mask[0, 1]) and model.src_mask[1, 0] == 0
    # causal: changing the last token leaves earlier positions' outputs unchanged
    src2 = src.clone()
    src2[-1] = (src2[-1] + 1) % 40
    assert torch.allclose(model(src2)[:-1], out[:-1], atol=1e-5)
