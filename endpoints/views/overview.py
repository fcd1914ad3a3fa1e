"""The Overview page: registered endpoints over time (a chart drawn by static/js/overview.js
from ``overview_data``, and the same numbers as a table in the page), the most flapping
endpoints, and the devices in use. Everything is read from the cache and the registration
history (``endpoints.overview``), within the user's scope; nothing calls Vobiz."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.timezone import get_current_timezone_name
from django.views.decorators.http import require_GET

from .. import history, overview, roles, selectors
from ..scopes import request_scope

TEMPLATE = "endpoints/overview.html"


def _period(request) -> tuple[overview.Period, str]:
    """The period asked for, else the default; and a sentence saying so when the one asked
    for is not known ("" when all is well)."""
    raw = request.GET.get("period")
    period = overview.period_get(raw)
    if period is not None:
        return period, ""
    default = overview.PERIODS[overview.DEFAULT_PERIOD]
    if raw is None:
        return default, ""
    shown = raw.strip()[:20] or "(empty)"
    return default, (f"Unknown period “{shown}”: showing the last {default.label}. "
                     "Choose 24 hours, 7 days or 30 days.")


@require_GET
@permission_required(roles.VIEW, raise_exception=True)
def overview_page(request):
    """The Overview page for ``?period=24h|7d|30d`` (anything else: 24 hours, with a
    message). Works without JavaScript: only the chart needs it."""
    period, problem = _period(request)
    if problem:
        messages.warning(request, problem)
    scope = request_scope(request)
    sync = selectors.sync_status_get()
    chart = overview.registration_chart_get(scope=scope, period=period)
    context = {
        "period": period,
        "periods": [{"key": p.key, "label": p.label, "current": p.key == period.key}
                    for p in overview.PERIODS.values()],
        "chart": chart,
        "data_url": f"{reverse('endpoints:overview_data')}?{urlencode({'period': period.key})}",
        "time_zone": get_current_timezone_name(),
        "flappers": overview.flapping_list(scope=scope, version=sync.data_version),
        "flap_drops": history.FLAP_DROPS,
        "user_agents": overview.user_agent_counts(scope=scope, version=sync.data_version),
        "sync": sync,
    }
    return render(request, TEMPLATE, context)


@require_GET
@permission_required(roles.VIEW, raise_exception=True)
def overview_data(request):
    """The chart's numbers as JSON (see RegistrationChart.as_json): ``period``, ``label``,
    ``since`` (ISO time history began, or null), ``now`` and ``registered_now``, and
    ``points`` [{t: epoch seconds, registered, drops (null for the last point, now)}]. An
    unknown period answers the default one, with ``message`` saying so."""
    period, problem = _period(request)
    data = overview.registration_chart_get(scope=request_scope(request), period=period).as_json()
    if problem:
        data["message"] = problem
    return JsonResponse(data)
