"""Dictionary and Corpus: words to ids, as upstream's data.py does it.

A corpus folder holds train.txt, valid.txt and test.txt. Every line is split
on white space and ends with the token <eos> (empty lines too), so the model
also learns where paragraphs end. One Dictionary serves all three files: a
word gets the next free id the first time it is seen, reading train, then
valid, then test.
"""

from __future__ import annotations

import os

import torch


class Dictionary:
    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


class Corpus:
    def __init__(self, path: str) -> None:
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(path, "train.txt"))
        self.valid = self.tokenize(os.path.join(path, "valid.txt"))
        self.test = self.tokenize(os.path.join(path, "test.txt"))

    def tokenize(self, path: str) -> torch.Tensor:
        """Tokenize a text file into one 1-D int64 tensor of word ids.

        Upstream reads the file twice (first to grow the dictionary, then to
        look ids up); one pass gives the same ids, since a word's id is fixed
        the moment it is first added.
        """
        add_word = self.dictionary.add_word
        ids: list[int] = []
        with open(path, "r", encoding="utf8") as f:
            for line in f:
                words = line.split() + ["<eos>"]
                ids.extend(add_word(word) for word in words)
        return torch.tensor(ids, dtype=torch.int64)
