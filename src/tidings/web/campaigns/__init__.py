"""The console's campaigns page."""
