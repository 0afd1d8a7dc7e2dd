"""family_link: e-mailed links to a family's cards; card grants opened through one end with it

Revision ID: 0009_family_links
Revises: 0008_galleries
Create Date: 2026-12-02 04:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009_family_links"
down_revision = "0008_galleries"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "family_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_family_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_family_link_token_hash")),
    )
    with op.batch_alter_table("family_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_family_link_email"), ["email"], unique=False)
    with op.batch_alter_table("card_grant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_link_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_card_grant_family_link_id_family_link"),
            "family_link",
            ["family_link_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade():
    with op.batch_alter_table("card_grant", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_card_grant_family_link_id_family_link"), type_="foreignkey")
        batch_op.drop_column("family_link_id")
    with op.batch_alter_table("family_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_family_link_email"))
    op.drop_table("family_link")
