"""Shared test helpers: stage fakes, the TMDB stand-in, fault injection, S3 and TMDB fixtures, lake and CLI helpers."""
