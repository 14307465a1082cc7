"""The canonical REST API (DRF): serializers, views, URLs and the error format."""
