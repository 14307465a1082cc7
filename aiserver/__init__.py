"""aiserver: the Django project (settings, URLs, WSGI/ASGI, gunicorn configuration)."""
