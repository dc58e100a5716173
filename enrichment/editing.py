"""Editing a card at the desk: one field per part, one form per takeaway, implication and
timeline entry with the sentences it cites (by number: the passage is then built from the
article's stored sentences) or a passage quoted from the text; every claim an editor
writes is held to the same grounding rules as the machine's (enrichment.grounding)."""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.utils import timezone

from enrichment.grounding import TLDR_PARTS, ArticleText, check_cited, check_claim, cited_ids
from enrichment.models import Correction, Insight
from enrichment.sentences import sentences_of

TEXTAREA = forms.Textarea(attrs={"rows": 2})
PASSAGE = forms.Textarea(attrs={"rows": 2, "class": "passage-field"})
SENTENCE_HELP = (
    "Numbers of the article's sentences (listed above), e.g. 3, 4; or leave empty and quote a passage."
)


def sentence_ids_field(label: str = "Sentences it cites") -> forms.CharField:
    return forms.CharField(
        max_length=40,
        required=False,
        label=label,
        help_text=SENTENCE_HELP,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "class": "sentence-ids"}),
    )


def ground(claim: str, ids: str, passage: str, article: ArticleText, *, date: str = "") -> tuple[str, str]:
    """(passage, reason): cited sentences when numbers are given, else the quoted passage."""
    if cited_ids(ids):
        return check_cited(claim, ids, article, date=date)
    return passage, check_claim(claim, passage, article, date=date)


def quoted_instead(form: forms.Form, ids_field: str, passage_field: str) -> bool:
    """The editor rewrote the passage and left the sentence numbers: the quotation wins."""
    return passage_field in form.changed_data and ids_field not in form.changed_data


def article_text_for(insight: Insight) -> ArticleText:
    article = insight.article
    others = []
    if article.story_id:
        others = [
            a.body_text
            for a in article.story.articles.exclude(pk=article.pk).only("text", "content_html")[:20]
        ]
    return ArticleText(
        body=article.body_text,
        title=article.title,
        language=article.language,
        claim_language=insight.language,
        others=others,
        sentences=sentences_of(article),
    )


class GroundedForm(forms.Form):
    """A claim and its passage; the passage must hold the claim in the article's text."""

    claim_field = "text"

    def __init__(self, *args, article: ArticleText, **kwargs):
        super().__init__(*args, **kwargs)
        self.article = article

    def claim(self, data: dict) -> str:
        return data.get(self.claim_field, "")

    def clean(self):
        data = super().clean()
        if not data or (self.empty_permitted and not self.has_changed()) or data.get("DELETE"):
            return data
        if quoted_instead(self, "sentences", "passage"):
            data["sentences"] = ""
        passage, reason = ground(
            self.claim(data),
            data.get("sentences", ""),
            data.get("passage", ""),
            self.article,
            date=data.get("date", ""),
        )
        if reason:
            raise forms.ValidationError(f"Not shown to readers: {reason}.")
        data["passage"], data["sentences"] = passage, cited_ids(data.get("sentences", ""))
        return data


class TakeawayForm(GroundedForm):
    text = forms.CharField(max_length=400, widget=TEXTAREA, label="Takeaway")
    sentences = sentence_ids_field()
    passage = forms.CharField(max_length=5000, widget=PASSAGE, required=False, label="Passage of the article")


class ImplicationForm(GroundedForm):
    prediction = forms.CharField(max_length=400, widget=TEXTAREA)
    reasoning = forms.CharField(max_length=400, widget=TEXTAREA, required=False)
    sentences = sentence_ids_field()
    passage = forms.CharField(max_length=5000, widget=PASSAGE, required=False, label="Passage of the article")

    def claim(self, data: dict) -> str:
        return f"{data.get('prediction', '')} {data.get('reasoning', '')}".strip()


class TimelineForm(GroundedForm):
    date = forms.RegexField(
        regex=r"^\d{4}(-\d{2}(-\d{2})?)?$", max_length=10, help_text="YYYY, YYYY-MM or YYYY-MM-DD"
    )
    text = forms.CharField(max_length=300, widget=TEXTAREA, label="What happened")
    sentences = sentence_ids_field()
    passage = forms.CharField(max_length=5000, widget=PASSAGE, required=False, label="Passage of the article")
    article_id = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = forms.Form.clean(self)
        if data and data.get("article_id") and not data.get("passage") and not data.get("sentences"):
            data["sentences"] = []
            return data  # an earlier article of the story, linked rather than quoted
        return super().clean()


