"""Who may predict: the YYAI_PREDICT_PERMISSION setting (any | authenticated | staff)."""
from django.conf import settings
from rest_framework.permissions import BasePermission


class CanPredict(BasePermission):
    message = "predicting on this server needs a login (YYAI_PREDICT_PERMISSION)"

    def has_permission(self, request, view) -> bool:
        rule = settings.YYAI_PREDICT_PERMISSION
        if rule == "any":
            return True
        user = request.user
        if rule == "authenticated":
            return bool(user and user.is_authenticated)
        return bool(user and user.is_staff)
