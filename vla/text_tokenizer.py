"""A word-level text tokenizer trained on the task instructions and subtask phrases.

No download: it is built from the dataset's own text and saved with the checkpoint as a
Hugging Face `tokenizer.json`. Words it has never seen map to [UNK]. Ids 0..n-1 are
text; the model appends its action ids after them.
"""

from __future__ import annotations

import re
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[SEP]")
PAD, UNK, BOS, SEP = range(len(SPECIAL_TOKENS))
FILE_NAME = "tokenizer.json"
_WORD = re.compile(r"\w+|[^\w\s]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class WordTokenizer:
    def __init__(self, hf_tokenizer):
        self._tok = hf_tokenizer

    @staticmethod
    def train(texts: list[str]) -> "WordTokenizer":
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel

        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
        for text in texts:
            for word in words(text):
                vocab.setdefault(word, len(vocab))
        return WordTokenizer(_with_pre_tokenizer(Tokenizer(WordLevel(vocab, unk_token="[UNK]"))))

    def extended(self, texts: list[str]) -> "WordTokenizer":
        """This tokenizer with the words of `texts` it does not know appended (old ids unchanged)."""
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel

        vocab = dict(self._tok.get_vocab())
        for text in texts:
            for word in words(text):
                vocab.setdefault(word, len(vocab))
        return WordTokenizer(_with_pre_tokenizer(Tokenizer(WordLevel(vocab, unk_token="[UNK]"))))

    def known(self, word: str) -> bool:
        return self._tok.token_to_id(word) is not None

    @staticmethod
    def load(directory: str | Path) -> "WordTokenizer":
        from tokenizers import Tokenizer

        path = Path(directory) / FILE_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the checkpoint has no text tokenizer")
        try:
            return WordTokenizer(Tokenizer.from_file(str(path)))
        except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception on a file it cannot parse
            raise ValueError(f"{path} is corrupt or from another version: {error}") from error

    def save(self, directory: str | Path) -> None:
        self._tok.save(str(Path(directory) / FILE_NAME))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def prompt_ids(self, instruction: str, subtask: str = "") -> list[int]:
        """[BOS] instruction [SEP] subtask [SEP]"""
        return [BOS, *self.encode(instruction), SEP, *self.encode(subtask), SEP]


def _with_pre_tokenizer(tokenizer):
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer.normalizer = Lowercase()
    tokenizer.pre_tokenizer = Whitespace()  # \w+ | [^\w\s]+, as `words` splits
    return tokenizer
