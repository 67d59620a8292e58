"""The web console: server-rendered pages (Jinja2 + htmx), one folder per page."""
