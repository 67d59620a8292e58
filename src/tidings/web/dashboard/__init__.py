"""The console's dashboard page."""
