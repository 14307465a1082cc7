"""Database state shared by every worker process and host.

The models themselves live on disk and in each process's memory; the database
holds only what processes must agree on (each app's generation and pinned
version) and the reload history.
"""
from django.conf import settings
from django.db import models


class ModelApp(models.Model):
    """One model app. ``generation`` rises with every accepted reload, pin or upload."""

    name = models.SlugField(max_length=64, unique=True)
    generation = models.PositiveBigIntegerField(default=0)
    pinned_version = models.CharField(max_length=64, blank=True, default="",
                                      help_text="Version served regardless of policy; empty = manifest policy.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "model app"

    def __str__(self):
        return self.name


class ReloadEvent(models.Model):
    """One attempted reload of one app in one process."""

    class Trigger(models.TextChoices):
        API = "api"
        ADMIN = "admin"
        SYNC = "sync"
        POLL = "poll"
        STARTUP = "startup"
        UPLOAD = "upload"

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed"

    app = models.ForeignKey(ModelApp, on_delete=models.CASCADE, related_name="reload_events")
    from_version = models.CharField(max_length=64, blank=True, default="")
    to_version = models.CharField(max_length=64, blank=True, default="")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(default=0.0)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["app", "-created_at"])]

    def __str__(self):
        return f"{self.app} {self.from_version or '-'} -> {self.to_version or '-'} ({self.status})"
