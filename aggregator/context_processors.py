from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from aggregator.models import Category


def site(request):
    year, week, _ = timezone.localdate().isocalendar()
    return {
        "SITE_NAME": settings.SITE_NAME,
        "SITE_URL": settings.SITE_URL,
        "SITE_TIME_ZONE": settings.TIME_ZONE,
        "NAV_CATEGORIES": SimpleLazyObject(lambda: list(Category.objects.all())),
        "THIS_WEEK_URL": reverse("week", args=[year, week]),
    }
