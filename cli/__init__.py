"""The `aitrader` command line: database, data import and demo commands.

Help pages are click's plain ones (`rich_markup_mode=None` on every app):
typer's rich panels double the CPU time of `aitrader --help` (0.12 s user
against 0.06 s), which a busy machine turns into more than the 0.5 s the
command line promises.
"""
