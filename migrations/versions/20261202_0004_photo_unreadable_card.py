"""photo.unreadable_card: the scanner saw a card-like object but read no code

Revision ID: 0004_photo_unreadable_card
Revises: 0003_correction_action
Create Date: 2026-12-02 01:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_photo_unreadable_card'
down_revision = '0003_correction_action'
branch_labels = None
depends_on = None


def upgrade():
    # photos scanned before this column existed had no such check: false, as before
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unreadable_card', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.drop_column('unreadable_card')
