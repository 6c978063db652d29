"""Baselines that need no model: the nearest support reply (retrieval) and the support replies themselves.

    >>> retrieve(["hi there", "what is AI?"], ["hello!", "AI is ..."], ["what's AI"])    # ["AI is ..."]
"""
from __future__ import annotations


def retrieve(support_prompts: list[str], support_replies: list[str], prompts: list[str]) -> list[str]:
    """For each prompt, the reply of the support prompt most similar to it: cosine of character 1-3-gram TF-IDF
    vectors fitted on the support prompts (ties: the first support exchange)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3))
    try:
        s = vec.fit_transform(support_prompts)
    except ValueError:  # no character n-gram at all (e.g. empty prompts): every prompt gets the first reply
        return [support_replies[0] for _ in prompts]
    sims = (vec.transform(prompts) @ s.T).toarray()  # rows are l2-normalised: cosine
    return [support_replies[int(row.argmax())] for row in sims]


def support_copy(support_replies: list[str], n: int) -> list[str]:
    """n replies cycling through the support replies: the reference row of a model that only copies."""
    return [support_replies[i % len(support_replies)] for i in range(n)]
