"""``tmdb-trending``: the extractor, its HTTP client, the shared rate limiter and progress."""
