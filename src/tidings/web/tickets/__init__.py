"""The console's tickets page."""
