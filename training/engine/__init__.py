"""Fitting: the nodule model (``train``), the proposal re-ranker (``train_reranker``), the proposal
ranker (``fit_ranker``), and the cascade as the app runs it: measured on held-out sets
(``evaluate_cascade``, built on the re-ranker trainer's pipeline) and its settings re-chosen
(``recalibrate``)."""
