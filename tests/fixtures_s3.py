"""Fixtures for S3 tests: a moto server on 127.0.0.1 and the real aioboto3 client (filled by the S3 work)."""
