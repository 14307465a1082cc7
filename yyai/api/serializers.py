"""DRF serializers: the shapes of what the API reads and writes."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from rest_framework import serializers
from rest_framework.reverse import reverse

from yyai.models import ReloadEvent


class TensorSerializer(serializers.Serializer):
    """One input or output of a model's served signature; ``null`` dimensions take any length."""

    name = serializers.CharField()
    dtype = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField(allow_null=True), allow_null=True)


class ModelSerializer(serializers.Serializer):
    """One loaded model of the serving version: its served signature, inputs and outputs."""

    name = serializers.CharField()
    format = serializers.CharField(help_text="keras, saved_model, or tf1_session (a TF1 graph in its own session)")
    signature = serializers.CharField()
    batched = serializers.BooleanField(help_text="false: served one request at a time")
    inputs = TensorSerializer(many=True)
    outputs = TensorSerializer(many=True)
    signatures = serializers.ListField(child=serializers.CharField())
    params = serializers.IntegerField()
    load_ms = serializers.FloatField()
    warmup_ms = serializers.FloatField()
    memory_bytes = serializers.IntegerField(help_text="What loading and warming it up took, at least its file size.")


class HandlerSerializer(serializers.Serializer):
    """The serving version's handler (docs/handlers.md): its file and the hooks it defines."""

    file = serializers.CharField()
    hooks = serializers.ListField(child=serializers.CharField())


class VersionSerializer(serializers.Serializer):
    """One version found on disk, with its state in this process."""

    version = serializers.CharField()
    state = serializers.CharField()
    complete = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)
    files = serializers.ListField(child=serializers.CharField())


class ProcessSerializer(serializers.Serializer):
    """One live serving process (worker or host) and what it serves of the app."""

    host = serializers.CharField()
    pid = serializers.IntegerField()
    version = serializers.CharField(allow_blank=True)
    generation = serializers.IntegerField()
    seen_at = serializers.DateTimeField()
    error = serializers.CharField(allow_null=True, help_text="Why this process could not load the target.")
    also = serializers.ListField(child=serializers.CharField(), help_text="The labelled versions it serves too.")
    resident = serializers.BooleanField(help_text="false: on standby under the memory budget; loads on demand.")
    memory_bytes = serializers.IntegerField(help_text="What the app's loaded version holds in this process.")
    rss_bytes = serializers.IntegerField(help_text="Resident memory of the whole process.")
    pss_bytes = serializers.IntegerField(help_text="Its proportional share: shared pages divided among processes.")


class MemorySerializer(serializers.Serializer):
    """The app under this process's memory budget (YYAI_MEMORY_BUDGET; app.toml [memory])."""

    bytes = serializers.IntegerField(help_text="What its loaded version measured at load; 0 on standby.")
    resident = serializers.BooleanField(help_text="false: on standby, loaded again by its next request.")
    pinned = serializers.BooleanField(help_text="Always loaded, never unloaded to make room.")
    priority = serializers.IntegerField(help_text="Higher: loaded first at start-up, unloaded last.")


class AppSerializer(serializers.Serializer):
    """A model app as this process serves it. The instance is ``selectors.app_status()``'s dict."""

    name = serializers.CharField()
    url = serializers.SerializerMethodField()
    state = serializers.CharField()
    version = serializers.CharField(allow_null=True)
    pinned = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField()
    target_version = serializers.CharField(allow_null=True, help_text="The version every process must serve.")
    degraded = serializers.BooleanField(help_text="Some live process serves another version, or failed to load it.")
    processes = ProcessSerializer(many=True, help_text="The live serving processes, from their heartbeats.")
    description = serializers.CharField(allow_blank=True)
    demo = serializers.BooleanField()
    models = ModelSerializer(many=True)
    handler = HandlerSerializer(allow_null=True, help_text="Python hooks from the operator's disk, if the app has any.")
    versions = VersionSerializer(many=True)
    last_error = serializers.CharField(allow_null=True)
    memory = MemorySerializer()
    routes = serializers.DictField(help_text="Version labels, the canary share and its sticky header.")
    predict_url = serializers.SerializerMethodField()
    reload_url = serializers.SerializerMethodField()

    def _url(self, view: str, name: str) -> str:
        return reverse(view, kwargs={"app": name}, request=self.context.get("request"))

    def get_url(self, obj) -> str:
        return self._url("app-detail", obj["name"])

    def get_predict_url(self, obj) -> str:
        return self._url("app-predict", obj["name"])

    def get_reload_url(self, obj) -> str:
        return self._url("app-reload", obj["name"])


class RoutesRequestSerializer(serializers.Serializer):
    """Body of POST labels: version labels and the canary share (each optional: what is left out is kept)."""

    labels = serializers.DictField(
        child=serializers.CharField(max_length=64),
        required=False,
        help_text='label -> version ({"stable": "3", "canary": "4"}); every process serves these versions too. '
        "{} removes every label.",
    )
    canary_percent = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text="Requests naming no version that go to the canary."
    )
    canary_header = serializers.CharField(
        max_length=64, allow_blank=True, required=False, help_text="Requests with this header stick to one side."
    )


class ReloadRequestSerializer(serializers.Serializer):
    """Body of POST reload: optional version pin and whether to wait for a running reload."""

    version = serializers.RegexField(
        r"^(\d{1,18}|latest|[0-9a-f]{12})$", required=False, help_text='A version number to pin, or "latest" to unpin.'
    )
    wait = serializers.BooleanField(default=True, help_text="false: answer 409 if a reload is already running.")

    def to_internal_value(self, data):
        if hasattr(data, "get") and isinstance(data.get("version"), int) and not isinstance(data["version"], bool):
            data = {**data, "version": str(data["version"])}
        return super().to_internal_value(data)


class UploadSerializer(serializers.Serializer):
    """Body of POST versions (multipart): the model files of one new version."""

    files = serializers.ListField(
        child=serializers.FileField(),
        allow_empty=False,
        min_length=1,
        help_text="Model files (.h5, .keras); repeat the field for each file.",
    )
    manifest = serializers.FileField(
        required=False, help_text="Optional app.toml for this version (field 'app.toml' or 'manifest')."
    )
    activate = serializers.BooleanField(default=True, help_text="false: store and validate, serve at the next reload.")

    def to_internal_value(self, data):
        if hasattr(data, "copy") and "app.toml" in data and "manifest" not in data:
            data = data.copy()
            data["manifest"] = data["app.toml"]
        return super().to_internal_value(data)


class ReloadEventSerializer(serializers.ModelSerializer):
    app = serializers.SlugRelatedField(slug_field="name", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ReloadEvent
        fields = [
            "id",
            "app",
            "from_version",
            "to_version",
            "trigger",
            "user",
            "status",
            "error",
            "note",
            "duration_ms",
            "host",
            "pid",
            "created_at",
        ]


class UserSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = User
        fields = ["url", "username", "email", "is_staff", "groups"]


class GroupSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = Group
        fields = ["url", "name"]
