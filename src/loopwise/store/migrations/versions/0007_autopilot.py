"""The autopilot: each deployment's policy revisions and the decisions taken under them

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The primary key numbers a deployment's policies: revisions 1, 2, 3 … with no gaps.
    op.create_table(
        "autopilot_policies",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=250), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_autopilot_policies_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("deployment_id", "revision", name=op.f("pk_autopilot_policies")),
    )
    # The primary key is what lets exactly one of two controllers record decision N.
    op.create_table(
        "autopilot_decisions",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=250), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_autopilot_decisions_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("deployment_id", "seq", name=op.f("pk_autopilot_decisions")),
    )


def downgrade() -> None:
    op.drop_table("autopilot_decisions")
    op.drop_table("autopilot_policies")
