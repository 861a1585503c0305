"""trainwatch: a live terminal monitor for LLM training runs."""

__version__ = "0.1.0"
