"""The web page for people: the apps, a form to try them, and (for staff) reloads."""
