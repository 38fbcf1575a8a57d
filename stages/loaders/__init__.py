"""Loaders: where cleaned days are committed (``local``, ``s3``)."""
