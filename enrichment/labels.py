"""What every surface says about machine text: who wrote it. The same words on cards,
pages, feeds, link previews and JSON-LD."""

from __future__ import annotations


def author_label(insight) -> str:
    """ "Automatic summary" for the extractive enricher, "AI-generated (model)" otherwise."""
    if insight is None:
        return ""
    if insight.backend == "extractive":
        return "Automatic summary"
    return f"AI-generated ({insight.model_name})" if insight.model_name else "AI-generated"


def labelled(insight, text: str) -> str:
    """Machine text with its label in front: "Automatic summary: …"."""
    return f"{author_label(insight)}: {text}" if text and insight is not None else text


def description(article, insight, *, limit: int = 200) -> str:
    """A page's description: the labelled hook, else the publisher's own excerpt."""
    if insight is not None and insight.hook:
        return labelled(insight, insight.hook)[:limit]
    return (article.excerpt or "")[:limit]
