"""The server-rendered pages. Thin: read through visibility, write through the services."""
