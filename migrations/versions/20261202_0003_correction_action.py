"""corrections of one review action share an action id (one undo entry per action)

Revision ID: 0003_correction_action
Revises: 0002_drive_sharing
Create Date: 2026-12-02 01:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0003_correction_action"
down_revision = "0002_drive_sharing"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action_id", sa.String(length=32), nullable=True))
    # Corrections made before actions existed were one photo each: each is its own action.
    op.execute("UPDATE correction SET action_id = CAST(id AS VARCHAR(32))")
    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.alter_column("action_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index(batch_op.f("ix_correction_action_id"), ["action_id"], unique=False)


def downgrade():
    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_correction_action_id"))
        batch_op.drop_column("action_id")
