"""Transformers: raw pages into the cleaned schema (``standardize``)."""
