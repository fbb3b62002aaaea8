"""Measuring: FROC/CPM and AUC (``metrics``), the nodule model (``evaluate``), paired comparisons
(``compare``), proposal recall, plots and the model card. Never imports ``engine``: the trainers
use these measures, not the other way round."""
