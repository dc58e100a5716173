from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from aggregator.models import Article, Category, Source

PAGE_SIZE = 20


def _page(request: HttpRequest, articles: QuerySet[Article]):
    return Paginator(articles, PAGE_SIZE).get_page(request.GET.get("page"))


def front(request: HttpRequest) -> HttpResponse:
    page = _page(request, Article.objects.visible().for_cards())
    return render(request, "aggregator/front.html", {"page": page})


def category(request: HttpRequest, slug: str) -> HttpResponse:
    cat = get_object_or_404(Category, slug=slug)
    page = _page(request, Article.objects.visible().for_cards().filter(category=cat))
    return render(request, "aggregator/listing.html", {"page": page, "heading": str(cat)})


def source(request: HttpRequest, slug: str) -> HttpResponse:
    src = get_object_or_404(Source, slug=slug)
    page = _page(request, Article.objects.visible().for_cards().filter(source=src))
    return render(request, "aggregator/listing.html", {"page": page, "heading": src.name, "source": src})


def article(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(Article.objects.visible().select_related("source", "category"), pk=pk)
    return render(request, "aggregator/article.html", {"article": item})
