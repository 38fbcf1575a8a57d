"""Reporters: what a committed day is told as (``markdown``, ``github-summary``, ``json``)."""
