"""The console's triggers page."""
