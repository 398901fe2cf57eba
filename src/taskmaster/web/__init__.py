"""The dashboard door: server-rendered pages (Jinja2 + htmx, assets vendored in the package) over the services."""
