from django.apps import AppConfig


class AggregatorConfig(AppConfig):
    name = "aggregator"
    verbose_name = "News"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aggregator import (
            pagecache,  # noqa: F401  (connects the write watcher)
            search,  # noqa: F401  (repairs the SQLite search index after migrate)
        )
