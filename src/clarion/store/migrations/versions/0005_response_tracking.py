"""response tracking: engagement details (delivery, link, machine, conversions) and tracked links

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 23:07:10.230633
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_campaign_report',
                              ['campaign_id', 'status', 'contact_id', 'sent_at', 'finished_at', 'reason'], unique=False)
    op.create_table('tracked_links',
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_tracked_links_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('delivery_id', 'position', name=op.f('pk_tracked_links'))
    )
    with op.batch_alter_table('engagements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('step', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('link', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('machine', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('agent', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('ip_prefix', sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('revenue', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_engagements_delivery_id_action'), ['delivery_id', 'action'], unique=False)
        batch_op.drop_index(batch_op.f('ix_engagements_campaign_id_action'))
        batch_op.create_index(batch_op.f('ix_engagements_campaign_id_action_machine_delivery_id_revenue'),
                              ['campaign_id', 'action', 'machine', 'delivery_id', 'revenue'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_engagements_event_id'), ['event_id'])
        batch_op.drop_constraint(op.f('ck_engagements_action'), type_='check')
        batch_op.create_check_constraint(op.f('ck_engagements_action'), "action IN ('received', 'delivered', 'opened', 'clicked', 'converted', 'bounced', 'complained', 'unsubscribed')")



def downgrade() -> None:
    op.execute("DELETE FROM engagements WHERE action NOT IN ('received', 'opened', 'clicked', 'converted')")
    with op.batch_alter_table('engagements', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_engagements_action'), type_='check')
        batch_op.create_check_constraint(op.f('ck_engagements_action'), "action IN ('received', 'opened', 'clicked', 'converted')")
        batch_op.drop_constraint(batch_op.f('uq_engagements_event_id'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_engagements_delivery_id_action'))
        batch_op.drop_index(batch_op.f('ix_engagements_campaign_id_action_machine_delivery_id_revenue'))
        batch_op.create_index(batch_op.f('ix_engagements_campaign_id_action'), ['campaign_id', 'action'], unique=False)
        batch_op.drop_column('revenue')
        batch_op.drop_column('event_id')
        batch_op.drop_column('ip_prefix')
        batch_op.drop_column('agent')
        batch_op.drop_column('reason')
        batch_op.drop_column('machine')
        batch_op.drop_column('link')
        batch_op.drop_column('step')
        batch_op.drop_column('delivery_id')

    op.drop_table('tracked_links')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_campaign_report')
