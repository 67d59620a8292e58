"""The console's settings page."""
