"""Spreadsheets in and out: the CSV export of a filter, and the two imports (update existing
endpoints; create new ones), read and checked against the cache before anything runs.

Reading is forgiving about what spreadsheets write (comma or semicolon, a byte-order mark or
none, quoted fields with newlines, UTF-8 or Windows-1252) and strict about the rest: a file
too big, too long, empty, binary or without its required column is refused with one sentence
before any row is looked at. Nothing here talks to Vobiz: an import becomes a draft job that
runs only when someone presses Run (``endpoints.jobs``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone

from . import roles, selectors
from .csvfiles import FORMULA_STARTS
from .forms import EndpointCreateForm
from .models import Application, Endpoint
from .scopes import Scope
from .validators import validate_alias
from .vobiz import EDITABLE_PERMISSIONS, LOCKED_PERMISSIONS, PERMISSION_DEFAULTS, PERMISSIONS

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000

EXPORT_COLUMNS = ["endpoint_id", "username", "alias", "application_id", "application_name",
                  *PERMISSIONS, "sub_account", "registered", "contact", "user_agent", "expires",
                  "updated"]
# Columns of the export that describe the endpoint and are never imported (what Vobiz
# observes, or derived from another column).
READ_ONLY_COLUMNS = {"application_name", "registered", "contact", "user_agent", "expires",
                     "updated"}
# Set at creation: an import may repeat them, never change them.
LOCKED_COLUMNS = ["username", "sub_account", *LOCKED_PERMISSIONS]
CREATE_COLUMNS = ["username", "alias", "application", "sub_account", *PERMISSIONS, "password"]

TRUE_WORDS = {"true", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "no", "n", "0", "off"}


class SpreadsheetRefused(ValueError):
    """The file as a whole cannot be used; the message is one sentence for the page."""


# --- export -------------------------------------------------------------------------------


def _flag(value) -> str:
    return "" if value is None else ("true" if value else "false")


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def export_rows(*, filters: dict, scope: Scope):
    """Every cached endpoint matching ``filters`` within ``scope``, as export rows, read in
    chunks as the response streams (memory stays flat whatever the count)."""
    now = timezone.now()
    qs = (selectors.endpoints_in_scope(scope).filter(selectors.endpoint_filter_q(filters))
          .order_by("username", "id")
          .values_list("endpoint_id", "username", "alias", "app_id", "app_name", *PERMISSIONS,
                       "sub_account", "sip_registered", "sip_expires", "sip_contact",
                       "sip_user_agent", "updated_at"))
    for row in qs.iterator(chunk_size=2000):
        (endpoint_id, username, alias, app_id, app_name, *rest) = row
        perms, rest = rest[:len(PERMISSIONS)], rest[len(PERMISSIONS):]
        sub_account, registered, expires, contact, user_agent, updated = rest
        live = bool(registered and (expires is None or expires > now))
        yield [endpoint_id, username, alias, app_id, app_name if app_id else "",
               *(_flag(p) for p in perms), sub_account, _flag(live), contact, user_agent,
               _moment(expires), _moment(updated)]


# --- reading a file -----------------------------------------------------------------------


@dataclass
class Sheet:
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (line number in the file, column -> value)
    ignored: list[str] = field(default_factory=list)  # unknown columns


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise SpreadsheetRefused("This is not a CSV file: it holds binary data. Export the "
                                 "sheet as CSV and upload that.")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # what Excel writes on Windows


def _column(name: str) -> str:
    return name.strip().strip("\ufeff").strip().lower().replace(" ", "_").replace("-", "_")


def unneutralise(value: str) -> str:
    """The cell as the user meant it: the export's quote before a formula character (see
    csvfiles.safe_cell) is taken off again, so a file round-trips unchanged."""
    if len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def read_sheet(upload, *, known: list[str], required: str) -> Sheet:
    """The rows of an uploaded CSV file; raises SpreadsheetRefused for a file that cannot
    be used at all."""
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_BYTES:
        raise SpreadsheetRefused("The file is larger than 10 MB: split it into smaller files.")
    raw = upload.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise SpreadsheetRefused("The file is larger than 10 MB: split it into smaller files.")
    if not raw.strip():
        raise SpreadsheetRefused("The file is empty.")
    text = _decode(raw)
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    if first_line.count("\t") > max(first_line.count(";"), first_line.count(",")):
        delimiter = "\t"
    try:
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise SpreadsheetRefused("The file is empty.")
        columns = [_column(cell) for cell in header]
        if required not in columns:
            raise SpreadsheetRefused(
                f"The file has no {required} column: its first row must name the columns "
                f"({', '.join(known[:5])}, ...).")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise SpreadsheetRefused(f"The file has more than {MAX_ROWS:,} rows: split it "
                                         "into smaller files.")
            cells = {col: unneutralise(values[i].strip()) if i < len(values) else ""
                     for i, col in enumerate(columns) if col}
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise SpreadsheetRefused(f"The file could not be read as CSV ({exc}).") from exc
    if not rows:
        raise SpreadsheetRefused("The file has no rows below its header.")
    ignored = [c for c in dict.fromkeys(columns) if c and c not in known]
    return Sheet(columns=[c for c in columns if c in known], rows=rows, ignored=ignored)


def _flag_cell(value: str):
    """True/False from a cell, None for blank; raises ValueError for anything else."""
    word = value.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(value)


# --- import to update ---------------------------------------------------------------------


@dataclass
class RowProblem:
    row: int
    column: str
    message: str


@dataclass
class UpdatePlan:
    changes: list  # (row, Endpoint, {field: new value}, {field: old value})
    unchanged: int
    problems: list[RowProblem]
    ignored: list[str]
    rows: int


def plan_update(sheet: Sheet, *, scope: Scope, user) -> UpdatePlan:
    """What an update import would change, row by row, from the cache only: the editable
    fields that differ (alias, voice, message, video, application), rows unchanged, and rows
    in error with their row number, column and message."""
    ids = {cells.get("endpoint_id", "") for _, cells in sheet.rows}
    cached = {e.endpoint_id: e for e in selectors.endpoints_in_scope(scope)
              .filter(endpoint_id__in=[i for i in ids if i])}
    apps = set(Application.objects.values_list("app_id", flat=True))
    may_link = user.has_perm(roles.MANAGE_APPLICATION)
    seen: dict[str, int] = {}
    plan = UpdatePlan(changes=[], unchanged=0, problems=[], ignored=sheet.ignored,
                      rows=len(sheet.rows))
    for line, cells in sheet.rows:
        problems = []

        def problem(column, message, _line=line, _problems=problems):
            _problems.append(RowProblem(_line, column, message))

        endpoint_id = cells.get("endpoint_id", "")
        endpoint = cached.get(endpoint_id)
        if not endpoint_id:
            problem("endpoint_id", "No endpoint_id on this row.")
        elif endpoint_id in seen:
            problem("endpoint_id", f"This endpoint is already on row {seen[endpoint_id]}.")
        elif endpoint is None:
            problem("endpoint_id", "Unknown endpoint (or outside your scope).")
        if problems:
            plan.problems.extend(problems)
            continue
        seen[endpoint_id] = line
        for column in LOCKED_COLUMNS:
            if column not in cells or not cells[column]:
                continue
            current = getattr(endpoint, column)
            value = cells[column]
            if column in LOCKED_PERMISSIONS:
                try:
                    value = _flag_cell(value)
                except ValueError:
                    problem(column, "Write true or false.")
                    continue
                if current is None:
                    continue  # Vobiz did not report it: nothing to compare
            if value != current:
                problem(column, "Cannot be changed after creation.")
        new, old = {}, {}
        if "alias" in cells and cells["alias"] != endpoint.alias:
            try:
                validate_alias(cells["alias"])
            except Exception as exc:  # noqa: BLE001 - a ValidationError: its message
                problem("alias", " ".join(getattr(exc, "messages", [str(exc)])))
            else:
                new["alias"], old["alias"] = cells["alias"], endpoint.alias
        for name in EDITABLE_PERMISSIONS:
            if name not in cells:
                continue
            try:
                value = _flag_cell(cells[name])
            except ValueError:
                problem(name, "Write true or false (or leave it blank for unchanged).")
                continue
            if value is not None and value != getattr(endpoint, name):
                new[name], old[name] = value, getattr(endpoint, name)
        if "application_id" in cells and cells["application_id"] != endpoint.app_id:
            app_id = cells["application_id"]
            if app_id and app_id not in apps:
                problem("application_id", f"There is no application {app_id} (refresh from "
                                          "Vobiz if it is new).")
            elif not may_link:
                problem("application_id", "Your role may not change applications.")
            else:
                new["application"], old["application"] = app_id, endpoint.app_id
        if problems:
            plan.problems.extend(problems)
        elif new:
            plan.changes.append((line, endpoint, new, old))
        else:
            plan.unchanged += 1
    return plan


# --- import to create ---------------------------------------------------------------------


@dataclass
class CreatePlan:
    rows_to_create: list  # (row, service data without the password, password or "")
    problems: list[RowProblem]
    ignored: list[str]
    rows: int


def plan_create(sheet: Sheet, *, scope: Scope) -> CreatePlan:
    """Every row checked with the create form's own rules, plus duplicates within the file
    and usernames that already exist; the applications by name or id."""
    apps = list(Application.objects.only("app_id", "name"))
    by_name: dict[str, list[str]] = {}
    for app in apps:
        by_name.setdefault(app.name.strip().lower(), []).append(app.app_id)
    sub_accounts = selectors.sub_account_choices_for_create(scope=scope)
    typed = [cells.get("username", "") for _, cells in sheet.rows]
    # Exactly as stored: Vobiz refuses a username it already has (409).
    existing = set(Endpoint.objects.filter(username__in=typed).values_list("username",
                                                                           flat=True))
    seen: dict[str, int] = {}
    plan = CreatePlan(rows_to_create=[], problems=[], ignored=sheet.ignored,
                      rows=len(sheet.rows))
    for line, cells in sheet.rows:
        problems = []
        username = cells.get("username", "")
        data = {"username": username, "alias": cells.get("alias", ""),
                "sub_account": cells.get("sub_account", "") if "sub_account" in cells
                else (sub_accounts[0] if sub_accounts else "")}
        password = cells.get("password", "")
        data["password"] = password or "generated-at-run-00"
        reference = cells.get("application", "")
        if reference:
            if reference in {a.app_id for a in apps}:
                data["application"] = reference
            else:
                matches = by_name.get(reference.strip().lower(), [])
                if len(matches) == 1:
                    data["application"] = matches[0]
                elif matches:
                    problems.append(RowProblem(line, "application", "Several applications "
                                               "have this name: use its id."))
                else:
                    problems.append(RowProblem(line, "application", "No application has this "
                                               "name or id."))
        for name in PERMISSIONS:
            try:
                value = _flag_cell(cells.get(name, ""))
            except ValueError:
                problems.append(RowProblem(line, name, "Write true or false (or leave it blank "
                                           "for the default)."))
                continue
            if (PERMISSION_DEFAULTS[name] if value is None else value):
                data[name] = "on"
        form = EndpointCreateForm(data, applications=apps, sub_accounts=sub_accounts)
        if not form.is_valid():
            for name, errors in form.errors.items():
                column = name if name != "__all__" else "username"
                if name == "password" and not password:
                    continue
                for error in errors:
                    problems.append(RowProblem(line, column, error))
        key = username
        if username and key in seen:
            problems.append(RowProblem(line, "username", f"This username is already on row "
                                       f"{seen[key]}."))
        elif username and key in existing:
            problems.append(RowProblem(line, "username", "An endpoint with this username "
                                       "already exists."))
        if username:
            seen.setdefault(key, line)
        if problems:
            plan.problems.extend(problems)
            continue
        service = form.service_data()
        service.pop("password")
        plan.rows_to_create.append((line, service, password))
    return plan
