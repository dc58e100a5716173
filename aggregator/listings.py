"""Listings show stories, not articles: one card per story (an article not yet in a
story is a story of one), led by the story's best report, with its publishers, its
languages and its freshest update.

A page costs the same few queries whatever it shows: where the page's window starts, one
page of story keys (grouped and ranked in SQL over that window), the leads, their
audiences, and the publishers of the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Length, RowNumber
from django.http import Http404

from aggregator.models import Article, Story

# A report with at least this much text is a full report, not a brief or a feed summary.
FULL_REPORT_CHARS = 600
# Coverage counts like recency: each doubling of the publishers is worth this many hours,
# so five publishers today outrank a single report of the same hour (and of the next 13).
HOURS_PER_DOUBLING = 6
MAX_PUBLISHERS_BOOSTED = 32
BOOST_STEPS = (2, 3, 4, 5, 6, 8, 11, 16, 23, 32)  # publisher counts where the boost steps up
MAX_PAGE = 200  # deeper pages: the week pages and search reach the archive


def story_key() -> Coalesce:
    """The story id, or minus the article id for an article not (yet) in a story."""
    return Coalesce(F("story_id"), Value(0) - F("pk"), output_field=IntegerField())


def coverage_boost_hours(publishers: int) -> int:
    return round(HOURS_PER_DOUBLING * math.log2(max(1, min(publishers, MAX_PUBLISHERS_BOOSTED))))


def boost_hours(publishers: int) -> int:
    """The coverage boost in whole steps (BOOST_STEPS), as the SQL ranking applies it."""
    steps = [n for n in BOOST_STEPS if publishers >= n]
    return coverage_boost_hours(steps[-1]) if steps else 0


def ranked_at() -> tuple[Coalesce, Case]:
    """(publishers, time): an article's time moved forward by its story's coverage (see
    HOURS_PER_DOUBLING); the Case reads the publishers from an annotation `_publishers`."""
    publishers = Coalesce(F("story__publisher_count"), Value(1))
    whens = [
        When(
            Q(_publishers__gte=n),
            then=ExpressionWrapper(
                F("sort_at") + timedelta(hours=coverage_boost_hours(n)), output_field=DateTimeField()
            ),
        )
        for n in reversed(BOOST_STEPS)
    ]
    return publishers, Case(*whens, default=F("sort_at"), output_field=DateTimeField())


def ranked_stories(articles: QuerySet[Article]) -> QuerySet:
    """One row per story among `articles` ({"key", ...}), best first: featured stories,
    then the search rank where the query has one, then recency weighted by coverage."""
    publishers, rank_time = ranked_at()
    featured = Case(
        When(Q(is_featured=True) | Q(story__is_featured=True), then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    relevance = "rank" in articles.query.annotations
    groups = (
        articles.order_by()
        .annotate(key=story_key(), _publishers=publishers)
        .values("key")
        .annotate(featured=Max(featured), score=Max(rank_time), latest=Max("sort_at"))
    )
    if relevance:
        groups = groups.annotate(relevance=Max("rank"))
        return groups.order_by("-relevance", "-score", "-key")
    return groups.order_by("-featured", "-score", "-key")


def lead_order() -> list:
    """Which report leads a story: the editor's pick (a featured article), then reports
    in the site's language, full reports before briefs, the earliest first."""
    language = settings.SITE_LANGUAGE.split("-")[0].lower()
    in_language = Q(language__iexact=language) | Q(language__istartswith=f"{language}-")
    return [
        F("is_featured").desc(),
        Case(When(in_language, then=Value(0)), default=Value(1), output_field=IntegerField()).asc(),
        Case(
            When(Q(text_length__gte=FULL_REPORT_CHARS), then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        ).asc(),
        Coalesce("published_at", "collected_at").asc(),
        F("pk").asc(),
    ]


def leads(articles: QuerySet[Article]) -> QuerySet[Article]:
    """The lead report of each story among `articles` (one query)."""
    return (
        articles.annotate(text_length=Length("text"), key=story_key())
        .annotate(position=Window(RowNumber(), partition_by=[F("key")], order_by=lead_order()))
        .filter(position=1)
    )


@dataclass
class Publisher:
    name: str
    language: str
    first_at: datetime


@dataclass
class ListedStory:
    """One card of a listing: a story, led by its best report."""

    key: int
    lead: Article
    featured: bool = False
    publishers: list[Publisher] = field(default_factory=list)
    updated_at: datetime | None = None
    article_count: int = 1
    languages: list[str] = field(default_factory=list)

    @property
    def story(self) -> Story | None:
        return self.lead.story if self.key > 0 else None

    @property
    def publisher_count(self) -> int:
        return len(self.publishers) or 1

    @property
    def language_count(self) -> int:
        return len(self.languages) or 1

    @property
    def other_publishers(self) -> list[str]:
        return [p.name for p in self.publishers if p.name != self.lead.source.name]

    @property
    def updated_later(self) -> bool:
        """True when a later report came in after the lead's own time."""
        lead_at = self.lead.published_at or self.lead.collected_at
        return bool(self.updated_at and lead_at and self.updated_at > lead_at)


def _language(code: str) -> str:
    return (code or "").split("-")[0].lower()


def listed_stories(rows: list[dict]) -> list[ListedStory]:
    """The cards of one page of `ranked_stories` rows, in the same order."""
    keys = [row["key"] for row in rows]
    story_ids = [k for k in keys if k > 0]
    article_ids = [-k for k in keys if k < 0]
    visible = Article.objects.visible()
    lead_rows = leads(visible.filter(Q(story_id__in=story_ids) | Q(pk__in=article_ids))).for_cards()
    by_key = {a.key: a for a in lead_rows}
    publishers: dict[int, dict[str, Publisher]] = {k: {} for k in story_ids}
    counts: dict[int, int] = dict.fromkeys(story_ids, 0)
    latest: dict[int, datetime] = {}
    languages: dict[int, set[str]] = {k: set() for k in story_ids}
    stats = (
        visible.filter(story_id__in=story_ids)
        .order_by()
        .values("story_id", "source__name", "language", "source__language")
        .annotate(
            first_at=Min(Coalesce("published_at", "collected_at")), last_at=Max("sort_at"), n=Count("pk")
        )
    )
    for row in stats if story_ids else []:
        key, name = row["story_id"], row["source__name"]
        counts[key] += row["n"]
        latest[key] = max(latest.get(key, row["last_at"]), row["last_at"])
        language = _language(row["language"] or row["source__language"])
        languages[key].add(language)
        known = publishers[key].get(name)
        if known is None or row["first_at"] < known.first_at:
            publishers[key][name] = Publisher(name, language, row["first_at"])
    cards = []
    for row in rows:
        lead = by_key.get(row["key"])
        if lead is None:  # hidden between the two queries
            continue
        card = ListedStory(key=row["key"], lead=lead, featured=bool(row["featured"]))
        if row["key"] > 0:
            card.publishers = sorted(publishers[row["key"]].values(), key=lambda p: p.first_at)
            card.updated_at = latest.get(row["key"])
            card.article_count = counts[row["key"]]
            card.languages = sorted(languages[row["key"]] - {""})
        else:
            card.publishers = [
                Publisher(lead.source.name, _language(lead.language), lead.published_at or lead.collected_at)
            ]
            card.updated_at = lead.published_at or lead.collected_at
            card.languages = [_language(lead.language)] if lead.language else []
        cards.append(card)
    return cards


class OpenPaginator:
    """What templates read of a paginator when the total is not counted: a listing of
    stories knows whether a next page exists, not how many pages there are (counting
    them would read every article)."""

    count = None

    def __init__(self, num_pages: int, per_page: int):
        self.num_pages, self.per_page = num_pages, per_page

    def validate_number(self, number: int) -> int:
        return number


def window_start(articles: QuerySet[Article], needed: int) -> datetime | None:
    """A time before which no story can rank among the first `needed` (None: all can).

    Scanning articles newest first, once `needed` stories have a report at or after T,
    the `needed`-th best score is at least T; a story whose latest report is older than
    T minus the largest coverage boost scores below T. Featured stories are ranked first
    whatever their age, so callers keep them. Reads `needed`×3 rows of the sort_at index
    (more only when a few stories fill the newest reports)."""
    limit = needed * 3
    while True:
        rows = articles.order_by("-sort_at").annotate(key=story_key()).values_list("key", "sort_at")
        seen: set[int] = set()
        fetched = 0
        for key, at in rows[:limit]:
            fetched += 1
            seen.add(key)
            if len(seen) >= needed:
                return at - timedelta(hours=coverage_boost_hours(MAX_PUBLISHERS_BOOSTED))
        if fetched < limit:
            return None
        limit *= 4


def ranked_window(articles: QuerySet[Article], featured_stories: list[int]) -> list[dict]:
    """ranked_stories for a window of recent articles, ranked here rather than in SQL:
    the window's rows come through the sort_at (and featured) indexes, each with its
    story's publisher count read by primary key. Joining the story table in a grouped
    query let PostgreSQL hash the whole table (60 ms at 100k articles) for a few hundred
    rows. Same order as ranked_stories: featured, then score, then key."""
    publishers = Subquery(Story.objects.filter(pk=OuterRef("story_id")).values("publisher_count")[:1])
    rows = (
        articles.order_by()
        .annotate(key=story_key(), publishers=publishers)
        .values_list("key", "sort_at", "is_featured", "publishers")
    )
    featured_set = set(featured_stories)
    groups: dict[int, dict] = {}
    for key, at, featured, count in rows:
        score = at + timedelta(hours=boost_hours(1 if count is None else count))
        group = groups.get(key)
        if group is None:
            groups[key] = {"key": key, "featured": int(featured or key in featured_set), "score": score}
        else:
            group["score"] = max(group["score"], score)
            group["featured"] |= int(featured)
    return sorted(groups.values(), key=lambda g: (g["featured"], g["score"], g["key"]), reverse=True)


def ranked_matches(articles: QuerySet[Article], depth: int) -> tuple[list[dict], int]:
    """Search results as stories: the best `depth` of `articles` (a search, ordered best
    first: by its `rank`, then recency) grouped by story, best first; and how many
    articles match in all (up to search.COUNT_LIMIT + 1). Only those rows are ranked
    (aggregator.search.best_matches), each story's publisher count read by primary key.
    Same order as ranked_stories: relevance (a story's best match), then recency weighted
    by coverage, then key."""
    from aggregator.search import best_matches

    rows, total = best_matches(articles, depth)
    rows = rows[:depth]
    stories = {
        pk: (n, featured)
        for pk, n, featured in Story.objects.filter(pk__in={r[3] for r in rows if r[3]}).values_list(
            "pk", "publisher_count", "is_featured"
        )
    }
    groups: dict[int, dict] = {}
    for key, at, featured, story_id, *rank in rows:
        count, story_featured = stories.get(story_id, (1, False))
        score = at + timedelta(hours=boost_hours(count))
        relevance = rank[0] if rank else 0.0
        group = groups.get(key)
        if group is None:
            groups[key] = {
                "key": key,
                "featured": int(bool(featured or story_featured)),
                "score": score,
                "relevance": relevance,
            }
        else:
            group["score"] = max(group["score"], score)
            group["relevance"] = max(group["relevance"], relevance)
            group["featured"] |= int(bool(featured))
    ordered = sorted(groups.values(), key=lambda g: (g["relevance"], g["score"], g["key"]), reverse=True)
    return ordered, total


def story_page(
    request_page: str | None, articles: QuerySet[Article], *, per_page: int, counted: bool = False
) -> Page:
    """One page of story cards for a listing of `articles`: the ranking reads only the
    articles recent enough to reach this page (see window_start), so its cost follows the
    page number, not the size of the archive. `counted` (search results, best first):
    the best SEARCH_DEPTH matches are ranked into stories and paged; the paginator's
    `count` is the stories ranked, `matches` every article that matches (`more_matches`:
    more than that many) and `capped` whether some of them lie beyond the depth (not
    shown)."""
    if counted:
        from aggregator.search import COUNT_LIMIT, SEARCH_DEPTH

        rows, matches = ranked_matches(articles, SEARCH_DEPTH)
        paginator = Paginator(rows, per_page)
        paginator.matches, paginator.capped = min(matches, COUNT_LIMIT), matches > SEARCH_DEPTH
        paginator.more_matches = matches > COUNT_LIMIT
        page = paginator.get_page(request_page)
        page.object_list = listed_stories(list(page.object_list))
        return page
    try:
        number = min(max(int(request_page or 1), 1), MAX_PAGE)
    except ValueError:
        number = 1
    if "rank" in articles.query.annotations:  # relevance decides: every match is ranked
        rows = list(ranked_stories(articles)[(number - 1) * per_page : number * per_page + 1])
    else:
        # Featured stories rank first whatever their age (a literal list, so the window's
        # condition stays a union of index scans).
        featured = list(Story.objects.filter(is_featured=True).values_list("pk", flat=True)[:1000])
        start = window_start(articles, number * per_page + 1)
        if start is not None:
            articles = articles.filter(Q(sort_at__gte=start) | Q(is_featured=True) | Q(story_id__in=featured))
        rows = ranked_window(articles, featured)[(number - 1) * per_page : number * per_page + 1]
    if not rows and number > 1:
        raise Http404("No such page")
    more = len(rows) > per_page
    return Page(
        listed_stories(rows[:per_page]), number, OpenPaginator(number + 1 if more else number, per_page)
    )
