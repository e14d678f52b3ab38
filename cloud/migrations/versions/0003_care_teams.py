"""Care teams: ``team`` on users and patients (``[accounts] care_team_scoping``).

Frozen like 0001: types are spelt out here, not imported from cloud.store.schema.

Revision ID: 0003_care_teams
Revises: 0002
Create Date: 2026-12-07 20:40:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003_care_teams'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('team', sa.String(length=64), nullable=True))
    with op.batch_alter_table('patients') as batch:
        batch.add_column(sa.Column('team', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_patients_team'), 'patients', ['team'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_patients_team'), table_name='patients')
    with op.batch_alter_table('patients') as batch:
        batch.drop_column('team')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('team')
