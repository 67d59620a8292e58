"""The console's members page."""
