"""Read-side and maintenance commands over a configured lake: ``history``, ``ddl``, ``repair``, ``reprocess``."""
