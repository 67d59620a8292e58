"""The console's segments page."""
