"""Django admin: model apps with their live state and a reload action, and the reload history."""
from django.contrib import admin, messages

from yyai import services
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import ServingError
from yyai.serving import get_registry


@admin.register(ModelApp)
class ModelAppAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "version", "generation", "pinned_version", "last_error", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "generation", "state", "version", "models", "last_error", "created_at", "updated_at"]
    fields = readonly_fields[:2] + ["pinned_version"] + readonly_fields[2:]
    actions = ["reload_apps"]

    def _status(self, obj) -> dict:
        """The app's runtime status, read once per row (status() scans the app folder)."""
        if not hasattr(obj, "_runtime_status"):
            try:
                obj._runtime_status = get_registry().get(obj.name).status()
            except ServingError as exc:
                obj._runtime_status = {"state": "MISSING", "version": None, "models": [], "last_error": exc.message}
        return obj._runtime_status

    @admin.display(description="state (this process)")
    def state(self, obj):
        return self._status(obj)["state"]

    @admin.display(description="serving version")
    def version(self, obj):
        return self._status(obj)["version"] or "-"

    @admin.display(description="models")
    def models(self, obj):
        return ", ".join(f"{m['name']} ({m['params']} params)" for m in self._status(obj)["models"]) or "-"

    @admin.display(description="last error")
    def last_error(self, obj):
        return self._status(obj)["last_error"] or ""

    @admin.action(description="Reload selected apps from disk")
    def reload_apps(self, request, queryset):
        for app in queryset:
            try:
                report = services.reload_app(app=app.name, user=request.user, trigger=ReloadEvent.Trigger.ADMIN)
            except ServingError as exc:
                self.message_user(request, f"{app.name}: reload failed, old version keeps serving: {exc.message}",
                                  messages.ERROR)
            else:
                self.message_user(request, f"{app.name}: {report.old_version or '-'} -> {report.new_version} "
                                           f"in {report.load_seconds * 1000:.0f} ms", messages.SUCCESS)

    def get_queryset(self, request):
        services.sync_apps(names=get_registry().names())
        return super().get_queryset(request)


@admin.register(ReloadEvent)
class ReloadEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "app", "from_version", "to_version", "trigger", "status", "user", "duration_ms",
                    "host", "pid"]
    list_filter = ["status", "trigger", "app", "created_at"]
    search_fields = ["app__name", "error", "host"]
    readonly_fields = [f.name for f in ReloadEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
