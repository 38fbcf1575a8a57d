"""Fixtures for TMDB tests: the local aiohttp TMDB stand-in (filled by the extractor work)."""
