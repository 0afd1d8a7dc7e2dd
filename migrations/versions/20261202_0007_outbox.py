"""outbox_message: e-mails to send, once per person, kind and delivery version

Revision ID: 0007_outbox
Revises: 0006_batch_form_token
Create Date: 2026-12-02 02:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007_outbox"
down_revision = "0006_batch_form_token"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Enum("card", "photos_ready", name="mailkind", native_enum=False, length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column(
            "state",
            sa.Enum("pending", "sending", "sent", "failed", name="mailstate", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_id", "kind", "version", name="uq_outbox_person_kind_version"),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_message_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_message_state"), ["state"], unique=False)


def downgrade():
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_state"))
        batch_op.drop_index(batch_op.f("ix_outbox_message_person_id"))
    op.drop_table("outbox_message")
