"""Staff accounts and sessions, login failures, patient assignment, cloud escalation, model results.

Frozen like 0001: types are spelt out here, not imported from cloud.store.schema.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:01:42.711851

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite auto-increments only INTEGER PRIMARY KEY

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('users',
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_users'))
    )
    op.create_table('sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.Column('expires_us', sa.BigInteger(), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['username'], ['users.username'], name=op.f('fk_sessions_username_users')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_sessions'))
    )
    op.create_index(op.f('ix_sessions_expires_us'), 'sessions', ['expires_us'])
    op.create_index(op.f('ix_sessions_username'), 'sessions', ['username'])

    op.create_table('login_failures',
    sa.Column('id', SEQ, autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('at_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    op.create_index(op.f('ix_login_failures_at_us'), 'login_failures', ['at_us'])
    op.create_index(op.f('ix_login_failures_client'), 'login_failures', ['client'])
    op.create_index(op.f('ix_login_failures_username'), 'login_failures', ['username'])

    op.create_table('model_results',
    sa.Column('id', SEQ, autoincrement=True, nullable=False),
    sa.Column('window_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('alert_id', sa.Uuid(as_uuid=False), nullable=True),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('outputs', JSON, nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_results')),
    sa.UniqueConstraint('window_id', 'model', 'version', name=op.f('uq_model_results_window_id'))
    )
    op.create_index(op.f('ix_model_results_alert_id'), 'model_results', ['alert_id'])

    with op.batch_alter_table('episodes') as batch_op:
        batch_op.add_column(sa.Column('escalation_level', sa.SmallInteger(), server_default=sa.text('0'),
                                      nullable=False))
        batch_op.add_column(sa.Column('escalated_us', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('patients') as batch_op:
        batch_op.add_column(sa.Column('assigned_to', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('assigned_us', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('patients') as batch_op:
        batch_op.drop_column('assigned_us')
        batch_op.drop_column('assigned_to')

    with op.batch_alter_table('episodes') as batch_op:
        batch_op.drop_column('escalated_us')
        batch_op.drop_column('escalation_level')

    op.drop_index(op.f('ix_model_results_alert_id'), table_name='model_results')
    op.drop_table('model_results')
    op.drop_index(op.f('ix_login_failures_username'), table_name='login_failures')
    op.drop_index(op.f('ix_login_failures_client'), table_name='login_failures')
    op.drop_index(op.f('ix_login_failures_at_us'), table_name='login_failures')
    op.drop_table('login_failures')
    op.drop_index(op.f('ix_sessions_username'), table_name='sessions')
    op.drop_index(op.f('ix_sessions_expires_us'), table_name='sessions')
    op.drop_table('sessions')
    op.drop_table('users')
