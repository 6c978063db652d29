"""Metrics of generated replies: BLEU and chrF (sacrebleu), distinct-n, self-BLEU, copy rate, and the character
n-gram classifiers behind topic fidelity and language identification.

Tokens: scripts written without spaces between words (Chinese, Japanese, Thai) are tokenized by character
(sacrebleu's "char"); the others by sacrebleu's default "13a" word tokenizer. BLEU, distinct-n and self-BLEU use
the same tokens; chrF reads characters in every script.

    >>> bleu(["the cat sat"], ["the cat sat down"], "english")       # corpus BLEU, 0-100
    >>> distinct(["a b a", "a c"], 1, "english")                      # 3 distinct / 5 unigrams = 0.6
"""
from __future__ import annotations

import math

from ..errors import ConfigError

CHAR_SCRIPTS = {"chinese", "traditionalchinese", "japanese", "thai"}


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise ConfigError("the dialogue metrics need sacrebleu: pip install -e \".[dialogue]\"") from None
    return sacrebleu


def tokenizer_of(language: str) -> str:
    return "char" if language in CHAR_SCRIPTS else "13a"


def tokens(text: str, language: str) -> list[str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_char import TokenizerChar

    tok = TokenizerChar() if language in CHAR_SCRIPTS else Tokenizer13a()
    return tok(text).split()


def bleu(hyps: list[str], refs: list[str], language: str) -> float:
    """Corpus BLEU (0-100) of hyps against one reference each (sacrebleu, exponential smoothing)."""
    return float(_sacrebleu().corpus_bleu(hyps, [refs], tokenize=tokenizer_of(language)).score)


def chrf(hyps: list[str], refs: list[str]) -> float:
    """Corpus chrF (0-100): character n-gram F-score, script-independent."""
    return float(_sacrebleu().corpus_chrf(hyps, [refs]).score)


def distinct(hyps: list[str], n: int, language: str) -> float:
    """Distinct n-grams over all n-grams of the replies (0 when there are none)."""
    grams = [tuple(t[i:i + n]) for h in hyps for t in [tokens(h, language)] for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(hyps: list[str], language: str) -> float:
    """Mean sentence BLEU (0-100) of each reply against the other replies as references (higher: less diverse);
    NaN with fewer than 2 replies."""
    if len(hyps) < 2:
        return math.nan
    sb = _sacrebleu()
    scores = [sb.sentence_bleu(h, hyps[:i] + hyps[i + 1:], tokenize=tokenizer_of(language)).score
              for i, h in enumerate(hyps)]
    return float(sum(scores) / len(scores))


def copy_rate(hyps: list[str], support_replies: list[str]) -> float:
    """Share of replies equal (after stripping) to one of the support replies."""
    seen = {s.strip() for s in support_replies}
    return sum(h.strip() in seen for h in hyps) / len(hyps) if hyps else 0.0


class TextClassifier:
    """Character 1-4-gram TF-IDF (within word boundaries) and logistic regression: texts -> labels."""

    def __init__(self, texts: list[str], labels: list[str], seed: int = 0):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise ConfigError("a classifier needs texts of at least two labels")
        self.vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=1)
        x = self.vec.fit_transform(texts)
        self.clf = LogisticRegression(max_iter=2000, C=10.0, random_state=seed).fit(x, labels)

    def predict(self, texts: list[str]) -> list[str]:
        return list(self.clf.predict(self.vec.transform(texts))) if texts else []

    def accuracy(self, texts: list[str], label: str) -> float:
        """Share of texts assigned `label`."""
        pred = self.predict(texts)
        return sum(p == label for p in pred) / len(pred) if pred else 0.0
