"""Persistence: SQLAlchemy 2 models, Alembic migrations, and the repository the engine uses."""

from navigator.store.database import Store
from navigator.store.repository import Repository

__all__ = ["Repository", "Store"]
