"""Spool progress belongs to a project, so a project-scoped token sees only its own spools

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Progress recorded before this revision keeps a NULL project: it belongs to no single
    # project, so only tokens for all projects see it (it is gone once its spool is replayed).
    with op.batch_alter_table("metric_spools", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_metric_spools_project_id_projects"), "projects", ["project_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("metric_spools", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_metric_spools_project_id_projects"), type_="foreignkey"
        )
        batch_op.drop_column("project_id")
