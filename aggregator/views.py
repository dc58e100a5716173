from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from aggregator import freshness, seo
from aggregator.listings import leads, report_cards, story_page
from aggregator.models import Article, AudienceTag, Category, Source, Story, StoryRedirect
from aggregator.search import search_articles
from enrichment import labels
from enrichment.models import WeeklyRecap
from enrichment.story_card import cached_story_card

PAGE_SIZE = 20
STORY_PAGE_SIZE = 30  # reports per page of a story


def _reports(request: HttpRequest, articles: QuerySet[Article]) -> Page:
    """One card per report among `articles`, newest first (featured ones first)."""
    ids = articles.order_by("-is_featured", "-sort_at", "-pk").values_list("pk", flat=True)
    page = Paginator(ids, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = report_cards(list(page.object_list))
    return page


def _stories(request: HttpRequest, articles: QuerySet[Article]) -> Page:
    """One card per story among `articles` (see aggregator.listings)."""
    return story_page(request.GET.get("page"), articles, per_page=PAGE_SIZE)


def _listing(
    request: HttpRequest,
    articles: QuerySet[Article],
    *,
    heading: str,
    intro: str = "",
    by_story: bool = True,
    **context,
) -> HttpResponse:
    page = _stories(request, articles) if by_story else _reports(request, articles)
    return render(
        request, "aggregator/listing.html", {"page": page, "heading": heading, "intro": intro, **context}
    )


@require_safe
def front(request: HttpRequest) -> HttpResponse:
    page = _stories(request, Article.objects.visible())
    return render(request, "aggregator/front.html", {"page": page})


@require_safe
def category(request: HttpRequest, slug: str) -> HttpResponse:
    cat = get_object_or_404(Category, slug=slug)
    articles = Article.objects.visible().filter(category=cat)
    return _listing(
        request,
        articles,
        heading=f"{cat.icon} {cat.name}".strip(),
        intro=cat.description,
        feed_kind="category",
        feed_slug=cat.slug,
    )


@require_safe
def audience(request: HttpRequest, slug: str) -> HttpResponse:
    tag = get_object_or_404(AudienceTag, slug=slug)
    articles = Article.objects.visible().filter(audiences=tag)
    return _listing(
        request,
        articles,
        heading=f"For {tag.name}",
        intro=tag.description,
        feed_kind="audience",
        feed_slug=tag.slug,
    )


@require_safe
def source(request: HttpRequest, slug: str) -> HttpResponse:
    src = get_object_or_404(Source, slug=slug)
    articles = Article.objects.visible().filter(source=src)
    return _listing(
        request,
        articles,
        heading=src.name,
        by_story=False,
        source=src,
        feed_kind="source",
        feed_slug=src.slug,
    )


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    articles = search_articles(Article.objects.visible(), query) if query else Article.objects.none()
    page = story_page(request.GET.get("page"), articles, per_page=PAGE_SIZE, counted=True)
    context = {"page": page, "heading": f"Search: {query}" if query else "Search", "query": query}
    return render(request, "aggregator/listing.html", {**context, "searching": True})


@require_safe
def week(request: HttpRequest, year: int, week: int) -> HttpResponse:
    try:
        monday = dt.date.fromisocalendar(year, week, 1)
        # The neighbours too: the last weeks of year 9999 have no next week.
        prev_monday, next_monday = monday - dt.timedelta(7), monday + dt.timedelta(7)
    except (ValueError, OverflowError) as exc:
        raise Http404("No such week") from exc
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(monday, dt.time.min, tzinfo=tz)
    articles = Article.objects.visible().filter(sort_at__gte=start, sort_at__lt=start + dt.timedelta(7))
    recap = WeeklyRecap.objects.filter(iso_year=year, iso_week=week).first()
    if recap and recap.status != WeeklyRecap.Status.PUBLISHED and not request.user.is_staff:
        recap = None  # drafts are for editors' eyes
    sunday = monday + dt.timedelta(6)
    return _listing(
        request,
        articles,
        heading=recap.title if recap else f"Week {week}, {year}",
        intro=f"{monday:%-d %B} – {sunday:%-d %B %Y}",
        recap=recap,
        prev_week=prev_monday.isocalendar()[:2],
        next_week=next_monday.isocalendar()[:2],
    )


def recap_link(article: Article | None = None) -> tuple[str, str]:
    """(url, label) for the card's "Weekly Recap" part: the published recap of the week
    that holds the article, else that week's page (the latest recap without an article)."""
    published = WeeklyRecap.objects.filter(status=WeeklyRecap.Status.PUBLISHED)
    if article is None:
        recap = published.order_by("-iso_year", "-iso_week").first()
        if recap:
            return recap.get_absolute_url(), recap.title
        year, week_no = freshness.week_of(timezone.now())
        return reverse("week", args=[year, week_no]), "This week's articles"
    year, week_no = freshness.week_of(article.sort_at)
    recap = published.filter(iso_year=year, iso_week=week_no).first()
    if recap:
        return recap.get_absolute_url(), recap.title
    monday = dt.date.fromisocalendar(year, week_no, 1)
    return reverse("week", args=[year, week_no]), f"All articles of the week of {monday:%-d %B %Y}"


@require_safe
def article(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(
        Article.objects.select_related("source", "category", "insight", "story")
        .prefetch_related("audiences", "insight__corrections")
        .defer("sentences", "model_instructions"),  # read by the cards' writers, not shown
        pk=pk,
    )
    insight = getattr(item, "insight", None)
    if item.is_hidden:
        # Withdrawn by the editors; its corrections are a public record and stay readable.
        if insight is None or not insight.corrections.all():
            raise Http404("No such article")
        return render(request, "aggregator/withdrawn.html", {"article": item, "insight": insight}, status=410)
    related = []
    if insight and insight.related_ids:
        shown = ("title", "language", "published_at", "source", "source__name", "insight__title")
        by_id = {
            a.pk: a
            for a in Article.objects.visible()
            .filter(pk__in=insight.related_ids)
            .select_related("source", "insight")
            .only(*shown)
        }
        related = [by_id[pk] for pk in insight.related_ids if pk in by_id]
    recap_url, recap_label = recap_link(item)
    canonical = f"{settings.SITE_URL}{item.get_absolute_url()}"
    description = labels.description(item, insight)
    return render(
        request,
        "aggregator/article.html",
        {
            "article": item,
            "insight": insight,
            "related": related,
            "recap_url": recap_url,
            "recap_label": recap_label,
            "canonical": canonical,
            "description": description,
            "jsonld": seo.news_article(item, canonical=canonical, description=description),
        },
    )


# What the story page shows of each report (Article.objects.only): the rest stays unread.
REPORT_FIELDS = (
    "title",
    "language",
    "published_at",
    "source",
    "source__name",
    "insight__title",
    "insight__hook",
    "insight__language",
    "insight__backend",
    "insight__model_name",
)


@require_safe
def story(request: HttpRequest, pk: int) -> HttpResponse:
    item = Story.objects.filter(pk=pk).first()
    if item is None:
        moved = get_object_or_404(StoryRedirect, old_id=pk)  # merged into another story
        return redirect(moved.story, permanent=True)
    visible = Article.objects.visible().filter(story=item)
    lead = leads(visible).select_related("insight").only("title", "language", "insight__title").first()
    if lead is None:
        raise Http404("This story has no visible articles")
    # Who reported it, in which languages, how many reports: one grouped query, the
    # publishers in the database's order of their names.
    publishers, languages, total = [], set(), 0
    for name, language, source_language, n in (
        visible.order_by("source__name")
        .values_list("source__name", "language", "source__language")
        .annotate(n=Count("pk"))
    ):
        if not publishers or publishers[-1] != name:
            publishers.append(name)
        languages.add((language or source_language).split("-")[0])
        total += n
    in_order = (
        visible.select_related("source", "insight")
        .only(*REPORT_FIELDS)
        .order_by(F("published_at").asc(nulls_last=True), "collected_at", "pk")
    )
    paginator = Paginator(in_order, STORY_PAGE_SIZE)
    paginator.count = total  # counted above (a cached_property, so set once here)
    reports = paginator.get_page(request.GET.get("page"))
    first = reports[0] if reports.number == 1 else in_order.first()
    return render(
        request,
        "aggregator/story.html",
        {
            "story": item,
            "lead": lead,
            "page": reports,
            "first": first,
            "card": cached_story_card(item) if reports.number == 1 else None,
            "publishers": publishers,
            "languages": sorted(languages - {""}),
        },
    )


@require_safe
def recaps(request: HttpRequest) -> HttpResponse:
    published = WeeklyRecap.objects.filter(status=WeeklyRecap.Status.PUBLISHED).order_by(
        "-iso_year", "-iso_week"
    )
    return render(request, "aggregator/recaps.html", {"recaps": published[:104]})


@require_safe
def robots_txt(request: HttpRequest) -> HttpResponse:
    lines = [
        "User-agent: *",
        "Disallow: /admin/",
        "Disallow: /search/",
        f"Sitemap: {settings.SITE_URL}/sitemap.xml",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain")


FAVICON = (settings.BASE_DIR / "static" / "favicon.svg").read_bytes()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers and monitors ask for /favicon.ico whatever the page says."""
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
