"""Model runtime: loading, versioning, batching and inference, free of Django.

Nothing below this package imports django; a test holds it to that.
"""
