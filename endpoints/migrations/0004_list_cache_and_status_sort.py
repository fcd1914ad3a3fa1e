"""The list's counts cache and a status sort that one index serves both ways.

* ``SyncState.data_version``: bumped by every write to the endpoint cache; the list's counts
  and filter choices are cached per version.
* ``ep_status_sort``: ``(sip_registered, sip_expires IS NULL, sip_expires, id)``. The status
  sort orders by exactly these terms, ascending or all descending, so SQLite and PostgreSQL
  walk this index forwards or backwards and stop after one page. It replaces PostgreSQL's
  ``DESC NULLS LAST`` twin of ``ep_reg_expires`` (0003), which only that sort used;
  ``ep_reg_expires`` itself stays for the registration filters.
"""

import django.db.models.lookups
from django.db import migrations, models

DROP_REG_EXPIRES_DESC = 'DROP INDEX IF EXISTS "ep_reg_expires_desc"'
CREATE_REG_EXPIRES_DESC = (
    'CREATE INDEX IF NOT EXISTS "ep_reg_expires_desc" ON "endpoints_endpoint" '
    '("sip_registered" DESC, "sip_expires" DESC NULLS LAST, "id" DESC)'
)


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("endpoints", "0003_list_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncstate",
            name="data_version",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name="endpoint",
            index=models.Index(
                models.F("sip_registered"),
                django.db.models.lookups.IsNull(models.F("sip_expires"), True),
                models.F("sip_expires"),
                models.F("id"),
                name="ep_status_sort",
            ),
        ),
        migrations.RunPython(_on_postgres(DROP_REG_EXPIRES_DESC),
                             _on_postgres(CREATE_REG_EXPIRES_DESC)),
    ]
