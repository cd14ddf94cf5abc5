"""lmprof's embedded corpus: English-like text from a small probabilistic grammar.

lmprof cannot ship WikiText-2, so with no ``--data`` it writes its own corpus:
made-up words in real syntactic roles (determiners, adjectives, nouns, verbs
that agree with their subject in number, prepositional phrases, relative
clauses), each role's vocabulary Zipf-distributed, about 10k word types in
all. An LSTM can learn that structure (which role comes next, singular or
plural), so its validation perplexity falls well below the unigram
perplexity within one epoch.

The output depends only on (seed, sizes, GENERATOR_VERSION): Python's
``random.Random`` is the same on every platform, so the bytes are too.
"""

from __future__ import annotations

import os
import random
from itertools import accumulate
from pathlib import Path

from lmprof.fsutil import write_text_atomic

GENERATOR_VERSION = 1
# Tokens per split (before <eos>); train sized so `make demo` takes about a minute.
DEFAULT_SIZES = {"train": 100_000, "valid": 12_000, "test": 12_000}

_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "st", "th", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "oo", "ou", "ie"]
_CODAS = ["", "", "", "n", "r", "l", "m", "s", "t", "nd", "rk", "st", "ng"]


class _Lexicon:
    """Made-up words for each role, with Zipf weights (the k-th word ~ 1/k^1.07)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.noun = self._words(3000, 2, 3)
        self.verb = self._words(1300, 1, 2)
        self.adj = self._words(1300, 2, 3)
        self.adv = [w + "ly" for w in self._words(350, 2, 2)]
        self.name = [w.capitalize() for w in self._words(450, 2, 3)]
        self.weights = {role: list(accumulate(1.0 / (k + 1) ** 1.07 for k in range(len(words))))
                        for role, words in self.roles().items()}

    def roles(self) -> dict[str, list[str]]:
        return {"noun": self.noun, "verb": self.verb, "adj": self.adj, "adv": self.adv, "name": self.name}

    def _words(self, n: int, min_syl: int, max_syl: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            syllables = self.rng.randint(min_syl, max_syl)
            word = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(syllables))
            word += self.rng.choice(_CODAS)
            # keep roles apart: a plural noun (word+s) must not collide with another word
            if word in self.used or word + "s" in self.used or word.endswith("s"):
                continue
            self.used.update((word, word + "s"))
            out.append(word)
        return out

    def pick(self, role: str) -> str:
        words = self.roles()[role]
        return self.rng.choices(words, cum_weights=self.weights[role])[0]


class _Grammar:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lex = _Lexicon(rng)

    def noun_phrase(self, plural: bool, depth: int = 0) -> list[str]:
        r = self.rng
        if not plural and r.random() < 0.12:
            return [self.lex.pick("name")]
        det = r.choice(["the", "these", "those", "some", "many", "the"] if plural
                       else ["the", "a", "this", "that", "every", "the", "one"])
        words = [det]
        while r.random() < 0.35 and len(words) < 3:
            words.append(self.lex.pick("adj"))
        noun = self.lex.pick("noun")
        words.append(noun + "s" if plural else noun)
        if depth == 0 and r.random() < 0.25:
            words += [r.choice(["of", "in", "near", "with", "from", "under"])]
            words += self.noun_phrase(r.random() < 0.4, depth + 1)
        elif depth == 0 and r.random() < 0.12:
            words += ["that"] + self.verb_phrase(plural, depth + 1)
        return words

    def verb_phrase(self, plural: bool, depth: int = 0) -> list[str]:
        r = self.rng
        verb = self.lex.pick("verb")
        words = [verb if plural else verb + "s"]  # agreement with the subject
        roll = r.random()
        if roll < 0.6:
            words += self.noun_phrase(r.random() < 0.4, depth + 1)
        elif roll < 0.8:
            words += [r.choice(["to", "into", "over", "through"])] + self.noun_phrase(r.random() < 0.4, depth + 1)
        if r.random() < 0.25:
            words.append(self.lex.pick("adv"))
        return words

    def sentence(self) -> list[str]:
        plural = self.rng.random() < 0.4
        words = self.noun_phrase(plural) + self.verb_phrase(plural)
        if self.rng.random() < 0.2:
            second = self.rng.random() < 0.4
            words += [","] + ["and" if self.rng.random() < 0.6 else "but"]
            words += self.noun_phrase(second) + self.verb_phrase(second)
        return words + ["."]

    def paragraph(self) -> str:
        if self.rng.random() < 0.06:  # a heading, as WikiText has them
            return " ".join(["="] + [self.lex.pick("name") for _ in range(self.rng.randint(1, 3))] + ["="])
        words: list[str] = []
        for _ in range(self.rng.randint(2, 7)):
            words += self.sentence()
        return " ".join(words)


def generate(seed: int = 0, sizes: dict[str, int] | None = None) -> dict[str, str]:
    """The three splits as text, each about ``sizes[split]`` tokens."""
    sizes = sizes or DEFAULT_SIZES
    grammar = _Grammar(random.Random(f"lmprof-synth-{GENERATOR_VERSION}-{seed}"))
    texts: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        lines: list[str] = []
        count = 0
        while count < sizes[split]:
            line = grammar.paragraph()
            lines.append(line)
            count += len(line.split()) + 1  # + <eos>
        texts[split] = "\n".join(lines) + "\n"
    return texts


def write(dest: str | os.PathLike[str], seed: int = 0, sizes: dict[str, int] | None = None) -> Path:
    """Write train/valid/test.txt into ``dest`` (each file atomically)."""
    folder = Path(dest)
    for split, text in generate(seed, sizes).items():
        write_text_atomic(folder / f"{split}.txt", text)
    return folder


def cache_dir() -> Path:
    base = os.environ.get("LMPROF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lmprof")
    return Path(base)


def default_corpus(seed: int = 0) -> Path:
    """The embedded corpus for ``seed``, generated once into the cache folder."""
    folder = cache_dir() / f"synth-v{GENERATOR_VERSION}-seed{seed}"
    if not all((folder / f"{s}.txt").is_file() for s in ("train", "valid", "test")):
        write(folder, seed)
    return folder
