"""Extractors: where pages come from (``tmdb-trending``, ``replay``)."""
