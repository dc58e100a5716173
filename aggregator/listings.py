"""Listings show stories, not articles: one card per story (an article not yet in a
story is a story of one), led by the story's best report, with its publishers, its
languages and its freshest update.

A page costs the same few queries whatever it shows: where the page's window starts, one
page of story keys (grouped and ranked in SQL over that window), the leads, their
audiences, and the publishers of the page.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Page, Paginator
from django.db import connections
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
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Length, RowNumber
from django.http import Http404
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils import timezone

from aggregator import freshness
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


def first_of_each(articles: QuerySet[Article], partition_by: list, order_by: list) -> Q:
    """A filter for the first article of each group of `articles` (ROW_NUMBER() = 1 over
    `partition_by`, in `order_by`). Django compiles a filter on a window function (its
    QUALIFY emulation compiles the query three times over) in 1.5-3 ms, ten times what
    the database takes to run it; the window wrapped here by hand compiles in 0.5 ms."""
    ranked = (
        articles.order_by()
        .annotate(position=Window(RowNumber(), partition_by=partition_by, order_by=order_by))
        .values("pk", "position")
    )
    try:
        sql, params = ranked.query.get_compiler(using=ranked.db).as_sql()
    except EmptyResultSet:  # e.g. an empty list of stories: no query at all
        return Q(pk__in=[])
    quote = connections[ranked.db].ops.quote_name
    # Django's own SQL, its values passed apart as parameters, in constant SQL.
    first = RawSQL(  # noqa: S611
        f"SELECT {quote('pk')} FROM ({sql}) {quote('ranked')} WHERE {quote('position')} = 1",  # noqa: S608
        params,
    )
    return Q(pk__in=first)


def leads(articles: QuerySet[Article]) -> QuerySet[Article]:
    """The lead report of each story among `articles` (one query)."""
    ranked = articles.annotate(text_length=Length("text"), key=story_key())
    return Article.objects.filter(first_of_each(ranked, [F("key")], lead_order()))


@dataclass
class Publisher:
    name: str
    language: str
    first_at: datetime


_SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # what the slug converter takes and reverse() leaves as is
_STAND_INS = ("slug-stand-in", 271828182845)  # the first a slug route takes, the second an int route


@lru_cache(maxsize=64)
def _link_parts(name: str, prefix: str, urlconf: str | None) -> tuple[str, str, str]:
    """(kind, before, after): the path of `name` around its one argument, for a slug
    route or an int route ("" when it is neither)."""
    for kind, stand_in in zip(("slug", "int"), _STAND_INS, strict=True):
        try:
            path = reverse(name, args=[stand_in], urlconf=urlconf)
        except NoReverseMatch:
            continue
        before, found, after = path.partition(str(stand_in))
        if found and str(stand_in) not in after:
            return kind, before, after
    return "", "", ""


def link(name: str, value: int | str) -> str:
    """reverse(name, args=[value]) for a card's links (a pk or a slug) without its cost
    (about 20 µs a link, five links a card): the path is reversed once per name, script
    prefix and URLconf with a stand-in value, which is then replaced. A value reverse()
    would quote or refuse goes through reverse()."""
    kind, before, after = _link_parts(name, get_script_prefix(), get_urlconf())
    if kind == "int" and type(value) is int and value >= 0:
        return f"{before}{value}{after}"
    if kind == "slug" and isinstance(value, str) and _SLUG.fullmatch(value):
        return f"{before}{value}{after}"
    return reverse(name, args=[value])


class CardData:
    """What the card templates read: `card["name"]` is `card.name`. The template engine
    tries a lookup by key before the attribute, so on a plain object every lookup first
    raises and catches a TypeError; with this a card renders about 12% faster."""

    def __getitem__(self, name: str):
        return getattr(self, name)


@dataclass
class Named(CardData):
    """A category, publisher or audience as a card shows it: its name and its page."""

    name: str
    url: str
    icon: str = ""


@dataclass
class CardInsight(CardData):
    """What a card shows of the machine's card of its report (enrichment.models.Insight)."""

    title: str
    hook: str
    language: str
    backend: str
    model_name: str
    reviewed_at: datetime | None


@dataclass
class Badge(CardData):
    """A report's age on a card (templates/aggregator/_badge.html; site.js keeps it current)."""

    key: str
    label: str
    collected_in: str
    published_at: datetime | None  # the publisher's time, else when we collected it
    stamp: datetime | None  # the publisher's time only


def badge_of(published_at: datetime | None, collected_at: datetime | None) -> Badge:
    key, label = freshness.age_class(published_at, timezone.now())
    return Badge(
        key,
        label,
        freshness.collected_after(published_at, collected_at),
        published_at or collected_at,
        published_at,
    )


