"""Scoring news for sentiment: a transformers model when one is configured, a lexicon otherwise."""
