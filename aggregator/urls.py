from django.contrib import admin
from django.contrib.sitemaps.views import sitemap
from django.urls import path

from aggregator import desk_views, feeds, views
from aggregator.sitemaps import SITEMAPS
from aggregator.throttle import throttled

admin.site.site_header = "Newsdesk editors"
admin.site.site_title = "Newsdesk admin"
admin.site.login = throttled(admin.site.login)

urlpatterns = [
    path("", views.front, name="front"),
    path("a/<int:pk>/", views.article, name="article"),
    path("story/<int:pk>/", views.story, name="story"),
    path("category/<slug:slug>/", views.category, name="category"),
    path("for/<slug:slug>/", views.audience, name="audience"),
    path("source/<slug:slug>/", views.source, name="source"),
    path("search/", views.search, name="search"),
    path("week/<int:year>/<int:week>/", views.week, name="week"),
    path("recap/", views.recaps, name="recaps"),
    path("feeds/rss/", feeds.ArticleFeed(), name="feed-rss"),
    path("feeds/atom/", feeds.AtomArticleFeed(), name="feed-atom"),
    path("feeds/json/", feeds.json_feed, name="feed-json"),
    path("feeds/<str:kind>/<slug:slug>/rss/", feeds.ArticleFeed(), name="feed-rss-of"),
    path("feeds/<str:kind>/<slug:slug>/atom/", feeds.AtomArticleFeed(), name="feed-atom-of"),
    path("feeds/<str:kind>/<slug:slug>/json/", feeds.json_feed, name="feed-json-of"),
    path("feeds/recap/rss/", feeds.RecapFeed(), name="feed-recap-rss"),
    path("feeds/recap/atom/", feeds.AtomRecapFeed(), name="feed-recap-atom"),
    path("sitemap.xml", sitemap, {"sitemaps": SITEMAPS}, name="sitemap"),
    path("robots.txt", views.robots_txt, name="robots"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/desk/", desk_views.desk_page, name="desk"),
    path("admin/desk/card/<int:pk>/", desk_views.card_edit, name="desk-card"),
    path("admin/", admin.site.urls),
]
