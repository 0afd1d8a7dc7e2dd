"""gallery_link: private gallery links per family or person, by token hash

Revision ID: 0008_galleries
Revises: 0007_outbox
Create Date: 2026-12-02 03:45:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008_galleries"
down_revision = "0007_outbox"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "gallery_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("family_email", sa.String(length=320), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("first_opened_at", sa.DateTime(), nullable=True),
        sa.Column("last_opened_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "(family_email IS NULL) <> (person_id IS NULL)", name=op.f("ck_gallery_link_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["user.id"], name=op.f("fk_gallery_link_created_by_id_user"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_gallery_link_person_id_person"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gallery_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_gallery_link_token_hash")),
    )
    with op.batch_alter_table("gallery_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gallery_link_family_email"), ["family_email"], unique=False)
        batch_op.create_index(batch_op.f("ix_gallery_link_person_id"), ["person_id"], unique=False)


def downgrade():
    with op.batch_alter_table("gallery_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gallery_link_person_id"))
        batch_op.drop_index(batch_op.f("ix_gallery_link_family_email"))
    op.drop_table("gallery_link")
