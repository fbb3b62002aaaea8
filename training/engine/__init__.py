"""Fitting: the nodule model (``train``), the proposal re-ranker (``train_reranker``), the proposal
ranker (``fit_ranker``) and the cascade's settings (``recalibrate``)."""
