"""A tiny word-level trigram language model: trained, saved and loaded as safetensors.

Small enough to train in a second on the bundled text, real enough that loading validates
tensors, builds lookup tables and a wrong or missing file fails the self-test.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
EOS = "<eos>"
UNK = "<unk>"
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[0-9]+|[^\sA-Za-z0-9]")
_NO_SPACE_BEFORE = set(".,;:!?')")


class ModelError(Exception):
    """The weights or tokenizer are missing or inconsistent."""


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def detokenize(tokens: list[str]) -> str:
    out = ""
    for token in tokens:
        if out and token not in _NO_SPACE_BEFORE:
            out += " "
        out += token
    return out


def train(text: str, out_dir: Path) -> Path:
    """Count unigrams, bigrams and trigrams of ``text``; write weights and tokenizer."""
    tokens: list[str] = []
    for line in text.splitlines():
        words = tokenize(line)
        if words:
            tokens += [*words, EOS]
    counts = Counter(tokens)
    vocab = [UNK, EOS, *sorted(t for t in counts if t != EOS)]
    index = {token: i for i, token in enumerate(vocab)}
    ids = np.array([index[t] for t in tokens], dtype=np.int64)
    unigram = np.bincount(ids, minlength=len(vocab)).astype(np.float32)
    bigram = Counter(zip(ids[:-1].tolist(), ids[1:].tolist()))
    trigram = Counter(zip(ids[:-2].tolist(), ids[1:-1].tolist(), ids[2:].tolist()))
    tensors = {
        "unigram": unigram,
        "bigram_index": np.array(sorted(bigram), dtype=np.int64).reshape(-1, 2),
        "bigram_count": np.array([bigram[k] for k in sorted(bigram)], dtype=np.float32),
        "trigram_index": np.array(sorted(trigram), dtype=np.int64).reshape(-1, 3),
        "trigram_count": np.array([trigram[k] for k in sorted(trigram)], dtype=np.float32),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / WEIGHTS), metadata={"format": "trigram-v1"})
    (out_dir / TOKENIZER).write_text(json.dumps({"vocab": vocab, "eos": EOS, "unk": UNK}))
    return out_dir


@dataclass
class TrigramModel:
    vocab: list[str]
    index: dict[str, int]
    unigram_best: int
    bigram_best: dict[int, list[int]]  # previous token -> next tokens, most frequent first
    trigram_best: dict[tuple[int, int], list[int]]

    @classmethod
    def load(cls, model_dir: Path) -> TrigramModel:
        weights, tokenizer = model_dir / WEIGHTS, model_dir / TOKENIZER
        for path in (weights, tokenizer):
            if not path.is_file():
                raise ModelError(f"{path} is missing: mount the trained model at MODEL_PATH")
        try:
            tensors = load_file(str(weights))
            vocab = json.loads(tokenizer.read_text())["vocab"]
        except Exception as exc:  # any corruption is a load failure, reported as such
            raise ModelError(f"cannot read the model in {model_dir}: {exc}") from None
        expected = {"unigram", "bigram_index", "bigram_count", "trigram_index", "trigram_count"}
        if set(tensors) != expected:
            raise ModelError(f"{weights}: tensors {sorted(tensors)}, expected {sorted(expected)}")
        size = len(vocab)
        if tensors["unigram"].shape != (size,):
            raise ModelError(f"{weights}: unigram has {tensors['unigram'].shape[0]} entries, "
                             f"the tokenizer {size}")  # fmt: skip
        for name in ("bigram_index", "trigram_index"):
            if tensors[name].size and (tensors[name].min() < 0 or tensors[name].max() >= size):
                raise ModelError(f"{weights}: {name} points outside the vocabulary")
        return cls(
            vocab=vocab,
            index={token: i for i, token in enumerate(vocab)},
            unigram_best=int(np.argmax(tensors["unigram"][2:]) + 2),
            bigram_best=_ranked(tensors["bigram_index"], tensors["bigram_count"], 1),
            trigram_best={
                (k[0], k[1]): v
                for k, v in _ranked(tensors["trigram_index"], tensors["trigram_count"], 2).items()
            },
        )

    def generate(
        self, prompt: str, max_tokens: int, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        """Next tokens after ``prompt``: greedy at temperature 0, else sampled from the top 3."""
        rng = np.random.default_rng(seed)
        context = [self.index.get(t, 0) for t in tokenize(prompt)] or [self.index[EOS]]
        out: list[str] = []
        for _ in range(max_tokens):
            candidates = (
                self.trigram_best.get(tuple(context[-2:]))  # type: ignore[arg-type]
                if len(context) >= 2
                else None
            ) or self.bigram_best.get(context[-1]) or [self.unigram_best]
            if temperature > 0 and len(candidates) > 1:
                choice = candidates[int(rng.integers(0, min(3, len(candidates))))]
            else:
                choice = candidates[0]
            token = self.vocab[choice]
            if token == EOS:
                break
            out.append(token)
            context.append(choice)
        return out


def _ranked(index: np.ndarray, count: np.ndarray, width: int) -> dict:  # type: ignore[type-arg]
    table: dict = {}  # type: ignore[type-arg]
    order = np.lexsort((-count, *index.T[::-1]))  # by key, then most frequent first
    for row in order:
        key = tuple(int(v) for v in index[row][:width])
        table.setdefault(key if width > 1 else key[0], []).append(int(index[row][width]))
    return table
