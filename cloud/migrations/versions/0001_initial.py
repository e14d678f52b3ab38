"""Initial schema of the cloud store: registry, alerts, episodes, windows, status, acknowledgements, audit.

Frozen: it spells its types out rather than importing cloud.store.schema, so later model edits need
a new revision (autogenerate one, then review it).

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:58:17.030645

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite auto-increments only INTEGER PRIMARY KEY

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('alerts',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('episode_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('alert_type', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('onset_gateway_us', sa.BigInteger(), nullable=False),
    sa.Column('onset_device_us', sa.BigInteger(), nullable=True),
    sa.Column('window_id', sa.Uuid(as_uuid=False), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('model_versions', JSON, nullable=False),
    sa.Column('reconstructed_leads', JSON, nullable=False),
    sa.Column('details', JSON, nullable=False),
    sa.Column('schema_version', sa.SmallInteger(), nullable=False),
    sa.Column('received_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_alerts')),
    sa.UniqueConstraint('alert_id', name=op.f('uq_alerts_alert_id'))
    )
    op.create_index(op.f('ix_alerts_episode_id'), 'alerts', ['episode_id'])
    op.create_index('ix_alerts_patient_onset', 'alerts', ['patient_id', 'onset_gateway_us'])
    op.create_index(op.f('ix_alerts_window_id'), 'alerts', ['window_id'])

    op.create_table('audit_log',
    sa.Column('id', SEQ, autoincrement=True, nullable=False),
    sa.Column('at_us', sa.BigInteger(), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('details', JSON, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_at_us'), 'audit_log', ['at_us'])
    op.create_index(op.f('ix_audit_log_target'), 'audit_log', ['target'])
    op.create_index(op.f('ix_audit_log_user'), 'audit_log', ['user'])

    op.create_table('device_status',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('t_device_us', sa.BigInteger(), nullable=False),
    sa.Column('battery_pct', sa.SmallInteger(), nullable=True),
    sa.Column('connected', sa.Boolean(), nullable=False),
    sa.Column('lead_off', JSON, nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('firmware', sa.String(length=64), nullable=False),
    sa.Column('received_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_status'))
    )
    op.create_table('episodes',
    sa.Column('episode_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('alert_type', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('priority_rank', sa.SmallInteger(), nullable=False),
    sa.Column('onset_gateway_us', sa.BigInteger(), nullable=False),
    sa.Column('window_id', sa.Uuid(as_uuid=False), nullable=True),
    sa.Column('raised', sa.Boolean(), nullable=False),
    sa.Column('cleared', sa.Boolean(), nullable=False),
    sa.Column('first_received_us', sa.BigInteger(), nullable=False),
    sa.Column('last_received_us', sa.BigInteger(), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=128), nullable=True),
    sa.Column('acknowledged_us', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('episode_id', name=op.f('pk_episodes'))
    )
    op.create_index('ix_episodes_open_patient', 'episodes', ['cleared', 'patient_id', 'onset_gateway_us'])

    op.create_table('gateway_status',
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('t_gateway_us', sa.BigInteger(), nullable=False),
    sa.Column('streams', sa.Integer(), nullable=False),
    sa.Column('outbox_depth', sa.BigInteger(), nullable=False),
    sa.Column('software', sa.String(length=64), nullable=False),
    sa.Column('received_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_gateway_status'))
    )
    op.create_table('patients',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_patients'))
    )
    op.create_table('windows',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('window_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('t0_us', sa.BigInteger(), nullable=False),
    sa.Column('fs_hz', sa.Integer(), nullable=False),
    sa.Column('lead_mask', sa.Integer(), nullable=False),
    sa.Column('reconstructed_mask', sa.Integer(), nullable=False),
    sa.Column('n_samples', sa.Integer(), nullable=False),
    sa.Column('lsb_nv', sa.Integer(), nullable=False),
    sa.Column('has_uncertainty', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('received_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_windows')),
    sa.UniqueConstraint('window_id', name=op.f('uq_windows_window_id'))
    )
    op.create_index('ix_windows_device_t0', 'windows', ['device_id', 't0_us'])
    op.create_index('ix_windows_patient_t0', 'windows', ['patient_id', 't0_us'])

    op.create_table('acknowledgements',
    sa.Column('id', SEQ, autoincrement=True, nullable=False),
    sa.Column('episode_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('at_us', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.episode_id'], name=op.f('fk_acknowledgements_episode_id_episodes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acknowledgements'))
    )
    op.create_index(op.f('ix_acknowledgements_episode_id'), 'acknowledgements', ['episode_id'])

    op.create_table('devices',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('credentials_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.patient_id'], name=op.f('fk_devices_patient_id_patients')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_devices'))
    )
    op.create_index(op.f('ix_devices_patient_id'), 'devices', ['patient_id'])



def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_devices_patient_id'), table_name='devices')

    op.drop_table('devices')
    op.drop_index(op.f('ix_acknowledgements_episode_id'), table_name='acknowledgements')

    op.drop_table('acknowledgements')
    op.drop_index('ix_windows_patient_t0', table_name='windows')
    op.drop_index('ix_windows_device_t0', table_name='windows')

    op.drop_table('windows')
    op.drop_table('patients')
    op.drop_table('gateway_status')
    op.drop_index('ix_episodes_open_patient', table_name='episodes')

    op.drop_table('episodes')
    op.drop_table('device_status')
    op.drop_index(op.f('ix_audit_log_user'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_target'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_at_us'), table_name='audit_log')

    op.drop_table('audit_log')
    op.drop_index(op.f('ix_alerts_window_id'), table_name='alerts')
    op.drop_index('ix_alerts_patient_onset', table_name='alerts')
    op.drop_index(op.f('ix_alerts_episode_id'), table_name='alerts')

    op.drop_table('alerts')
