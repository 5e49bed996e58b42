"""The operator console: server-rendered pages (Jinja2, for operator pages only: messages are Liquid), plain
JavaScript and CSS served from ``static/``, no build step and nothing fetched from elsewhere at runtime."""
