"""Measuring: FROC/CPM and AUC (``metrics``), the nodule model (``evaluate``), the whole cascade as
the app runs it (``evaluate_cascade``), paired comparisons (``compare``), proposal recall, plots and
the model card."""
