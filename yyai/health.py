"""Probes: /healthz (the process answers) and /readyz (every app has an AVAILABLE version)."""
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from yyai.runtime.servable import State
from yyai.serving import get_registry


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    states = {u.name: u.state.value for u in get_registry().all()}
    waiting = sorted(name for name, state in states.items() if state != State.AVAILABLE.value)
    body = {"ready": not waiting, "apps": states}
    if waiting:
        body["waiting_for"] = waiting
    return JsonResponse(body, status=200 if not waiting else 503)
