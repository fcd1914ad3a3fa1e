"""The local cache of Vobiz data, the sync state, and the audit log.

Vobiz is the source of truth; these rows are a copy that lets browsing never wait on it.
No SIP password is ever stored here.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Upper
from django.db.models.lookups import IsNull
from django.utils import timezone
from django.utils.functional import cached_property

# A registration with less than this left is "expiring" (the list's filter and its icon).
EXPIRING_WINDOW = timedelta(minutes=5)


class Application(models.Model):
    """A Vobiz application (call routing), as last seen by a sync or a live read."""

    app_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=255, blank=True, db_index=True)
    default_endpoint_app = models.BooleanField(default=False)
    raw = models.JSONField(default=dict)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "app_id"]

    def __str__(self):
        return self.name or self.app_id


class Endpoint(models.Model):
    """A Vobiz SIP endpoint, flattened into indexed columns for filtering and sorting.

    ``app_id`` is a plain column rather than a foreign key: an endpoint may point at an
    application the cache has not seen yet, and sync order must not matter.
    """

    endpoint_id = models.CharField(max_length=32, unique=True)
    username = models.CharField(max_length=255)
    alias = models.CharField(max_length=255, blank=True)
    sip_uri = models.CharField(max_length=512, blank=True)
    sub_account = models.CharField(max_length=64, blank=True)
    app_id = models.CharField(max_length=32, blank=True)
    app_name = models.CharField(max_length=255, blank=True)
    sip_registered = models.BooleanField(default=False)
    sip_contact = models.CharField(max_length=1000, blank=True)
    sip_user_agent = models.CharField(max_length=512, blank=True)
    sip_expires = models.DateTimeField(null=True, blank=True)
    # NULL: Vobiz did not report the permission (the docs' own examples omit them); it is
    # unknown, never filled in with the documented default.
    allow_voice = models.BooleanField(null=True, blank=True)
    allow_message = models.BooleanField(null=True, blank=True)
    allow_video = models.BooleanField(null=True, blank=True)
    allow_same_domain = models.BooleanField(null=True, blank=True)
    allow_other_domains = models.BooleanField(null=True, blank=True)
    allow_phones = models.BooleanField(null=True, blank=True)
    allow_apps = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict)
    # Changes whenever anything we show changes; an incremental sync skips equal rows.
    fingerprint = models.CharField(max_length=64, blank=True)
    # Changes whenever the registration does (registered or not, contact, device; not a
    # renewal's new expiry): a sync compares it to know, without reading the old row, which
    # rows changed registration (endpoints.history).
    registration_key = models.CharField(max_length=16, blank=True)
    # Registration history, kept by endpoints.history from what syncs and live reads observe.
    # Since when the endpoint has been registered without a break (NULL when offline, or
    # when it was already registered as history began: SyncState.history_since).
    online_since = models.DateTimeField(null=True, blank=True)
    # When an offline endpoint was last seen registered; NULL while it is registered (it is
    # being seen) and for one never seen registered since history began.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_drop_at = models.DateTimeField(null=True, blank=True)  # when it last went offline
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["username", "id"]
        # One index per way the list sorts, each ending in ``id`` (the list's tie-breaker), so
        # a page is an index walk that stops after the rows shown, and a deep page can be
        # found from the index alone. Filters ride on the same indexes (equality on the
        # leading column); the application filter with the default sort has its own.
        # Migration 0003 adds what cannot be declared here for both databases: PostgreSQL's
        # trigram indexes for "contains" searches and DESC NULLS LAST twins of the nullable
        # sort indexes; on SQLite the two name indexes also carry username and alias.
        indexes = [
            models.Index(fields=["username", "id"], name="ep_username"),  # Meta.ordering
            models.Index(Upper("username"), F("id"), name="ep_username_upper"),
            models.Index(Upper("alias"), F("id"), name="ep_alias_upper"),
            models.Index(fields=["sip_registered", "sip_expires", "id"], name="ep_reg_expires"),
            # The status sort: registered or not, then expiry with "no expiry" last (it never
            # runs out), spelled with IS NULL so that one index serves it both ways on both
            # databases (SQLite cannot build an index NULLS LAST).
            models.Index(F("sip_registered"), IsNull(F("sip_expires"), True), F("sip_expires"),
                         F("id"), name="ep_status_sort"),
            models.Index(fields=["sip_contact", "id"], name="ep_contact"),
            models.Index(fields=["sip_expires", "id"], name="ep_expires"),
            models.Index(fields=["app_name", "id"], name="ep_app_name"),
            models.Index(fields=["sub_account", "id"], name="ep_sub_account"),
            models.Index(fields=["updated_at", "id"], name="ep_updated"),
            models.Index(F("app_id"), Upper("username"), F("id"), name="ep_app_username"),
            # The "Last seen" sort: registered last ascending (they are being seen), and
            # among the others "never seen" first, then the longest unseen; spelled with IS
            # NOT NULL like the status sort so that one index serves it both ways. Also
            # what the "Not seen for" filter reads.
            models.Index(F("sip_registered"), IsNull(F("last_seen_at"), False),
                         F("last_seen_at"), F("id"), name="ep_last_seen"),
            models.Index(fields=["last_drop_at", "id"], name="ep_last_drop"),
        ]
        permissions = [
            ("reset_endpoint_password", "Can reset an endpoint's SIP password"),
            ("manage_endpoint_application", "Can attach or detach an endpoint's application"),
            ("run_sync", "Can start a sync with Vobiz"),
            ("manage_staff", "Can set staff scopes and sub-account names"),
        ]

    def __str__(self):
        return self.username

    @cached_property
    def registration_status(self) -> str:
        """Now: "offline" (Vobiz did not report a registration), "registered", "expiring"
        (less than EXPIRING_WINDOW left), or "lapsed" (the expiry passed since the last
        sync; the device may have renewed, the next sync will tell)."""
        if not self.sip_registered:
            return "offline"
        if self.sip_expires is None:
            return "registered"
        now = timezone.now()
        if self.sip_expires <= now:
            return "lapsed"
        if self.sip_expires <= now + EXPIRING_WINDOW:
            return "expiring"
        return "registered"

    @cached_property
    def expires_in_future(self) -> bool | None:
        """Whether ``sip_expires`` is still ahead (None when there is no expiry)."""
        if self.sip_expires is None:
            return None
        return self.sip_expires > timezone.now()


class SyncState(models.Model):
    """One row per sync kind: what the last sync did and when.

    The row is also the lock: a sync claims it by flipping ``status`` to running in a
    conditional UPDATE, which is atomic on SQLite and PostgreSQL alike.
    """

    class Status(models.TextChoices):
        NEVER = "never", "Never synced"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        OK = "ok", "Succeeded"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=32, unique=True, default="endpoints")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEVER)
    queued_at = models.DateTimeField(null=True, blank=True)  # handed to the task queue
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    pages_fetched = models.PositiveIntegerField(default=0)
    total_remote = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    triggered_by = models.CharField(max_length=150, blank=True)
    # Bumped by every write that changes the endpoint cache: the list's counts and choices
    # are cached per version (endpoints.selectors), so a write is seen at once everywhere.
    data_version = models.PositiveBigIntegerField(default=0)
    # When registration history began: the first sync after it was installed took what it
    # saw as the starting point and recorded no change for it (endpoints.history).
    history_since = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name}: {self.status}"


class AuditEvent(models.Model):
    """Who did what to which endpoint, and how it ended. Never holds a password.

    ``sub_account`` is the endpoint's, recorded with the event, so that a scoped user sees
    only the events of their endpoints; NULL when not known (events about staff, and events
    recorded before scopes existed whose endpoint the cache no longer has): those only
    unscoped users see."""

    class Outcome(models.TextChoices):
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        UNCERTAIN = "uncertain", "Uncertain"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    username = models.CharField(max_length=150, blank=True)  # kept if the user is deleted
    action = models.CharField(max_length=32, db_index=True)
    endpoint_id = models.CharField(max_length=32, blank=True, db_index=True)
    endpoint_username = models.CharField(max_length=255, blank=True)
    # NULL (unknown) is not "" (the main account): only unscoped readers see such events.
    sub_account = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    changes = models.JSONField(default=dict, blank=True)  # field -> [old, new]
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    message = models.TextField(blank=True)
    # The bulk job this write was part of (one entry per endpoint, each linked to its job).
    job = models.ForeignKey("Job", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="audit_events")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["sub_account", "at", "id"], name="audit_sub_account")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.endpoint_username}"


class UserPreference(models.Model):
    """Per-user settings that follow the person across browsers (page size)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="vobiz_preference")
    page_size = models.PositiveSmallIntegerField(default=20)

    def __str__(self):
        return f"{self.user}: {self.page_size} per page"


