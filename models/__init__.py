"""The vocabulary: SQLAlchemy rows, value types, enums, errors and pydantic schemas.

Imports nothing else of ours, so every other package can depend on it. The
package itself imports nothing: `models.enums` or `models.errors` cost
microseconds, which the CLI's help needs. `models.tables` imports every module
that declares a table, for code that needs the whole `Base.metadata`
(migrations, drift checks); `db.engine` imports it, so any session sees them all.
"""
