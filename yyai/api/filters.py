"""django-filter filter sets for the list endpoints."""

import django_filters

from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.servable import State
from yyai.selectors import names_in_state


class ModelAppFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    state = django_filters.ChoiceFilter(
        choices=[(s.value, s.value) for s in State],
        method="filter_state",
        help_text="Runtime state in the answering process.",
    )

    class Meta:
        model = ModelApp
        fields = ["name", "state"]

    def filter_state(self, queryset, name, value):
        return queryset.filter(name__in=names_in_state(state=value))


class ReloadEventFilter(django_filters.FilterSet):
    app = django_filters.CharFilter(field_name="app__name")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ReloadEvent
        fields = ["app", "status", "trigger", "created_after", "created_before"]
