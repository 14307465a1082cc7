"""Django admin: model apps with their live state and a reload action, and the reload history."""

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from yyai import services
from yyai.api.exceptions import json_error
from yyai.auth import client_of, locked_for
from yyai.fleet import heartbeats
from yyai.fleet.process_registry import get_registry
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import ServingError
from yyai.templatetags.yyai_tags import tensor

ROUTE_FIELDS = ("labels", "canary_percent", "canary_header")


@admin.register(ModelApp)
class ModelAppAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "state",
        "version",
        "target_version",
        "generation",
        "pinned_version",
        "routes",
        "memory",
        "live_processes",
        "last_error",
        "updated_at",
    ]
    search_fields = ["name"]
    readonly_fields = [
        "name",
        "generation",
        "target_version",
        "state",
        "version",
        "models",
        "memory",
        "live_processes",
        "last_error",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields[:2] + ["pinned_version", *ROUTE_FIELDS] + readonly_fields[2:]
    actions = ["reload_apps", "promote_canaries", "roll_back_canaries"]

    def save_model(self, request, obj, form, change):
        """Labels and the canary share change through the service: every labelled version loaded here first,
        then every process, waited for (a raw save would skip both)."""
        routes = {field: form.cleaned_data[field] for field in ROUTE_FIELDS}
        if change and any(field in form.changed_data for field in ROUTE_FIELDS):
            try:
                outcome = services.set_routes(
                    app=obj.name, user=request.user, trigger=ReloadEvent.Trigger.ADMIN, **routes
                )
            except ServingError as exc:
                self.message_user(request, f"{obj.name}: labels not changed: {exc.message}", messages.ERROR)
            else:
                self._told(request, obj.name, "labels set", outcome.fleet)
            obj.refresh_from_db(fields=ROUTE_FIELDS)
        obj.save(update_fields=["pinned_version", "updated_at"] if change else None)

    @admin.display(description="labels, canary")
    def routes(self, obj):
        labels = ", ".join(f"{k}={v}" for k, v in sorted(obj.labels.items())) or "-"
        return labels + (f"; canary {obj.canary_percent}%" if obj.canary_percent else "")

    @admin.action(description="Promote the canary of the selected apps")
    def promote_canaries(self, request, queryset):
        self._each_canary(
            request, queryset, lambda **kw: services.promote(**kw)[1], "promoted {target}", "not promoted"
        )

    @admin.action(description="Roll back the canary of the selected apps")
    def roll_back_canaries(self, request, queryset):
        self._each_canary(request, queryset, services.roll_back, "canary rolled back", "not rolled back")

    def _each_canary(self, request, queryset, change, done: str, refused: str) -> None:
        """``change`` (a canary service) on each selected app, each outcome told (``done`` may name the
        ``{target}``)."""
        for app in queryset:
            try:
                outcome = change(app=app.name, user=request.user, trigger=ReloadEvent.Trigger.ADMIN)
            except ServingError as exc:
                self.message_user(request, f"{app.name}: {refused}: {exc.message}", messages.ERROR)
            else:
                self._told(request, app.name, done.format(target=outcome.target), outcome.fleet)

    def _told(self, request, app: str, done: str, fleet) -> None:
        if fleet.converged:
            self.message_user(request, f"{app}: {done}; every process serves it", messages.SUCCESS)
        else:
            lagging = "; ".join(
                f"{p['host']}:{p['pid']} serves {p['version'] or 'nothing'}"
                + (f" ({p['error']})" if p["error"] else "")
                for p in fleet.lagging
            )
            self.message_user(request, f"{app}: {done}; not every process serves it yet: {lagging}", messages.WARNING)

    def get_queryset(self, request):
        """The apps in the repository: a removed app's row stays for its history (the reload events) only."""
        return super().get_queryset(request).filter(removed_at__isnull=True)

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

    @admin.display(description="models (inputs -> outputs)")
    def models(self, obj):
        return (
            "; ".join(
                f"{m['name']} ({m['format']}, {m['params']} params): {', '.join(map(tensor, m['inputs']))} -> "
                f"{', '.join(map(tensor, m['outputs']))}"
                for m in self._status(obj)["models"]
            )
            or "-"
        )

    @admin.display(description="memory (this process)")
    def memory(self, obj):
        status = self._status(obj)
        memory = status.get("memory")
        if not memory or not (memory["resident"] or status["state"] == "STANDBY"):
            return "-"
        held = f"{memory['bytes'] / 2**20:.1f} MiB" if memory["resident"] else "standby (loads on demand)"
        priority = f", priority {memory['priority']}" if memory["priority"] else ""
        return held + (", pinned" if memory["pinned"] else "") + priority

    @admin.display(description="processes (live)")
    def live_processes(self, obj):
        rows = heartbeats.processes(obj.name)
        return (
            "; ".join(
                f"{p['host']}:{p['pid']} {p['version'] or '-'} (gen {p['generation']}"
                + ("" if p["resident"] or not p["version"] else ", standby")
                + f", process {p['pss_bytes'] / 2**20:.0f} MiB PSS)"
                + (f" error: {p['error']}" if p["error"] else "")
                for p in rows
            )
            or "-"
        )

    @admin.display(description="last error")
    def last_error(self, obj):
        return self._status(obj)["last_error"] or ""

    @admin.action(description="Reload selected apps from disk")
    def reload_apps(self, request, queryset):
        for app in queryset:
            try:
                outcome = services.reload_app(app=app.name, user=request.user, trigger=ReloadEvent.Trigger.ADMIN)
            except ServingError as exc:
                self.message_user(
                    request, f"{app.name}: reload failed, old version keeps serving: {exc.message}", messages.ERROR
                )
                continue
            report, fleet = outcome.report, outcome.fleet
            if outcome.removed:
                self.message_user(
                    request,
                    f"{app.name}: gone from the repository; removed from every process",
                    messages.WARNING if not fleet.converged else messages.SUCCESS,
                )
                continue
            done = f"{report.old_version or '-'} -> {report.new_version} in {report.load_seconds * 1000:.0f} ms"
            self._told(request, app.name, done, fleet)


@admin.register(ReloadEvent)
class ReloadEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "app",
        "from_version",
        "to_version",
        "trigger",
        "status",
        "user",
        "duration_ms",
        "host",
        "pid",
        "note",
    ]
    list_filter = ["status", "trigger", "app", "created_at"]
    search_fields = ["app__name", "error", "note", "host"]
    readonly_fields = [f.name for f in ReloadEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SuperuserWrites:
    """Users and groups change only by a superuser's hand (the API's rule too: yyai.api.permissions), so no
    staff member, whatever permissions they hold, can lock a superuser out or give anyone (themselves
    included) a right; staff with the view permission still see them."""

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class SafeUserAdmin(SuperuserWrites, UserAdmin):
    pass


class SafeGroupAdmin(SuperuserWrites, GroupAdmin):
    pass


for _model, _admin in ((User, SafeUserAdmin), (Group, SafeGroupAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, _admin)


def _locked_out_login(login):
    """The admin's login view, answering 429 while failed logins lock the user or the address out."""

    def view(request, extra_context=None):
        if request.method == "POST":
            wait = locked_for(request.POST.get("username"), client_of(request))
            if wait is not None:
                return json_error(
                    "too many failed logins for this user or from this address; try again later",
                    "throttled",
                    429,
                    {"Retry-After": str(int(wait) + 1)},
                )
        return login(request, extra_context)

    return view


admin.site.login = _locked_out_login(admin.site.login)
