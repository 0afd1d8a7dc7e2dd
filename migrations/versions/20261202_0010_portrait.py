"""person.portrait_photo_id: the photo an admin picked for the yearbook (none: the first after the card)

Revision ID: 0010_portrait
Revises: 0009_family_links
Create Date: 2026-12-02 04:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0010_portrait"
down_revision = "0009_family_links"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("portrait_photo_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_person_portrait_photo_id_photo", "photo", ["portrait_photo_id"], ["id"], ondelete="SET NULL"
        )


def downgrade():
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_constraint("fk_person_portrait_photo_id_photo", type_="foreignkey")
        batch_op.drop_column("portrait_photo_id")
