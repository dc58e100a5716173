"""The editors' card editor at the desk: one form per takeaway, implication and timeline
entry with its passage, each held to the grounding rules."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from enrichment.editing import card_forms
from enrichment.models import Correction, Insight

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(client):
    user = User.objects.create_user("ed", password="pw-for-tests", is_staff=True)
    user.groups.add(Group.objects.get(name="Editors"))
    client.force_login(user)
    return client


def form_data(insight: Insight) -> dict:
    """What the browser posts back for an unchanged card."""
    card, lists = card_forms(insight)
    data = {name: card.initial.get(name) or "" for name in card.fields if name != "mark_reviewed"}
    for name, formset in lists.items():
        data |= {f"{name}-{k}": v for k, v in formset.management_form.initial.items()}
        for form in formset.forms:
            for field in form.fields:
                value = (form.initial or {}).get(field)
                if value not in (None, False):
                    data[f"{form.prefix}-{field}"] = value
    return data


def test_the_card_editor_has_one_form_per_takeaway_with_its_passage(editor, demo):
    insight = next(i for i in Insight.objects.select_related("article") if len(i.takeaways) >= 2)
    html = editor.get(f"/admin/desk/card/{insight.pk}/").content.decode()
    for n in range(len(insight.takeaways)):
        assert f'name="takeaways-{n}-text"' in html and f'name="takeaways-{n}-passage"' in html
    assert f'name="takeaways-{len(insight.takeaways)}-text"' in html  # one empty form to add one
    assert "<table" not in html


def test_an_edit_whose_passage_is_not_in_the_text_is_refused_and_nothing_saved(editor, demo):
    insight = next(i for i in Insight.objects.select_related("article") if len(i.takeaways) >= 2)
    data = form_data(insight)
    data["takeaways-0-passage"] = "A law called the Synthetic Media Act was passed in 2025."
    response = editor.post(f"/admin/desk/card/{insight.pk}/", data)
    assert response.status_code == 200
    assert "Not shown to readers: the passage is not in the article" in response.content.decode()
    assert Insight.objects.get(pk=insight.pk).takeaways == insight.takeaways
    assert not Correction.objects.exists()


def test_a_changed_number_is_refused_too(editor, demo):
    insight = next(
        i
        for i in Insight.objects.select_related("article")
        if any(c.isdigit() for t in i.takeaways for c in t["text"])
    )
    n = next(k for k, t in enumerate(insight.takeaways) if any(c.isdigit() for c in t["text"]))
    data = form_data(insight)
    data[f"takeaways-{n}-text"] = "Exactly 987654 of them."
    html = editor.post(f"/admin/desk/card/{insight.pk}/", data).content.decode()
    assert "the number 987654 is not in its passage" in html


def test_a_grounded_edit_is_saved_as_a_public_correction(editor, client, demo):
    insight = next(i for i in Insight.objects.select_related("article") if len(i.takeaways) >= 2)
    data = form_data(insight)
    passage, before = insight.takeaways[0]["passage"], len(insight.takeaways)
    data["takeaways-0-text"] = passage  # the editor quotes the sentence instead
    data["takeaways-1-DELETE"] = "on"
    data["mark_reviewed"] = "on"
    response = editor.post(f"/admin/desk/card/{insight.pk}/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    insight.refresh_from_db()
    assert insight.reviewed_at and len(insight.takeaways) == before - 1
    assert insight.takeaways[0]["text"] == passage
    assert [c.field for c in Correction.objects.all()] == ["takeaways"]
    html = client.get(insight.article.get_absolute_url()).content.decode()
    assert "Reviewed by an editor on" in html and "takeaways changed" in html


def test_the_desk_links_each_card_to_review_to_its_editor(editor, demo):
    insight = Insight.objects.order_by("-generated_at").first()
    assert f"/admin/desk/card/{insight.pk}/" in editor.get("/admin/desk/").content.decode()
