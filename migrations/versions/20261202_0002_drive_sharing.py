"""person: Drive folder link and who it is shared with

Revision ID: 0002_drive_sharing
Revises: 0001
Create Date: 2026-12-02 01:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002_drive_sharing'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drive_folder_link', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('drive_shared_with', sa.String(length=320), nullable=True))


def downgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('drive_shared_with')
        batch_op.drop_column('drive_folder_link')
