"""Data phase: the sample corpus, dataset readers, frame extraction, splits, balance, frame datasets."""
