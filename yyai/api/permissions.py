"""Who may predict: the YYAI_PREDICT_PERMISSION setting (any | authenticated | staff)."""
from rest_framework.permissions import BasePermission

from yyai.conf import yyai_settings


class CanPredict(BasePermission):
    message = "predicting on this server needs a login (YYAI_PREDICT_PERMISSION)"

    def has_permission(self, request, view) -> bool:
        rule = yyai_settings.PREDICT_PERMISSION
        if rule == "any":
            return True
        user = request.user
        if rule == "authenticated":
            return bool(user and user.is_authenticated)
        return bool(user and user.is_staff)
