from django.contrib import admin
from django.urls import path

from aggregator import views

admin.site.site_header = "Newsdesk editors"
admin.site.site_title = "Newsdesk admin"

urlpatterns = [
    path("", views.front, name="front"),
    path("a/<int:pk>/", views.article, name="article"),
    path("category/<slug:slug>/", views.category, name="category"),
    path("source/<slug:slug>/", views.source, name="source"),
    path("admin/", admin.site.urls),
]
