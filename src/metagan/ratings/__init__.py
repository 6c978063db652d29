"""Cold-start recommendation: a user is a task, their first ratings the support set (docs/recommendation.md).

    data.py       interaction files: MovieLens-100K from the RecBole wheel, GroupLens zips, folders of any such file
    tasks.py      the protocol: user filter, 8:1:1 split, support = earlier interactions, query = the latest 10
    models.py     CFGAN-style generator and discriminator over item vectors; MeLU's estimator
    problem.py    the two as problems behind the meta-learners' protocol (metagan.meta runs them unchanged)
    train.py      meta-training, checkpoints, adaptation to users
    metrics.py    nDCG@k, MRR@5, hit rate, MAE
    baselines.py  random, popularity, item mean, matrix factorisation, generator-augmented MF
    suite.py      `metagan benchmark --suite movielens-100k`
    recommend.py  one user's ratings in, top-N items out (`metagan recommend`)
"""