@dataclass
class CardReport(CardData):
    """What a card shows of its report, read as plain values (card_reports): building
    Article, Source, Category, Insight and Story instances for 20 cards cost more than
    rendering them."""

    pk: int
    title: str
    language: str
    excerpt: str
    is_featured: bool
    published_at: datetime | None
    collected_at: datetime
    url: str
    source: Named
    category: Named | None
    insight: CardInsight | None
    story_id: int | None
    story_url: str  # "" when the report is in no story
    story_publisher_count: int
    audiences: list[Named] = field(default_factory=list)

    @property
    def key(self) -> int:
        """The story id, or minus the article id for a report in no story (story_key)."""
        return self.story_id if self.story_id is not None else -self.pk

    @property
    def badge(self) -> Badge:
        return badge_of(self.published_at, self.collected_at)


CARD_VALUES = (
    "pk",
    "title",
    "language",
    "excerpt",
    "is_featured",
    "published_at",
    "collected_at",
    "story_id",
    "story__publisher_count",
    "source__name",
    "source__slug",
    "category__name",
    "category__slug",
    "category__icon",
    "insight__pk",
    "insight__title",
    "insight__hook",
    "insight__language",
    "insight__backend",
    "insight__model_name",
    "insight__reviewed_at",
)


def card_reports(articles: QuerySet[Article]) -> list[CardReport]:
    """What the cards show of `articles`, in two queries (the reports with their
    publisher, category, card and story; their audiences)."""
    rows = list(articles.order_by().values(*CARD_VALUES))
    audiences: dict[int, list[Named]] = defaultdict(list)
    tags = (
        Article.audiences.through.objects.filter(article_id__in=[row["pk"] for row in rows])
        .order_by("audiencetag__position", "audiencetag__name")  # AudienceTag's ordering
        .values_list("article_id", "audiencetag__name", "audiencetag__slug")
    )
    for article_id, name, slug in tags if rows else []:
        audiences[article_id].append(Named(name, link("audience", slug)))
    reports = []
    for row in rows:
        category = (
            Named(row["category__name"], link("category", row["category__slug"]), row["category__icon"])
            if row["category__slug"] is not None
            else None
        )
        insight = (
            CardInsight(
                row["insight__title"],
                row["insight__hook"],
                row["insight__language"],
                row["insight__backend"],
                row["insight__model_name"],
                row["insight__reviewed_at"],
            )
            if row["insight__pk"] is not None
            else None
        )
        story_id = row["story_id"]
        reports.append(
            CardReport(
                pk=row["pk"],
                title=row["title"],
                language=row["language"],
                excerpt=row["excerpt"],
                is_featured=row["is_featured"],
                published_at=row["published_at"],
                collected_at=row["collected_at"],
                url=link("article", row["pk"]),
                source=Named(row["source__name"], link("source", row["source__slug"])),
                category=category,
                insight=insight,
                story_id=story_id,
                story_url=link("story", story_id) if story_id is not None else "",
                story_publisher_count=row["story__publisher_count"] or 0,
                audiences=audiences[row["pk"]],
            )
        )
    return reports


@dataclass
class ListedStory(CardData):
    """One card of a listing: a story, led by its best report (`grouped`); on a
    publisher's page, one report (not grouped), linking to its story's page."""

    key: int
    lead: CardReport
    featured: bool = False
    publishers: list[Publisher] = field(default_factory=list)
    updated_at: datetime | None = None
    article_count: int = 1
    languages: list[str] = field(default_factory=list)
    grouped: bool = True

    @property
    def story_url(self) -> str:
        return self.lead.story_url if self.key > 0 else ""

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


def report_cards(ids: list[int]) -> list[ListedStory]:
    """One card per report, in the order of `ids` (a publisher's page)."""
    reports = {r.pk: r for r in card_reports(Article.objects.filter(pk__in=ids))} if ids else {}
    return [ListedStory(key=-pk, lead=reports[pk], grouped=False) for pk in ids if pk in reports]


def listed_stories(rows: list[dict]) -> list[ListedStory]:
    """The cards of one page of `ranked_stories` rows, in the same order."""
    keys = [row["key"] for row in rows]
    story_ids = [k for k in keys if k > 0]
    article_ids = [-k for k in keys if k < 0]
    visible = Article.objects.visible()
    lead_rows = leads(visible.filter(Q(story_id__in=story_ids) | Q(pk__in=article_ids)))
    by_key = {lead.key: lead for lead in card_reports(lead_rows)} if keys else {}
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
