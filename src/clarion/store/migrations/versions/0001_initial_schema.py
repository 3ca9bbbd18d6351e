"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:36:51.355984
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import clarion.store.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope IN ('ingest', 'admin')", name=op.f('ck_api_keys_scope')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('first_name', sa.String(length=200), nullable=True),
    sa.Column('last_name', sa.String(length=200), nullable=True),
    sa.Column('locale', sa.String(length=35), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('timezone_source', sa.String(length=16), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('city', sa.String(length=200), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('anniversary', sa.Date(), nullable=True),
    sa.Column('custom_dates', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('merged_into', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['merged_into'], ['contacts.id'], name=op.f('fk_contacts_merged_into_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('external_id', name=op.f('uq_contacts_external_id'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_country'), ['country'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_phone'), ['phone'], unique=False)

    op.create_table('erasure_tombstones',
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('erased_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('identity_hash', name=op.f('pk_erasure_tombstones'))
    )
    op.create_table('suppressions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("reason IN ('hard_bounce', 'complaint', 'unsubscribe', 'manual', 'erased')", name=op.f('ck_suppressions_reason')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('address_hash', name=op.f('uq_suppressions_address_hash'))
    )
    op.create_table('topics',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('double_opt_in', sa.Boolean(), nullable=False),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topics')),
    sa.UniqueConstraint('key', name=op.f('uq_topics_key'))
    )
    op.create_table('consent_ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('topic', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('occurred_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('proof', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('subject_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_consent_ledger_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_ledger'))
    )
    with op.batch_alter_table('consent_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_ledger_contact_id_channel_topic'), ['contact_id', 'channel', 'topic'], unique=False)

    op.create_table('consents',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('topic', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ledger_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.CheckConstraint("status IN ('opted_in', 'opted_out', 'pending_confirmation')", name=op.f('ck_consents_status')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_consents_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'channel', 'topic', name=op.f('pk_consents'))
    )
    op.create_table('contact_aggregates',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_seen_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('revenue_total', sa.Float(), nullable=False),
    sa.Column('first_order_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_order_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('avg_order_value', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_aggregates_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_contact_aggregates'))
    )
    op.create_table('contact_event_stats',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_event_stats_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'name', name=op.f('pk_contact_event_stats'))
    )
    with op.batch_alter_table('contact_event_stats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_event_stats_name_last_at'), ['name', 'last_at'], unique=False)

    op.create_table('devices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('token', sa.Text(), nullable=False),
    sa.Column('p256dh', sa.String(length=200), nullable=True),
    sa.Column('auth', sa.String(length=100), nullable=True),
    sa.Column('app_id', sa.String(length=200), nullable=True),
    sa.Column('platform', sa.String(length=32), nullable=True),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('invalidated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('fcm', 'apns', 'webpush')", name=op.f('ck_devices_kind')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_devices_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('kind', 'token', name=op.f('uq_devices_kind_token'))
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_contact_id'), ['contact_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('occurred_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('received_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('properties', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('order_id', sa.String(length=200), nullable=True),
    sa.Column('revenue', sa.Float(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_events_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('message_id', name=op.f('uq_events_message_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_contact_id_name_occurred_at'), ['contact_id', 'name', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_name_occurred_at'), ['name', 'occurred_at'], unique=False)

    op.create_table('identities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('external_id', 'email', 'phone', 'anonymous_id')", name=op.f('ck_identities_kind')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_identities_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identities')),
    sa.UniqueConstraint('kind', 'value', name=op.f('uq_identities_kind_value'))
    )
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identities_contact_id'), ['contact_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identities_contact_id'))

    op.drop_table('identities')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_name_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_events_contact_id_name_occurred_at'))

    op.drop_table('events')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_contact_id'))

    op.drop_table('devices')
    with op.batch_alter_table('contact_event_stats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_event_stats_name_last_at'))

    op.drop_table('contact_event_stats')
    op.drop_table('contact_aggregates')
    op.drop_table('consents')
    with op.batch_alter_table('consent_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_ledger_contact_id_channel_topic'))

    op.drop_table('consent_ledger')
    op.drop_table('topics')
    op.drop_table('suppressions')
    op.drop_table('erasure_tombstones')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_phone'))
        batch_op.drop_index(batch_op.f('ix_contacts_email'))
        batch_op.drop_index(batch_op.f('ix_contacts_country'))

    op.drop_table('contacts')
    op.drop_table('api_keys')