class StaffScope(models.Model):
    """Which endpoints a staff member may see and change (``endpoints.scopes``). A user
    without a row sees everything, so nothing changes for existing users on upgrade."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="endpoint_scope")
    all_endpoints = models.BooleanField(default=True)
    # Sub-account auth ids ("" is the main account); used when all_endpoints is off. Empty
    # means nothing.
    sub_accounts = models.JSONField(default=list, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.user}: {'all endpoints' if self.all_endpoints else self.sub_accounts}"


class SubAccount(models.Model):
    """A local display name for a sub-account: the API knows it only by its auth id."""

    sub_account = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name", "sub_account"]

    def __str__(self):
        return f"{self.name} ({self.sub_account})"


class Job(models.Model):
    """One bulk action over many endpoints, run by a worker (``endpoints.jobs``).

    The per-endpoint state lives in JobItem rows, written before and after each Vobiz call:
    a worker can die between any two lines and the next one carries on from them. The task
    framework's own result is not the source of truth; this row is.
    """

    class Action(models.TextChoices):
        SET_APPLICATION = "set_application", "Change application"
        DETACH_APPLICATION = "detach_application", "Detach application"
        SET_PERMISSIONS = "set_permissions", "Set voice / message / video"
        RESET_PASSWORD = "reset_password", "Reset passwords"
        DELETE = "delete", "Delete endpoints"
        IMPORT_UPDATE = "import_update", "Update from a spreadsheet"
        IMPORT_CREATE = "import_create", "Create from a spreadsheet"

    class Status(models.TextChoices):
        # An import being previewed: nothing runs, nothing reaches Vobiz, until Run.
        DRAFT = "draft", "Preview"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        CANCELLING = "cancelling", "Cancelling"
        CANCELLED = "cancelled", "Cancelled"
        DONE = "done", "Finished"

    action = models.CharField(max_length=32, choices=Action.choices)
    params = models.JSONField(default=dict, blank=True)  # e.g. {"app_id": ...}; never a secret
    summary = models.CharField(max_length=300, blank=True)  # "Change application to Main IVR"
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="endpoint_jobs")
    created_by_username = models.CharField(max_length=150, blank=True)
    # The runner's scope when the job was made: None for all endpoints, else sub-account ids.
    scope = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED,
                              db_index=True)
    pause_reason = models.CharField(max_length=300, blank=True)
    # A 429's Retry-After: every thread of the job waits until then.
    pause_until = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    concurrency = models.PositiveSmallIntegerField(default=4)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The runner holding the job and its last sign of life: a runner whose heartbeat is
    # older than JOB_STALE_AFTER is presumed dead and another may claim the job.
    runner = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # New passwords of a bulk reset: handed over once, as a CSV, to the person who ran the
    # job, until this time; then wiped (JobItem.secret).
    credentials_until = models.DateTimeField(null=True, blank=True)
    credentials_downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Job {self.pk}: {self.summary or self.action} ({self.status})"


class JobItem(models.Model):
    """One endpoint of a job and how it ended."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "In progress"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        UNCERTAIN = "uncertain", "Uncertain"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    endpoint_id = models.CharField(max_length=32)
    endpoint_username = models.CharField(max_length=255, blank=True)
    sub_account = models.CharField(max_length=64, blank=True)
    # What the preview saw (alias, application, permissions): the worker skips an endpoint
    # that changed at Vobiz since.
    before = models.JSONField(default=dict, blank=True)
    # This endpoint's own target values (an import: {"alias": ..., "application": ...}; a
    # create: the new endpoint's fields, never its password). Empty for a bulk action,
    # whose target is the job's params.
    changes = models.JSONField(default=dict, blank=True)
    row = models.PositiveIntegerField(null=True, blank=True)  # its line in the spreadsheet
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Found in progress when its runner had died: the write may have been sent. It is re-read
    # (and its result checked) before anything is sent again.
    in_doubt = models.BooleanField(default=False)
    # A bulk reset's new password, encrypted (endpoints.secrets) until it is handed over or
    # the hand-over expires; then emptied.
    secret = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["job", "endpoint_id"],
                                               name="job_item_endpoint")]
        indexes = [models.Index(fields=["job", "state", "position"], name="job_item_state")]

    def __str__(self):
        return f"{self.job_id}/{self.endpoint_username or self.endpoint_id}: {self.state}"


