"""Sub-account scopes: which endpoints a staff member may see and change.

A scope is either everything (the default: a user without a scope row, an "all endpoints"
row, or a superuser) or a set of sub-account auth ids, where "" is the main account (endpoints
with no sub-account). An empty set means nothing, never everything. Every read of the endpoint
cache goes through ``selectors.endpoints_in_scope`` and every write through a service that
checks ``Scope.allows``: an endpoint outside the scope does not exist for that user (404).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db.models import Q

MAIN_ACCOUNT = ""
MAIN_ACCOUNT_LABEL = "Main account"


@dataclass(frozen=True)
class Scope:
    """``sub_accounts`` is None for everything, else the sub-account ids allowed ("" = main)."""

    sub_accounts: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.sub_accounts is None

    def allows(self, sub_account: str | None) -> bool:
        return self.everything or (sub_account or MAIN_ACCOUNT) in self.sub_accounts

    def q(self, field: str = "sub_account") -> Q:
        """The WHERE clause that keeps a query inside the scope."""
        if self.everything:
            return Q()
        if not self.sub_accounts:
            return Q(pk__in=[])  # nothing, never everything
        return Q(**{f"{field}__in": sorted(self.sub_accounts)})

    @property
    def key(self) -> str:
        """Names this scope in cache keys: counts are cached per scope."""
        if self.everything:
            return "all"
        joined = "\x1f".join(sorted(self.sub_accounts))
        return "s" + hashlib.sha256(joined.encode()).hexdigest()[:16]

    def ordered(self) -> list[str]:
        """The sub-accounts, main account first, then by id."""
        return sorted(self.sub_accounts or (), key=lambda s: (s != MAIN_ACCOUNT, s))


EVERYTHING = Scope()


def sub_account_label(sub_account: str, names: dict[str, str]) -> str:
    """ "Acme (SA_ABC123)", the bare id when it has no local name, "Main account" for ""."""
    if sub_account == MAIN_ACCOUNT:
        return MAIN_ACCOUNT_LABEL
    name = names.get(sub_account)
    return f"{name} ({sub_account})" if name else sub_account


def scope_label(scope: Scope, names: dict[str, str]) -> str:
    """ "all endpoints", "Acme, Globex", "Main account", or "nothing"."""
    if scope.everything:
        return "all endpoints"
    if not scope.sub_accounts:
        return "nothing"
    return ", ".join(names.get(s) or (MAIN_ACCOUNT_LABEL if s == MAIN_ACCOUNT else s)
                     for s in scope.ordered())


def request_scope(request) -> Scope:
    """The scope of the user making ``request``, read once per request (and afresh on the
    next one, so a change applies at once)."""
    scope = getattr(request, "_endpoint_scope", None)
    if scope is None:
        from .selectors import scope_get  # selectors imports this module

        scope = request._endpoint_scope = scope_get(user=request.user)
    return scope
