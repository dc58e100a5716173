"""The editors' desk and its card editor: thin views over aggregator.desk and
enrichment.editing."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from aggregator.desk import desk


@staff_member_required
def desk_page(request: HttpRequest) -> HttpResponse:
    return render(request, "desk/desk.html", {"panels": desk(), "now": timezone.now()})
