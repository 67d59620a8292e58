"""tidings: a self-hosted SMS member-engagement platform for retailers."""

__version__ = "0.1.0"
