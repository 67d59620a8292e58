"""Signing in and out, and choosing the console's language."""
