"""Indexes that fit the list's filters and sorts at 100,000 endpoints.

* One ``(column, id)`` index per sort of the list (``id`` is its tie-breaker), the status
  filter on ``(sip_registered, sip_expires, id)`` and the application filter with the default
  sort on ``(app_id, UPPER(username), id)``; see ``Endpoint.Meta.indexes``.
* The single-column ``db_index`` indexes they replace are dropped by name with plain SQL
  (the ``AlterField``s only update Django's state): on SQLite a real ``AlterField`` rebuilds
  the whole table, nine times here. On PostgreSQL Django had also made a
  ``varchar_pattern_ops`` twin of each of those columns that no query used; every index
  costs the sync a write per row, so they go too.
* PostgreSQL only: pg_trgm GIN indexes on ``UPPER(username)`` and ``UPPER(alias)``, the
  expression Django's ``icontains``/``istartswith`` compare (``UPPER(col::text) LIKE
  UPPER(%s)``), so "contains" and "starts with" searches do not read the whole table; and
  ``DESC NULLS LAST`` twins of the nullable sort indexes. SQLite only: the two name sort
  indexes also carry username and alias, for searches. The vendor-specific operations do
  nothing on the other database.
"""

import django.db.models.functions.text
from django.db import migrations, models

# The indexes db_index=True made (same names on SQLite and PostgreSQL), and their columns.
OLD_COLUMN_INDEXES = {
    "endpoints_endpoint_username_8b926e74": "username",
    "endpoints_endpoint_alias_835af283": "alias",
    "endpoints_endpoint_sub_account_19c0edfe": "sub_account",
    "endpoints_endpoint_app_id_36c1701f": "app_id",
    "endpoints_endpoint_app_name_d7228b3a": "app_name",
    "endpoints_endpoint_sip_registered_b092b224": "sip_registered",
    "endpoints_endpoint_sip_user_agent_5cd5d269": "sip_user_agent",
    "endpoints_endpoint_sip_expires_b2b7e77c": "sip_expires",
    "endpoints_endpoint_updated_at_691cfe36": "updated_at",
}
DROP_OLD = [f'DROP INDEX IF EXISTS "{name}"' for name in OLD_COLUMN_INDEXES] + [
    f'DROP INDEX IF EXISTS "{name}_like"' for name in OLD_COLUMN_INDEXES
]
RECREATE_OLD = [
    f'CREATE INDEX IF NOT EXISTS "{name}" ON "endpoints_endpoint" ("{column}")'
    for name, column in OLD_COLUMN_INDEXES.items()
]

TRIGRAM_INDEXES = [
    'CREATE INDEX IF NOT EXISTS "ep_username_trgm" ON "endpoints_endpoint" '
    'USING gin ((UPPER("username"::text)) gin_trgm_ops)',
    'CREATE INDEX IF NOT EXISTS "ep_alias_trgm" ON "endpoints_endpoint" '
    'USING gin ((UPPER("alias"::text)) gin_trgm_ops)',
]
DROP_TRIGRAM_INDEXES = [
    'DROP INDEX IF EXISTS "ep_username_trgm"',
    'DROP INDEX IF EXISTS "ep_alias_trgm"',
]


# PostgreSQL serves ``ORDER BY col DESC NULLS LAST`` (how the list sorts the nullable
# columns descending, so that rows without a value stay at the end) only from an index built
# that way; a backward scan of the ascending index gives NULLS FIRST. (The NOT NULL columns
# need no twin as long as the query says plain DESC, not DESC NULLS LAST.) SQLite needs
# none: there NULLs sort first, so DESC is already NULLS LAST.
DESC_INDEXES = [
    'CREATE INDEX IF NOT EXISTS "ep_expires_desc" ON "endpoints_endpoint" '
    '("sip_expires" DESC NULLS LAST, "id" DESC)',
    'CREATE INDEX IF NOT EXISTS "ep_updated_desc" ON "endpoints_endpoint" '
    '("updated_at" DESC NULLS LAST, "id" DESC)',
    'CREATE INDEX IF NOT EXISTS "ep_reg_expires_desc" ON "endpoints_endpoint" '
    '("sip_registered" DESC, "sip_expires" DESC NULLS LAST, "id" DESC)',
]
DROP_DESC_INDEXES = [
    'DROP INDEX IF EXISTS "ep_expires_desc"',
    'DROP INDEX IF EXISTS "ep_updated_desc"',
    'DROP INDEX IF EXISTS "ep_reg_expires_desc"',
]

