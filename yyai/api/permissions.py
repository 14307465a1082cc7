"""Who may predict (the YYAI_PREDICT_PERMISSION setting: any | authenticated | staff), and who may change
users and groups (superusers only)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

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


class StaffReadsSuperuserWrites(BasePermission):
    """Users and groups: staff may read them; only a superuser may create, change or delete one, so nobody
    without every right can give rights (``is_staff``, groups) or take them from others (Django's admin agrees:
    yyai/admin.py)."""

    message = "only a superuser may change users and groups"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_staff):
            return False
        return request.method in SAFE_METHODS or user.is_superuser