class CardForm(forms.Form):
    title = forms.CharField(max_length=500, required=False, help_text="Empty: the publisher's headline.")
    hook = forms.CharField(max_length=90, required=False, widget=TEXTAREA)
    hook_sentences = sentence_ids_field("Hook: sentences it cites")
    hook_passage = forms.CharField(max_length=5000, required=False, widget=PASSAGE, label="Hook: passage")
    what_changed = forms.CharField(max_length=600, required=False, widget=TEXTAREA)
    what_changed_sentences = sentence_ids_field("What changed: sentences it cites")
    what_changed_passage = forms.CharField(
        max_length=5000, required=False, widget=PASSAGE, label="What changed: passage"
    )
    why_it_matters = forms.CharField(max_length=600, required=False, widget=TEXTAREA)
    why_it_matters_sentences = sentence_ids_field("Why it matters: sentences it cites")
    why_it_matters_passage = forms.CharField(
        max_length=5000, required=False, widget=PASSAGE, label="Why it matters: passage"
    )
    what_next = forms.CharField(
        max_length=600, required=False, widget=TEXTAREA, help_text="Advice: shown only if not empty."
    )
    mark_reviewed = forms.BooleanField(
        required=False, help_text="Put “Reviewed by an editor” on the public card."
    )

    def __init__(self, *args, article: ArticleText, **kwargs):
        super().__init__(*args, **kwargs)
        self.article = article

    def clean(self):
        data = super().clean()
        for part in TLDR_PARTS:
            if quoted_instead(self, f"{part}_sentences", f"{part}_passage"):
                data[f"{part}_sentences"] = ""
            if data.get(part):
                ids = data.get(f"{part}_sentences", "")
                passage, reason = ground(data[part], ids, data.get(f"{part}_passage", ""), self.article)
                if reason:
                    field = f"{part}_sentences" if cited_ids(ids) else f"{part}_passage"
                    self.add_error(field, f"Not shown to readers: {reason}.")
                else:
                    data[f"{part}_passage"] = passage
            data[f"{part}_sentences"] = cited_ids(data.get(f"{part}_sentences", ""))
        return data


def _formset(form, *, extra: int = 1):
    return forms.formset_factory(form, extra=extra, can_delete=True, max_num=12, validate_max=True)


TakeawayFormSet = _formset(TakeawayForm)
ImplicationFormSet = _formset(ImplicationForm)
TimelineFormSet = _formset(TimelineForm)
LISTS = {"takeaways": TakeawayFormSet, "implications": ImplicationFormSet, "timeline": TimelineFormSet}
FIELDS = {
    "takeaways": ("text", "sentences", "passage"),
    "implications": ("prediction", "reasoning", "sentences", "passage"),
    "timeline": ("date", "text", "sentences", "passage", "article_id"),
}


def _ids_text(ids) -> str:
    return ", ".join(str(i) for i in cited_ids(ids))


def card_forms(insight: Insight, data=None) -> tuple[CardForm, dict[str, forms.BaseFormSet]]:
    article = article_text_for(insight)
    initial = {
        name: getattr(insight, name)
        for name in ("title", "hook", "what_changed", "why_it_matters", "what_next")
    }
    initial |= {f"{part}_passage": (insight.support or {}).get(part, "") for part in TLDR_PARTS}
    cites = insight.support_sentences or {}
    initial |= {f"{part}_sentences": _ids_text(cites.get(part)) for part in TLDR_PARTS}
    card = CardForm(data, initial=initial, article=article)
    lists = {
        name: formset(
            data,
            prefix=name,
            initial=[
                {k: _ids_text(item.get(k)) if k == "sentences" else item.get(k) for k in FIELDS[name]}
                for item in getattr(insight, name)
            ],
            form_kwargs={"article": article},
        )
        for name, formset in LISTS.items()
    }
    return card, lists


def save_card(insight: Insight, card: CardForm, lists: dict, *, editor) -> list[str]:
    """Store a valid edit; each changed part becomes a public correction. The changed parts."""
    data = card.cleaned_data
    new = {name: data[name] for name in ("title", "hook", "what_changed", "why_it_matters", "what_next")}
    for name, formset in lists.items():
        items = []
        for form in formset.forms:
            row = form.cleaned_data
            if not row or row.get("DELETE"):
                continue
            item = {k: row.get(k) for k in FIELDS[name]}
            if name == "timeline" and not item.get("article_id"):
                item["article_id"] = None
            items.append({**item, "supported": True})
        new[name] = items
    changed = []
    with transaction.atomic():
        for name, value in new.items():
            old = getattr(insight, name)
            if _comparable(name, old) != _comparable(name, value):
                changed.append(name)
                Correction.objects.create(
                    insight=insight, field=name, before=_as_text(old), after=_as_text(value), editor=editor
                )
                setattr(insight, name, value)
        insight.support = {
            p: data[f"{p}_passage"] for p in TLDR_PARTS if data.get(p) and data.get(f"{p}_passage")
        }
        insight.support_sentences = {
            p: data[f"{p}_sentences"] for p in insight.support if data.get(f"{p}_sentences")
        }
        if data.get("mark_reviewed"):
            insight.reviewed_at, insight.reviewed_by = timezone.now(), editor
        insight.save()
    return changed


def _comparable(name: str, value):
    if name in FIELDS:
        return [
            {k: (cited_ids(item.get(k)) if k == "sentences" else item.get(k)) or None for k in FIELDS[name]}
            for item in value
        ]
    return value or ""


def _as_text(value) -> str:
    if isinstance(value, list):
        return "\n".join(
            str(v.get("text") or v.get("prediction") or v) if isinstance(v, dict) else str(v) for v in value
        )
    return str(value)
