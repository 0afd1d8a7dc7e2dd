"""batch.form_token: the new-batch form's one-time token, so a double submit makes one batch

Revision ID: 0006_batch_form_token
Revises: 0005_security
Create Date: 2026-12-02 01:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0006_batch_form_token"
down_revision = "0005_security"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("form_token", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_batch_form_token", ["form_token"])


def downgrade():
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.drop_constraint("uq_batch_form_token", type_="unique")
        batch_op.drop_column("form_token")
