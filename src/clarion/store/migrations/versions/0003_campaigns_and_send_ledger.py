"""campaigns and send ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:27:09.440353
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import clarion.store.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('templates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_templates')),
    sa.UniqueConstraint('name', name=op.f('uq_templates_name'))
    )
    op.create_table('throttle_buckets',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_throttle_buckets'))
    )
    op.create_table('throttle_slots',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=80), nullable=True),
    sa.Column('expires_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', 'slot', name=op.f('pk_throttle_slots'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('segment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('topic', sa.String(length=100), nullable=True),
    sa.Column('marketing', sa.Boolean(), nullable=False),
    sa.Column('eligibility', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('schedule', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('start_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('audience_count', sa.Integer(), nullable=True),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('broadcast', 'transactional')", name=op.f('ck_campaigns_kind')),
    sa.CheckConstraint("status IN ('draft', 'scheduled', 'running', 'paused', 'cancelled', 'completed')", name=op.f('ck_campaigns_status')),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_campaigns_segment_id_segments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['template_id'], ['templates.id'], name=op.f('fk_campaigns_template_id_templates'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_status_start_at'), ['status', 'start_at'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('step', sa.String(length=120), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('due_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=80), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('marketing', sa.Boolean(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('message_id', sa.String(length=250), nullable=True),
    sa.Column('provider_id', sa.String(length=250), nullable=True),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('first_attempt_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'leased', 'sent', 'deferred', 'failed', 'skipped', 'cancelled')", name=op.f('ck_deliveries_status')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_deliveries_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_deliveries_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('campaign_id', 'step', 'contact_id', 'channel', name=op.f('uq_deliveries_campaign_id_step_contact_id_channel'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_campaign_id_status_due_at'), ['campaign_id', 'status', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_contact_id_sent_at'), ['contact_id', 'sent_at'], unique=False)

    op.create_table('delivery_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=True),
    sa.Column('provider_id', sa.String(length=250), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('worker', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_delivery_log_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_log'))
    )
    with op.batch_alter_table('delivery_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_log_campaign_id_id'), ['campaign_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_log_delivery_id'), ['delivery_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_log_delivery_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_log_campaign_id_id'))

    op.drop_table('delivery_log')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_contact_id_sent_at'))
        batch_op.drop_index(batch_op.f('ix_deliveries_campaign_id_status_due_at'))

    op.drop_table('deliveries')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_status_start_at'))

    op.drop_table('campaigns')
    op.drop_table('throttle_slots')
    op.drop_table('throttle_buckets')
    op.drop_table('templates')
