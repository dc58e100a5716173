"""The editors' desk and its card editor: thin views over aggregator.desk and
enrichment.editing."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from aggregator.desk import desk
from enrichment import editing
from enrichment.models import Insight


@staff_member_required
def desk_page(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/desk.html", {"panels": desk(), "now": timezone.now()})


@staff_member_required
@permission_required("enrichment.change_insight", raise_exception=True)
def card_edit(request: HttpRequest, pk: int) -> HttpResponse:
    insight = get_object_or_404(Insight.objects.select_related("article__source", "article__story"), pk=pk)
    if request.method == "POST":
        card, lists = editing.card_forms(insight, request.POST)
        if card.is_valid() and all(f.is_valid() for f in lists.values()):
            changed = editing.save_card(insight, card, lists, editor=request.user)
            messages.success(
                request,
                f"Saved. Corrections shown on the card: {', '.join(changed)}."
                if changed
                else "Saved, no change.",
            )
            return redirect("desk-card", pk=insight.pk)
        messages.error(request, "Nothing was saved: a claim below is not supported by its passage.")
    else:
        card, lists = editing.card_forms(insight)
    return render(
        request,
        "desk/card.html",
        {
            "insight": insight,
            "article": insight.article,
            "card": card,
            "lists": lists,
            "sentences": card.article.sentences,
        },
    )
