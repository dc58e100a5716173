"""Enrichers: one interface (`Enricher.enrich(source_text) -> CardDraft`), one module each."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from enrichment.backends.base import CardDraft, Enricher, EnrichmentError, SourceText

BACKENDS = {
    "extractive": "enrichment.backends.extractive.ExtractiveEnricher",
    "claude": "enrichment.backends.claude.ClaudeEnricher",
}

__all__ = ["CardDraft", "EnrichmentError", "Enricher", "SourceText", "get_enricher"]


def get_enricher(name: str | None = None) -> Enricher:
    """The configured enricher (ENRICHMENT_BACKEND), or the one named."""
    name = name or settings.ENRICHMENT_BACKEND
    if name not in BACKENDS:
        raise EnrichmentError(f"unknown enrichment backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return import_string(BACKENDS[name])()
