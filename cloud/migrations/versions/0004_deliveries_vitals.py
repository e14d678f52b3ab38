"""Escalation deliveries (one row per channel message about an episode) and per-minute vitals.

Frozen like 0001: types are spelt out here, not imported from cloud.store.schema.

Revision ID: 0004_deliveries_vitals
Revises: 0003_care_teams
Create Date: 2026-12-08 03:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004_deliveries_vitals'
down_revision: str | Sequence[str] | None = '0003_care_teams'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'escalation_deliveries',
        sa.Column('id', _SEQ, autoincrement=True, nullable=False),
        sa.Column('episode_id', sa.Uuid(as_uuid=False), nullable=False),
        sa.Column('alert_id', sa.Uuid(as_uuid=False), nullable=True),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=False),
        sa.Column('level', sa.SmallInteger(), nullable=False),
        sa.Column('priority', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_us', sa.BigInteger(), nullable=False),
        sa.Column('next_attempt_us', sa.BigInteger(), nullable=False),
        sa.Column('delivered_us', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_deliveries')),
        sa.UniqueConstraint('episode_id', 'level', 'channel', name=op.f('uq_escalation_deliveries_episode_id')),
    )
    for col in ('episode_id', 'alert_id', 'status', 'next_attempt_us'):
        op.create_index(op.f(f'ix_escalation_deliveries_{col}'), 'escalation_deliveries', [col])
    op.create_table(
        'vitals_minutes',
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('minute_us', sa.BigInteger(), nullable=False),
        sa.Column('reports', sa.Integer(), nullable=False),
        sa.Column('hr_reports', sa.Integer(), nullable=False),
        sa.Column('hr_sum', sa.Float(), nullable=True),
        sa.Column('hr_min', sa.Float(), nullable=True),
        sa.Column('hr_max', sa.Float(), nullable=True),
        sa.Column('sqi_sum', sa.Float(), nullable=True),
        sa.Column('sqi_reports', sa.Integer(), nullable=False),
        sa.Column('battery_pct', sa.SmallInteger(), nullable=True),
        sa.PrimaryKeyConstraint('patient_id', 'minute_us', name=op.f('pk_vitals_minutes')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('vitals_minutes')
    for col in ('next_attempt_us', 'status', 'alert_id', 'episode_id'):
        op.drop_index(op.f(f'ix_escalation_deliveries_{col}'), table_name='escalation_deliveries')
    op.drop_table('escalation_deliveries')
