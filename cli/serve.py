"""`aitrader serve`: the realtime process (prices, streams, health) under uvicorn.

The API and uvicorn are imported inside the command: `aitrader serve --help`
must answer in 0.5 s. The port is probed first (cli/ports.py): a taken port is
refused in one line before anything is imported or started.
"""

from __future__ import annotations

import typer

from cli.context import console, open_context, run_command
from cli.ports import check_can_listen


@run_command
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="uvicorn worker processes; more than one only with REALTIME_ROLE=api (each "
        "follows the ingest tier itself).",
    ),
) -> None:
    """Serve the REST API, the SSE price stream and the WebSocket feed."""
    # Before anything starts (app, runtime, its Prefect server): a taken port is one line.
    check_can_listen(host, port, holder="another aitrader serve?")
    import uvicorn

    from api.app import create_app
    from services.settings import RealtimeRole

    ctx = open_context()
    role = ctx.settings.realtime_role
    if workers > 1 and role is not RealtimeRole.API:
        raise typer.BadParameter(
            f"each worker would run its own market data source (REALTIME_ROLE={role.value}): "
            "run one ingest process and api replicas with workers (see docs/deploy.md)",
            param_hint="--workers",
        )
    ctx.require_schema()
    base = f"http://{host}:{port}"
    console.print(
        f"AITrader realtime on {base}  docs: {base}/docs  prices: {base}/api/stream/prices  "
        f"ws: ws://{host}:{port}/ws  role: {role.value}"
        + (f"  source: {ctx.settings.market_data_source}" if role is not RealtimeRole.API else "")
        + (f"  workers: {workers}" if workers > 1 else "")
    )
    ctx.engine.dispose()  # the app builds its own engine in its lifespan
    if workers > 1:  # each worker process builds its app from the same environment
        uvicorn.run(
            "api.app:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
        return
    uvicorn.run(create_app(ctx.settings), host=host, port=port, log_config=None, access_log=False)
