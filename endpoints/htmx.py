"""When to answer an htmx request with a fragment."""


def wants_fragment(request) -> bool:
    """A fragment only for a plain htmx request: a boosted link wants a whole page, and so
    does a history restore (htmx 2 sends HX-Request on it too, after a cache miss)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
