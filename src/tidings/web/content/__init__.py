"""The console's template editor page."""
