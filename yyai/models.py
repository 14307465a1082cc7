"""Database state shared by every worker process and host.

The models themselves live on disk and in each process's memory; the database
holds what processes must agree on (each app's generation, target version and
pin), what each serving process reports (its heartbeats) and the reload history.
"""

from django.conf import settings
from django.db import models


class ModelApp(models.Model):
    """One model app. ``generation`` rises with every accepted reload, pin or upload that changes the target.

    ``labels`` name more versions every process serves besides the target (``canary_percent`` of the requests
    naming no version go to the one labelled ``canary``).

    ``target_version`` is what every serving process must load, exactly: a
    version number, or a flat layout's snapshot id; empty until a process first
    loads the app, and once it is removed. ``removed_at``: a reload found the app
    gone from the repository, and every process unloads it; the row stays for
    its history, and a reload of the app brought back revives it.
    """

    name = models.SlugField(max_length=64, unique=True)
    generation = models.PositiveBigIntegerField(default=0)
    target_version = models.CharField(
        max_length=64, blank=True, default="", help_text="The version every process serves: a number or a snapshot id."
    )
    pinned_version = models.CharField(
        max_length=64, blank=True, default="", help_text="Version served regardless of policy; empty = manifest policy."
    )
    removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a reload found the app gone from the repository."
    )
    labels = models.JSONField(
        default=dict, blank=True, help_text='Version labels, {"canary": "4"}: every process serves these versions too.'
    )
    canary_percent = models.PositiveSmallIntegerField(
        default=0, help_text="The share of requests naming no version that go to the version labelled canary."
    )
    canary_header = models.CharField(
        max_length=64, blank=True, default="", help_text="Requests with this header stick to one side of the split."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model app"

    def __str__(self):
        return self.name


class ReloadEvent(models.Model):
    """One attempted reload of one app in one process, from the moment it starts loading."""

    class Trigger(models.TextChoices):
        API = "api"
        ADMIN = "admin"
        SYNC = "sync"
        POLL = "poll"
        UPLOAD = "upload"
        STARTUP = "startup"

    class Status(models.TextChoices):
        RUNNING = "running"  # written before the load: a process killed mid-way leaves it visible
        OK = "ok"
        FAILED = "failed"
        INTERRUPTED = "interrupted"  # its process stopped before it finished (found at the next start)

    app = models.ForeignKey(ModelApp, on_delete=models.CASCADE, related_name="reload_events")
    from_version = models.CharField(max_length=64, blank=True, default="")
    to_version = models.CharField(max_length=64, blank=True, default="")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    note = models.TextField(blank=True, default="", help_text="Why, when the server chose the version itself.")
    duration_ms = models.FloatField(default=0.0)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["app", "-created_at"])]

    def __str__(self):
        return f"{self.app} {self.from_version or '-'} -> {self.to_version or '-'} ({self.status})"


class ServingProcess(models.Model):
    """One serving process, live while ``seen_at`` is recent: what a reload counts, whether or not the process
    has ever loaded the app (one that has not lags)."""

    process = models.CharField(max_length=32, unique=True, help_text="A random id of the process, new at each start.")
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField(db_index=True)
    rss_bytes = models.PositiveBigIntegerField(default=0, help_text="Resident memory of the process.")
    pss_bytes = models.PositiveBigIntegerField(
        default=0, help_text="Proportional share of memory: shared pages divided among the processes sharing them."
    )

    class Meta:
        ordering = ["host", "pid"]
        verbose_name = "serving process"

    def __str__(self):
        return f"{self.host}:{self.pid}"


class Heartbeat(models.Model):
    """What one serving process serves of one app, written on change and every few seconds (never per request).

    A process is live while its ``seen_at`` is recent (``YYAI_PROCESS_TIMEOUT_SECONDS``).
    """

    process = models.CharField(max_length=32, help_text="A random id of the process, new at each start.")
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    app = models.ForeignKey(ModelApp, on_delete=models.CASCADE, related_name="heartbeats")
    version = models.CharField(max_length=64, blank=True, default="")
    generation = models.PositiveBigIntegerField(default=0, help_text="The newest generation this process applied.")
    error = models.TextField(blank=True, default="", help_text="Why the target could not be loaded here, if so.")
    also = models.CharField(
        max_length=1024, blank=True, default="", help_text="The labelled versions served here too, comma-separated."
    )
    resident = models.BooleanField(
        default=True, help_text="Its models are loaded; false: on standby under the memory budget."
    )
    memory_bytes = models.PositiveBigIntegerField(default=0, help_text="What its loaded version measured at load.")
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["process", "app"], name="one_heartbeat_per_process_app")]
        ordering = ["app", "host", "pid"]

    def __str__(self):
        return f"{self.app} @ {self.host}:{self.pid} = {self.version or '-'}"
