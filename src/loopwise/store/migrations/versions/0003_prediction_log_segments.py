"""The prediction log's index of Parquet segments (a deployment's hour each)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:48:35.009520
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_segments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("num_rows", sa.BigInteger(), nullable=False),
        sa.Column("min_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("max_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_prediction_segments_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_segments")),
    )
    with op.batch_alter_table("prediction_segments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prediction_segments_deployment_hour",
            ["project_id", "deployment", "hour_ms"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_segments_deployment_hour")

    op.drop_table("prediction_segments")
