"""Dialogue: a topic is a task, a few of its exchanges the support set (docs/dialogue.md).

    data.py       conversations: the chatterbot corpus from its installed package, a user's YAML / JSON lines files
    tokens.py     UTF-8 bytes as symbols, fixed lengths with padding
    tasks.py      the protocol: topic filter, split of whole topics, held-out parts, the training task sampler
    models.py     the reply generator (byte GRU encoder-decoder, straight-through Gumbel sampling) and the
                  (prompt, reply) discriminator
    problem.py    the two as a problem behind the meta-learners' protocol (metagan.meta runs them unchanged)
    train.py      meta-training with exact resume, checkpoints, adaptation to a topic, likelihoods, replies
    metrics.py    BLEU and chrF (sacrebleu), distinct-n, self-BLEU, copy rate, character n-gram classifiers
    baselines.py  retrieval of the nearest support reply, support copies
    suite.py      `metagan benchmark --suite dialogue`
    reply.py      a topic's exchanges in, replies to new prompts out (`metagan reply`)
"""
