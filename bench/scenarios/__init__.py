"""One module per scenario; each has a `run()` that prints its figures."""
