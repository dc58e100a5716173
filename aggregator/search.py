"""Search: PostgreSQL full-text search on PostgreSQL; word-by-word matching elsewhere."""

from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet


def search_articles(articles: QuerySet, query: str) -> QuerySet:
    words = [w for w in query.split() if w][:10]
    if not words:
        return articles.none()
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        vector = (
            SearchVector("title", weight="A", config="simple")
            + SearchVector("excerpt", weight="B", config="simple")
            + SearchVector("text", weight="C", config="simple")
        )
        search_query = SearchQuery(query, search_type="websearch", config="simple")
        # Match with @@ (every word, as websearch means it); a rank above 0 alone also
        # lets in articles that match only some of the words.
        return (
            articles.annotate(document=vector, rank=SearchRank(vector, search_query))
            .filter(document=search_query)
            .order_by("-rank", "-sort_at")
        )
    condition = Q()
    for word in words:
        condition &= Q(title__icontains=word) | Q(excerpt__icontains=word) | Q(text__icontains=word)
    return articles.filter(condition)
