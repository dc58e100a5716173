from __future__ import annotations

from django.contrib.sitemaps import Sitemap
from django.urls import reverse

from aggregator.models import Article, Category, Source


class ArticleSitemap(Sitemap):
    changefreq = "daily"
    limit = 5000

    def items(self):
        return Article.objects.visible().only("pk", "sort_at").order_by("-sort_at")

    def lastmod(self, item: Article):
        return item.sort_at


class SectionSitemap(Sitemap):
    changefreq = "hourly"

    def items(self):
        return ["front", *Category.objects.all(), *Source.objects.filter(is_active=True)]

    def location(self, item) -> str:
        return reverse(item) if isinstance(item, str) else item.get_absolute_url()


SITEMAPS = {"articles": ArticleSitemap, "sections": SectionSitemap}
