"""The `taskmaster` command: a thin door over the services."""
