from django.apps import AppConfig
from django.db.models.signals import pre_delete


def _uncount(sender, instance, **kwargs) -> None:
    from enrichment.stories import uncount_keys

    uncount_keys(instance.pk)


class EnrichmentConfig(AppConfig):
    name = "enrichment"
    verbose_name = "Enrichment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A deleted article no longer counts in the weights clustering uses.
        pre_delete.connect(_uncount, sender="aggregator.Article", dispatch_uid="uncount_article_keys")