class Schedule(models.Model):
    """A periodic task chain (``endpoints.periodic``): each run enqueues the next. ``token``
    names the live chain, so that a chain started twice (two workers booting) runs once:
    a run whose token is not the current one ends without doing anything."""

    name = models.CharField(max_length=32, unique=True)
    token = models.CharField(max_length=32)
    last_run_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name}: next {self.next_run_at}"


class CredentialLink(models.Model):
    """A view-once link that hands one new endpoint's SIP settings and password to the
    person setting up the device. The token (128+ random bits) is stored only as a hash; the
    password only encrypted (endpoints.secrets), and only until the link is opened, expires
    or is revoked."""

    token_hash = models.CharField(max_length=64, unique=True)
    endpoint_id = models.CharField(max_length=32, db_index=True)
    endpoint_username = models.CharField(max_length=255)
    sub_account = models.CharField(max_length=64, blank=True)
    secret = models.TextField(blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="credential_links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_username = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"link for {self.endpoint_username} ({self.state})"

    @property
    def state(self) -> str:
        if self.opened_at:
            return "opened"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"


class RegistrationEvent(models.Model):
    """One change of an endpoint's registration, as a sync or a live read observed it
    (``endpoints.history``). An unchanged registration (a renewal) writes nothing. Each row
    holds the registration as it was after the change (empty when it went offline); kept
    REGISTRATION_HISTORY_DAYS. No foreign key: history outlives a deleted endpoint."""

    class Kind(models.IntegerChoices):
        ONLINE = 1, "Came online"
        OFFLINE = 2, "Went offline"
        DEVICE = 3, "Device changed"
        ADDRESS = 4, "Registered from a new address"
        CONTACT = 5, "Contact changed"
        DELETED = 6, "Deleted while registered"

    id = models.BigAutoField(primary_key=True)
    endpoint_id = models.CharField(max_length=32)
    sub_account = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField()
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    contact = models.CharField(max_length=1000, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    received = models.CharField(max_length=255, blank=True)  # known from live reads only

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["endpoint_id", "at", "id"], name="reg_event_endpoint"),
            models.Index(fields=["at"], name="reg_event_at"),  # pruning
            # Drops per endpoint over a window (the overview's most flapping), from the index.
            models.Index(fields=["kind", "at", "endpoint_id"], name="reg_event_kind"),
        ]

    def __str__(self):
        return f"{self.endpoint_id} {self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"

    @property
    def is_device_change(self) -> bool:
        return self.kind == self.Kind.DEVICE


class RegistrationTally(models.Model):
    """Per hour and sub-account, how many endpoints came online and went offline: what the
    overview's chart is drawn from (30 days at 100,000 endpoints are millions of changes,
    and at most 720 hours x sub-accounts of tallies). Kept with the history."""

    hour = models.DateTimeField()
    sub_account = models.CharField(max_length=64, blank=True)
    came_online = models.PositiveIntegerField(default=0)
    went_offline = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hour", "sub_account"]
        constraints = [models.UniqueConstraint(fields=["hour", "sub_account"],
                                               name="reg_tally_hour_sub")]

    def __str__(self):
        where = self.sub_account or "main"
        return f"{self.hour:%Y-%m-%d %H:00} {where}: +{self.came_online} -{self.went_offline}"
