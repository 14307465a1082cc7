"""Template filters of the web page."""

from django import template

register = template.Library()


@register.filter
def tensor(spec: dict) -> str:
    """``{"name", "dtype", "shape"}`` as ``image:float32[?,28,28,1]`` (``?``: any length, ``[?...]``: any rank)."""
    shape = "?..." if spec["shape"] is None else ",".join("?" if d is None else str(d) for d in spec["shape"])
    return f"{spec['name']}:{spec['dtype']}[{shape}]"
