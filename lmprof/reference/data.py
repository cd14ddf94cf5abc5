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
        """Tokenize a text file into one 1-D int64 tensor of word ids, in upstream's two passes."""
        assert os.path.exists(path)
        # Pass 1: grow the dictionary. A word's id is the count of distinct words seen
        # before it, across train, valid and test, so every file shares one vocabulary.
        with open(path, "r", encoding="utf8") as f:
            for line in f:
                words = line.split() + ["<eos>"]
                for word in words:
                    self.dictionary.add_word(word)

        # Pass 2: look every word up. One small tensor per line, joined at the end:
        #   "the cat <eos>" "sat <eos>"  ->  [4, 9, 0] [17, 0]  ->  [4, 9, 0, 17, 0]
        with open(path, "r", encoding="utf8") as f:
            idss = []
            for line in f:
                words = line.split() + ["<eos>"]
                ids = []
                for word in words:
                    ids.append(self.dictionary.word2idx[word])
                idss.append(torch.tensor(ids).type(torch.int64))
            ids = torch.cat(idss)

        return ids
