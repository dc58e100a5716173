from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from aggregator.ingest.clean import html_to_text

logger = logging.getLogger(__name__)


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    icon = models.CharField(max_length=8, blank=True, help_text="An emoji shown before the source name.")
    description = models.TextField(blank=True)
    keywords = models.TextField(
        blank=True,
        help_text="Comma-separated words that suggest this category (used by the extractive enricher).",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return f"{self.icon} {self.name}".strip()

    def get_absolute_url(self) -> str:
        return reverse("category", args=[self.slug])


class AudienceTag(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    keywords = models.TextField(
        blank=True,
        help_text="Comma-separated words that suggest this audience (used by the extractive enricher).",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("audience", args=[self.slug])


class SourceQuerySet(models.QuerySet):
    def due(self, now: datetime | None = None) -> SourceQuerySet:
        """Active sources whose poll is due, or whose last poll was claimed and never
        finished (its lease ran out: a dead worker, a lost task); not one that a worker
        or the queue holds now."""
        now = now or timezone.now()
        leases = Lease.objects.filter(kind=Lease.POLL, object_id=models.OuterRef("pk"))
        return (
            self.filter(is_active=True)
            .filter(
                models.Q(next_poll_at__isnull=True)
                | models.Q(next_poll_at__lte=now)
                | models.Exists(leases.filter(until__lt=now))
            )
            .exclude(models.Exists(leases.filter(until__gte=now)))
        )

    def failing(self) -> SourceQuerySet:
        return self.filter(consecutive_failures__gt=0)


class Source(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    feed_url = models.URLField(max_length=2000, unique=True)
    site_url = models.URLField(max_length=2000, blank=True)
    language = models.CharField(max_length=16, blank=True, help_text="BCP 47 code, e.g. en, de, zh.")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL)
    is_active = models.BooleanField(default=True, help_text="Uncheck to pause polling.")
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    # Polling state.
    poll_interval_override = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes between polls; empty: learnt from the feed."
    )
    poll_interval = models.PositiveIntegerField(default=30, help_text="Minutes, learnt from the feed.")
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = SourceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("source", args=[self.slug])

    @property
    def is_healthy(self) -> bool:
        return self.consecutive_failures == 0

    def claim_poll(self, *, now: datetime, lease_minutes: int) -> bool:
        """Take this source for one poll; False when another worker already has it.

        The claim moves next_poll_at forward, so the dispatcher does not hand the same
        source out twice, and a poll that dies halfway is simply retried after the lease.
        """
        claimed = Source.objects.filter(pk=self.pk, next_poll_at=self.next_poll_at).update(
            last_polled_at=now, next_poll_at=now + timezone.timedelta(minutes=lease_minutes)
        )
        if claimed:
            self.last_polled_at = now
            self.next_poll_at = now + timezone.timedelta(minutes=lease_minutes)
        return bool(claimed)

    @classmethod
    def claim_polls(cls, sources: list[Source], *, now: datetime) -> None:
        """Take these sources for one poll each, in one transaction: one UPDATE per lease
        length rather than one committed UPDATE per source (on SQLite each commit is a
        sync to disk, and a re-poll of unchanged feeds does little else). Each is leased
        for its learnt interval, as claim_poll does; the caller polls them whatever
        another worker holds (an operator's `poll`), so no claim is refused."""
        by_lease: dict[int, list[Source]] = defaultdict(list)
        for source in sources:
            by_lease[source.poll_interval or 30].append(source)
        with transaction.atomic():
            for lease, chosen in by_lease.items():
                next_at = now + timezone.timedelta(minutes=lease)
                for first in range(0, len(chosen), 500):  # within any database's parameter limit
                    ids = [s.pk for s in chosen[first : first + 500]]
                    cls.objects.filter(pk__in=ids).update(last_polled_at=now, next_poll_at=next_at)
                for source in chosen:
                    source.last_polled_at, source.next_poll_at = now, next_at

    @classmethod
    def unique_slug(cls, name: str) -> str:
        base = slugify(name)[:90] or "source"
        slug, n = base, 2
        while cls.objects.filter(slug=slug).exists():
            slug, n = f"{base}-{n}", n + 1
        return slug


class PollLog(models.Model):
    """One poll of a source: its health history."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="poll_logs")
    polled_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.CharField(max_length=20)  # new, unchanged, not-modified, failed
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    new_articles = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-polled_at"]

    def __str__(self) -> str:
        return f"{self.source} {self.outcome} at {self.polled_at:%Y-%m-%d %H:%M}"


class Story(models.Model):
    """One event, however many publishers reported it."""

    headline = models.CharField(max_length=500)
    first_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    lead_article = models.ForeignKey(
        "Article", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    article_count = models.PositiveIntegerField(default=0)
    publisher_count = models.PositiveIntegerField(default=0)
    is_featured = models.BooleanField(default=False)

    class Meta:
        ordering = ["-first_seen_at"]
        verbose_name_plural = "stories"
        indexes = [  # listings fetch the featured ones (aggregator.listings)
            models.Index(fields=["last_seen_at"], condition=models.Q(is_featured=True), name="story_featured")
        ]

    def __str__(self) -> str:
        return self.headline

    def get_absolute_url(self) -> str:
        return reverse("story", args=[self.pk])


class StoryKey(models.Model):
    """The index clustering searches: the distinctive keys (names, dates, words) of each
    article, with its time, so candidates come from a window, not a scan."""

    article = models.ForeignKey("Article", on_delete=models.CASCADE, related_name="story_keys")
    key = models.CharField(max_length=80)
    sort_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["article", "key"], name="storykey_unique")]
        indexes = [models.Index(fields=["key", "sort_at"])]

    def __str__(self) -> str:
        return self.key


class StoryRedirect(models.Model):
    """A story merged into another: its old address answers 301 to the survivor."""

    old_id = models.PositiveBigIntegerField(unique=True, help_text="The id the merged story had.")
    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="redirects")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"story {self.old_id} → {self.story_id}"


class ArticleVector(models.Model):
    """What clustering needs of an article, computed once when it is indexed: its keys
    and its top content words with their weights at that time, and their norms, so a
    newcomer is compared with its candidates without re-reading their texts. `counted`
    says whether its keys and words are in KeyStat (done after the clustering
    transaction commits, so workers never wait on the hot counter rows)."""

    article = models.OneToOneField("Article", on_delete=models.CASCADE, related_name="vector")
    keys = models.JSONField(default=dict, help_text='{"key": weight} of the indexed keys.')
    words = models.JSONField(default=dict, help_text='{"word": weight} of the top content words.')
    words_norm = models.FloatField(default=0.0)
    language = models.CharField(max_length=16, blank=True)
    counted = models.BooleanField(default=False, db_index=True)

    def __str__(self) -> str:
        return f"vector of article {self.article_id}"


class KeyStat(models.Model):
    """How many articles carry each key (for its weight); the key "" counts articles."""

    key = models.CharField(max_length=80, unique=True)
    articles = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key or '(all)'}: {self.articles}"


@dataclass
class EntryData:
    """What we keep of one feed entry, already cleaned (see ingest.feeds)."""

    guid: str
    url: str
    canonical_url: str
    title: str
    summary_html: str = ""
    content_html: str = ""
    author: str = ""
    published_at: datetime | None = None
    image_url: str = ""
    language: str = ""


def excerpt_of(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def text_fingerprint(text: str) -> str:
    """Equal for two copies of one text, whatever their whitespace and case."""
    words = " ".join(text.casefold().split())
    return hashlib.sha256(words.encode("utf-8", "surrogatepass")).hexdigest() if len(words) > 200 else ""


def guid_key(guid: str) -> str:
    """Entry ids can be any length; keep short ones readable and hash long ones."""
    if len(guid) <= 500:
        return guid
    return "sha256:" + hashlib.sha256(guid.encode("utf-8", "surrogatepass")).hexdigest()


class ArticleQuerySet(models.QuerySet):
    def visible(self) -> ArticleQuerySet:
        return self.filter(is_hidden=False)

    def for_cards(self) -> ArticleQuerySet:
        """What a list of cards needs, in a bounded number of queries."""
        return (
            self.select_related("source", "category", "insight", "story")
            .prefetch_related("audiences")
            .defer("text", "content_html", "summary_html", "sentences")
            .order_by("-is_featured", "-sort_at", "-pk")
        )


class ArticleManager(models.Manager.from_queryset(ArticleQuerySet)):
    UPDATABLE = ("url", "title", "summary_html", "content_html", "author", "published_at", "image_url")
    LIMITS = {"url": 2000, "title": 1000, "author": 300, "image_url": 2000}

    def known_entries(self, source: Source, entries: list[EntryData]) -> dict[str, Article]:
        """The stored articles of `source` for these entries, by guid key, in one query
        (a re-polled feed is mostly entries we hold already)."""
        keys = {guid_key(e.guid) for e in entries}
        return {a.guid: a for a in self.filter(source=source, guid__in=keys)} if keys else {}

    def upsert_from_entry(
        self, source: Source, entry: EntryData, *, now: datetime, known: dict[str, Article] | None = None
    ) -> tuple[Article, bool]:
        """Insert or update the article of one feed entry; (article, created).

        Keyed on (source, guid) and on the canonical URL, so a re-poll, two polls at
        once, or the same story syndicated by two feeds never makes a second row. An
        unchanged entry makes no write at all.
        """
        key = guid_key(entry.guid)
        if known is not None and key in known:
            existing, url_key = known[key], entry.canonical_url[:2000]
        else:
            existing, url_key = self._find(source, key, entry.canonical_url)
        if existing is None:
            article = self.new_from_entry(source, entry, url_key=url_key, now=now)
            try:
                with transaction.atomic():
                    article.save(force_insert=True)
                return article, True
            except IntegrityError:
                existing, _ = self._find(source, key, entry.canonical_url)
                if existing is None:
                    raise
        if existing.source_id != source.pk:
            return existing, False  # a syndicated copy: the first publisher keeps it
        changes = self.changes_from_entry(existing, entry, now=now)
        if changes:
            self.filter(pk=existing.pk).update(**changes)
            for name, value in changes.items():
                setattr(existing, name, value)
        return existing, False

    def upsert_many(
        self, source: Source, entries: list[EntryData], *, now: datetime
    ) -> tuple[list[int], int]:
        """upsert_from_entry for a chunk of entries in a few queries: the entries already
        stored are looked up at once (and cost nothing when unchanged), new ones are
        inserted together. Returns the ids of the new articles and how many entries the
        database refused."""
        keys = [guid_key(e.guid) for e in entries]
        known = self.known_entries(source, entries)
        unknown = [e for key, e in zip(keys, entries, strict=True) if key not in known]
        urls = [e.canonical_url[:2000] for e in unknown if e.canonical_url]
        taken = (
            set(self.filter(canonical_url__in=urls).values_list("canonical_url", flat=True))
            if urls
            else set()
        )
        fresh: list[Article] = []
        one_by_one: list[EntryData] = []
        seen: set[str] = set()
        for key, entry in zip(keys, entries, strict=True):
            url = entry.canonical_url[:2000]
            if key in known:
                if self.changes_from_entry(known[key], entry, now=now):
                    one_by_one.append(entry)
            elif key in seen or (url and (url in taken or url in seen)):
                one_by_one.append(entry)  # shares a page, or repeats an entry of this chunk
            else:
                fresh.append(self.new_from_entry(source, entry, url_key=url, now=now))
            seen.update({key, url} - {""})
        new_ids: list[int] = []
        try:
            with transaction.atomic():
                new_ids = [a.pk for a in self.bulk_create(fresh)]
        except IntegrityError:  # another poll stored some of them meanwhile: one by one
            one_by_one = [e for e in entries if guid_key(e.guid) not in known] + one_by_one
        rejected = 0
        for entry in one_by_one:
            try:
                with transaction.atomic():
                    article, created = self.upsert_from_entry(source, entry, now=now, known=known)
            except DatabaseError:  # one entry the database refuses must not cost the others
                logger.exception("storing an entry of %s failed", source.feed_url)
                rejected += 1
                continue
            if created:
                new_ids.append(article.pk)
        return new_ids, rejected

    def new_from_entry(self, source: Source, entry: EntryData, *, url_key: str, now: datetime) -> Article:
        published = entry.published_at
        if published and published > now:
            published = now  # a clock or time zone error at the publisher
        return Article(
            source=source,
            guid=guid_key(entry.guid),
            url=entry.url[:2000],
            canonical_url=url_key,
            title=entry.title[:1000],
            summary_html=entry.summary_html,
            content_html=entry.content_html,
            author=entry.author[:300],
            published_at=published,
            image_url=entry.image_url[:2000],
            excerpt=excerpt_of(html_to_text(entry.summary_html or entry.content_html)),
            language=entry.language[:16] or source.language,
            category_id=source.category_id,
            collected_at=now,
            sort_at=published or now,
            state_changed_at=now,
        )

    def changes_from_entry(self, existing: Article, entry: EntryData, *, now: datetime) -> dict:
        changes = {}
        for name in self.UPDATABLE:
            value = getattr(entry, name)
            if name == "published_at" and (value is None or value > now):
                continue
            if name in self.LIMITS:
                value = value[: self.LIMITS[name]]
            if value and getattr(existing, name) != value:
                changes[name] = value
        return changes

    def _find(self, source: Source, guid: str, canonical_url: str) -> tuple[Article | None, str]:
        """The stored article this entry is, if any, and the URL key a new one gets.

        Another source's article at the same address is a syndicated copy. An article of
        this same source at that address but with another entry id is a different entry
        sharing one page (a live blog, a link blog): it gets a key of its own, so neither
        overwrites the other."""
        match = self.filter(source=source, guid=guid).first()
        canonical_url = canonical_url[:2000]
        if match is not None or not canonical_url:
            return match, canonical_url
        holder = self.filter(canonical_url=canonical_url).first()
        if holder is None or holder.source_id != source.pk:
            return holder, canonical_url
        page, _, anchor = canonical_url[:1900].partition("#")
        digest = hashlib.sha256(guid.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        own = f"{page}#{anchor + '~' if anchor else ''}entry-{digest}"
        return self.filter(canonical_url=own).first(), own


class Article(models.Model):
    class State(models.TextChoices):
        DISCOVERED = "discovered", "Discovered"
        EXTRACTING = "extracting", "Extracting"
        EXTRACTED = "extracted", "Extracted"
        ENRICHING = "enriching", "Enriching"
        ENRICHED = "enriched", "Enriched"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="articles")
    guid = models.CharField(max_length=600, help_text="The feed entry's id.")
    url = models.URLField(max_length=2000)
    canonical_url = models.URLField(max_length=2000, blank=True)
    title = models.CharField(max_length=1000)
    author = models.CharField(max_length=300, blank=True)
    summary_html = models.TextField(blank=True, help_text="The feed's summary, sanitized.")
    content_html = models.TextField(blank=True, help_text="The feed's full content, sanitized.")
    text = models.TextField(blank=True, help_text="Main text extracted from the page.")
    excerpt = models.CharField(max_length=400, blank=True, help_text="The first lines, for cards.")
    text_hash = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Fingerprint of the text: syndicated copies share it.",
    )
    image_url = models.URLField(max_length=2000, blank=True)
    language = models.CharField(max_length=16, blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL)
    audiences = models.ManyToManyField(AudienceTag, blank=True, related_name="articles")
    story = models.ForeignKey(
        Story, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles"
    )

    published_at = models.DateTimeField(null=True, blank=True, help_text="The publisher's timestamp.")
    collected_at = models.DateTimeField(default=timezone.now, help_text="When we first saw it.")
    sort_at = models.DateTimeField(default=timezone.now, db_index=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.DISCOVERED, db_index=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    extract_attempts = models.PositiveSmallIntegerField(default=0)
    # A step that raised (aggregator.ingest.leases.record_failure): which, how many times
    # in a row, and the last error. At STEP_MAX_FAILURES the sweep hands it out no more.
    failed_step = models.CharField(max_length=16, blank=True)
    step_failures = models.PositiveSmallIntegerField(default=0)
    step_error = models.TextField(blank=True)
    extracted_at = models.DateTimeField(null=True, blank=True)
    extraction_error = models.TextField(blank=True)
    model_instructions = models.JSONField(
        default=list,
        blank=True,
        help_text="Sentences of the text addressed to an AI model (prompt injection), found at "
        'extraction: [{"sentence", "reason"}]. They are never summarized, cited or shown.',
    )

    sentences = models.JSONField(
        default=list,
        blank=True,
        help_text="The body split once into sentences (enrichment.sentences): claims cite them by "
        "number (1 is the first), and the passages readers see are built from them.",
    )

    is_featured = models.BooleanField(default=False)
    is_hidden = models.BooleanField(default=False)

    objects = ArticleManager()

    class Meta:
        ordering = ["-sort_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["source", "guid"], name="article_unique_source_guid"),
            models.UniqueConstraint(
                fields=["canonical_url"],
                condition=~models.Q(canonical_url=""),
                name="article_unique_canonical_url",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "state_changed_at"]),
            # Listings rank recent articles plus every featured one (aggregator.listings).
            models.Index(fields=["sort_at"], condition=models.Q(is_featured=True), name="article_featured"),
            # One index per listing order (front page, week: sort_at; search: see
            # aggregator.search): category pages and feeds, source feeds, source pages
            # (featured first), and a story's reports.
            models.Index(fields=["category", "sort_at", "id"], name="article_category_order"),
            models.Index(fields=["source", "sort_at", "id"], name="article_source_order"),
            models.Index(fields=["source", "is_featured", "sort_at", "id"], name="article_source_page"),
            models.Index(fields=["story", "published_at", "collected_at", "id"], name="article_story_order"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("article", args=[self.pk])

    @property
    def body_text(self) -> str:
        return self.text or html_to_text(self.content_html or self.summary_html)

    def claim(self, *, from_state: str | tuple[str, ...], to_state: str, now: datetime, **also) -> bool:
        """Move to `to_state` only if still in `from_state` (one of them): one worker wins.
        `also`: other fields written by the same UPDATE."""
        states = (from_state,) if isinstance(from_state, str) else from_state
        updated = Article.objects.filter(pk=self.pk, state__in=states).update(
            state=to_state, state_changed_at=now, **also
        )
        if updated:
            self.state, self.state_changed_at = to_state, now
        return bool(updated)


class Lease(models.Model):
    """Who holds a unit of work, and until when (aggregator.ingest.leases).

    The database is the record of work; the broker is only a fast path. A worker claims
    a unit (a source's poll, an article's next step) with a token and a short lease that
    it renews while it works, and deletes the row when it is done. A row whose time has
    passed belongs to a dead worker or a lost task: the next tick hands the work out
    again. An empty token is a unit handed to the broker that no worker has taken yet
    (any worker may take it). Not watched by the page cache: nothing here is on a page.
    """

    POLL = "poll"
    ARTICLE = "article"

    kind = models.CharField(max_length=16)
    object_id = models.BigIntegerField()
    token = models.CharField(max_length=32, blank=True)
    until = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "object_id"], name="lease_unique_unit")]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} until {self.until:%H:%M:%S}"


class ContentGeneration(models.Model):
    """One row whose number moves after every committed change readers could see
    (aggregator.pagecache): cached pages are keyed on it, so a correction shows at once."""

    value = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"content generation {self.value}"
