"""segments and scores

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:13:42.273822
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import clarion.store.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Segments' "performed X within N days" scans events by name and time: covering the contact id too
    # spares a table visit per event.
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_name_occurred_at')
        batch_op.create_index('ix_events_name_occurred_at_contact_id', ['name', 'occurred_at', 'contact_id'],
                              unique=False)
    op.create_table('model_fits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model', sa.String(length=32), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('log_likelihood', sa.Float(), nullable=True),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('fitted_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_fits'))
    )
    with op.batch_alter_table('model_fits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_fits_model_fitted_at'), ['model', 'fitted_at'], unique=False)

    op.create_table('segments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('rule', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('refresh_minutes', sa.Integer(), nullable=True),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('refreshed_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('full_refreshed_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('event_mark', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ledger_mark', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('engagement_mark', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_segments_name'))
    )
    op.create_table('workspace_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_workspace_settings'))
    )
    op.create_table('contact_scores',
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rfm_r', sa.Integer(), nullable=True),
    sa.Column('rfm_f', sa.Integer(), nullable=True),
    sa.Column('rfm_m', sa.Integer(), nullable=True),
    sa.Column('rfm_segment', sa.String(length=32), nullable=True),
    sa.Column('rfm_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('lead_score', sa.Float(), nullable=True),
    sa.Column('lead_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('p_alive', sa.Float(), nullable=True),
    sa.Column('expected_purchases', sa.Float(), nullable=True),
    sa.Column('expected_order_value', sa.Float(), nullable=True),
    sa.Column('lifetime_value', sa.Float(), nullable=True),
    sa.Column('predicted_at', clarion.store.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_scores_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_contact_scores'))
    )
    with op.batch_alter_table('contact_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_scores_rfm_segment'), ['rfm_segment'], unique=False)

    op.create_table('engagements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('received', 'opened', 'clicked', 'converted')", name=op.f('ck_engagements_action')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_engagements_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_engagements'))
    )
    with op.batch_alter_table('engagements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagements_campaign_id_action'), ['campaign_id', 'action'], unique=False)
        batch_op.create_index(batch_op.f('ix_engagements_contact_id_action_occurred_at'), ['contact_id', 'action', 'occurred_at'], unique=False)

    op.create_table('rfm_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_segment', sa.String(length=32), nullable=True),
    sa.Column('to_segment', sa.String(length=32), nullable=True),
    sa.Column('at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_rfm_transitions_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rfm_transitions'))
    )
    with op.batch_alter_table('rfm_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rfm_transitions_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_rfm_transitions_contact_id'), ['contact_id'], unique=False)

    op.create_table('segment_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('segment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('change', sa.String(length=8), nullable=False),
    sa.Column('at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("change IN ('entered', 'left')", name=op.f('ck_segment_changes_change')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_segment_changes_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_changes_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_changes'))
    )
    with op.batch_alter_table('segment_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_changes_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_segment_changes_segment_id_id'), ['segment_id', 'id'], unique=False)

    op.create_table('segment_members',
    sa.Column('segment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entered_at', clarion.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_segment_members_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_members_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'contact_id', name=op.f('pk_segment_members'))
    )
    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_members_contact_id'), ['contact_id'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_updated_at', ['updated_at'], unique=False)




def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_name_occurred_at_contact_id')
        batch_op.create_index('ix_events_name_occurred_at', ['name', 'occurred_at'], unique=False)
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_updated_at')

    with op.batch_alter_table('segment_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_members_contact_id'))

    op.drop_table('segment_members')
    with op.batch_alter_table('segment_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_changes_segment_id_id'))
        batch_op.drop_index(batch_op.f('ix_segment_changes_contact_id'))

    op.drop_table('segment_changes')
    with op.batch_alter_table('rfm_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rfm_transitions_contact_id'))
        batch_op.drop_index(batch_op.f('ix_rfm_transitions_at'))

    op.drop_table('rfm_transitions')
    with op.batch_alter_table('engagements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engagements_contact_id_action_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_engagements_campaign_id_action'))

    op.drop_table('engagements')
    with op.batch_alter_table('contact_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_scores_rfm_segment'))

    op.drop_table('contact_scores')
    op.drop_table('workspace_settings')
    op.drop_table('segments')
    with op.batch_alter_table('model_fits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_fits_model_fitted_at'))

    op.drop_table('model_fits')