# SQLite has no trigram index, so a "contains" search walks the list's sort index and tests
# every row. With username and alias in the index entries themselves, SQLite tests them there
# and reads a table row (~1 KB with the payload) only for the rows it shows: a rare term at
# 100,000 endpoints takes ~20 ms instead of ~250 ms. Django's state keeps the narrow
# definition; these replace the two indexes under the same names, on SQLite only (on
# PostgreSQL such entries could outgrow a b-tree page, and the trigram indexes do this job).
SQLITE_WIDE_SORT_INDEXES = [
    'DROP INDEX IF EXISTS "ep_username_upper"',
    'CREATE INDEX "ep_username_upper" ON "endpoints_endpoint" '
    '((UPPER("username")), "id", "username", "alias")',
    'DROP INDEX IF EXISTS "ep_alias_upper"',
    'CREATE INDEX "ep_alias_upper" ON "endpoints_endpoint" '
    '((UPPER("alias")), "id", "username", "alias")',
]
SQLITE_NARROW_SORT_INDEXES = [
    'DROP INDEX IF EXISTS "ep_username_upper"',
    'CREATE INDEX "ep_username_upper" ON "endpoints_endpoint" ((UPPER("username")), "id")',
    'DROP INDEX IF EXISTS "ep_alias_upper"',
    'CREATE INDEX "ep_alias_upper" ON "endpoints_endpoint" ((UPPER("alias")), "id")',
]


class VendorSQL(migrations.RunSQL):
    """RunSQL that runs on one database vendor and does nothing on the others."""

    vendor = ""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class PostgresOnlySQL(VendorSQL):
    vendor = "postgresql"


class SQLiteOnlySQL(VendorSQL):
    vendor = "sqlite"


def _state_only_alter(name, field):
    return migrations.AlterField(model_name="endpoint", name=name, field=field)


class Migration(migrations.Migration):

    dependencies = [
        ("endpoints", "0002_roles"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="endpoint", name="endpoint_username_upper"),
        migrations.RemoveIndex(model_name="endpoint", name="endpoint_alias_upper"),
        migrations.RemoveIndex(model_name="endpoint", name="endpoint_reg_expires"),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(DROP_OLD, reverse_sql=RECREATE_OLD)],
            state_operations=[
                _state_only_alter("username", models.CharField(max_length=255)),
                _state_only_alter("alias", models.CharField(blank=True, max_length=255)),
                _state_only_alter("sub_account", models.CharField(blank=True, max_length=64)),
                _state_only_alter("app_id", models.CharField(blank=True, max_length=32)),
                _state_only_alter("app_name", models.CharField(blank=True, max_length=255)),
                _state_only_alter("sip_registered", models.BooleanField(default=False)),
                _state_only_alter("sip_user_agent",
                                  models.CharField(blank=True, max_length=512)),
                _state_only_alter("sip_expires", models.DateTimeField(blank=True, null=True)),
                _state_only_alter("updated_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["username", "id"], name="ep_username"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(django.db.models.functions.text.Upper("username"),
                               models.F("id"), name="ep_username_upper"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(django.db.models.functions.text.Upper("alias"),
                               models.F("id"), name="ep_alias_upper"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["sip_registered", "sip_expires", "id"],
                               name="ep_reg_expires"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["sip_contact", "id"], name="ep_contact"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["sip_expires", "id"], name="ep_expires"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["app_name", "id"], name="ep_app_name"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["sub_account", "id"], name="ep_sub_account"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(fields=["updated_at", "id"], name="ep_updated"),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(models.F("app_id"),
                               django.db.models.functions.text.Upper("username"),
                               models.F("id"), name="ep_app_username"),
        ),
        # Not django.contrib.postgres's TrigramExtension: its reverse runs on SQLite too. The
        # extension stays on the way back (something else may use it).
        PostgresOnlySQL("CREATE EXTENSION IF NOT EXISTS pg_trgm",
                        reverse_sql=migrations.RunSQL.noop),
        PostgresOnlySQL(TRIGRAM_INDEXES, reverse_sql=DROP_TRIGRAM_INDEXES),
        PostgresOnlySQL(DESC_INDEXES, reverse_sql=DROP_DESC_INDEXES),
        # The pattern-ops twin Django made for the unique endpoint_id: nothing searches ids
        # with LIKE, and the sync pays for every index on every row.
        PostgresOnlySQL(
            'DROP INDEX IF EXISTS "endpoints_endpoint_endpoint_id_ed43922d_like"',
            reverse_sql='CREATE INDEX IF NOT EXISTS "endpoints_endpoint_endpoint_id_ed43922d_like" '
                        'ON "endpoints_endpoint" ("endpoint_id" varchar_pattern_ops)',
        ),
        SQLiteOnlySQL(SQLITE_WIDE_SORT_INDEXES, reverse_sql=SQLITE_NARROW_SORT_INDEXES),
    ]
