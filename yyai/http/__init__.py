"""The HTTP front of the server: the ASGI front and its lean predict path, the probes, Django's middleware and
the per-request context."""
