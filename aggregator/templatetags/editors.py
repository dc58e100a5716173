from django import template

from aggregator.desk import desk

register = template.Library()


@register.simple_tag
def editors_desk():
    return desk()
