"""`faultlab server`: run the reference chat server.

Prints one line, `faultlab-server listening on http://HOST:PORT`, once it serves
(the harness reads the port from it when 0 was asked). Logs go to stderr.
SIGTERM (or Ctrl-C) shuts down gracefully and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from faultlab import loops
from faultlab.server.config import LEVELS, RECOVERY_MODES, SYNCHRONOUS_MODES, ServerConfig
from faultlab.server.failpoints import BadFailpoint, Failpoints
from faultlab.server.mutations import MUTATIONS, BadMutation, Mutation
from faultlab.server.store import SchemaMismatch

FAILPOINTS_ENV = "FAULTLAB_FAILPOINTS"
ALLOW_MUTATIONS_ENV = "FAULTLAB_ALLOW_MUTATIONS"


class OneLineErrors(click.Command):
    """Bad arguments exit 2 with a single line saying why (no usage block)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            click.echo(f"faultlab server: {exc.format_message()}", err=True)
            ctx.exit(2)


def _fail(message: str) -> NoReturn:
    click.echo(f"faultlab server: {message}", err=True)
    sys.exit(2)


async def _serve(config: ServerConfig, mutation: Mutation) -> int:
    from faultlab.server.app import ChatServer

    server = ChatServer(config, mutation)
    try:
        url = await server.start()
    except (SchemaMismatch, OSError, sqlite3.Error) as exc:
        await server.store.close()
        if isinstance(exc, SchemaMismatch):
            _fail(str(exc))
        if isinstance(exc, sqlite3.Error):
            _fail(f"cannot open store {config.db}: {exc}")
        _fail(f"cannot listen on {config.host}:{config.port}: {getattr(exc, 'strerror', exc)}")
    except BaseException:
        await server.store.close()
        raise
    print(f"faultlab-server listening on {url}", flush=True)
    logging.getLogger("faultlab.server").info(
        "serving %s: delivery=%s recovery=%s db=%s mutation=%s loop=%s pid=%d",
        url,
        config.delivery,
        config.recovery,
        config.db,
        mutation.name,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
        os.getpid(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.shutdown()
    return 0


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port; 0 picks a free one (announced on stdout).",
)
@click.option(
    "--db", default="chat.db", show_default=True, help="SQLite file (created if missing)."
)
@click.option("--delivery", type=click.Choice(LEVELS), default="exactly-once", show_default=True)
@click.option("--recovery", type=click.Choice(RECOVERY_MODES), default="off", show_default=True)
@click.option(
    "--ping-interval",
    type=click.FloatRange(min=0.05),
    default=25.0,
    show_default=True,
    help="Seconds.",
)
@click.option(
    "--ping-timeout",
    type=click.FloatRange(min=0.05),
    default=20.0,
    show_default=True,
    help="Seconds.",
)
@click.option(
    "--recovery-window",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds a disconnected session is kept.",
)
@click.option(
    "--busy-timeout",
    "busy_timeout_ms",
    type=click.IntRange(min=0),
    default=5000,
    show_default=True,
    help="SQLite busy timeout, ms.",
)
@click.option(
    "--max-content",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Largest accepted content, bytes.",
)
@click.option(
    "--synchronous",
    type=click.Choice(SYNCHRONOUS_MODES, case_sensitive=False),
    default="NORMAL",
    show_default=True,
    help="SQLite synchronous (NORMAL survives kill -9; FULL also an OS crash).",
)
@click.option(
    "--failpoints",
    default=None,
    help=f"e.g. 'after_commit=crash;before_insert=delay(200)*3' (also env {FAILPOINTS_ENV}).",
)
@click.option(
    "--mutation", default=None, help="Plant a known bug (test only; see --list-mutations)."
)
@click.option(
    "--allow-mutations", is_flag=True, help=f"Allow --mutation (or env {ALLOW_MUTATIONS_ENV}=1)."
)
@click.option(
    "--list-mutations", is_flag=True, help="List the mutations and the violation each causes."
)
@click.option(
    "--loop",
    "loop_name",
    type=click.Choice(loops.LOOPS),
    default=loops.DEFAULT_LOOP,
    show_default=True,
    help="Event loop: uvloop (libuv, as Node; less CPU per message) or the standard asyncio loop.",
)
@click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG.")
def command(
    list_mutations: bool, allow_mutations: bool, verbose: bool, loop_name: str, **options: Any
) -> None:
    """Run the reference chat server (the system under test)."""
    if list_mutations:
        for name, planted in MUTATIONS.items():
            click.echo(f"{name:24} {planted.kind:21} {planted.what} (needs: {planted.needs})")
        return
    options["failpoints"] = options["failpoints"] or os.environ.get(FAILPOINTS_ENV, "")
    options["synchronous"] = options["synchronous"].upper()
    try:
        Failpoints().arm_spec(options["failpoints"])
    except BadFailpoint as exc:
        _fail(str(exc))
    allowed = allow_mutations or os.environ.get(ALLOW_MUTATIONS_ENV) == "1"
    try:
        mutation = Mutation.choose(options.pop("mutation"), allowed=allowed)
    except BadMutation as exc:
        _fail(str(exc))
    config = ServerConfig(**options)
    folder = Path(config.db).resolve().parent
    if not folder.is_dir():
        _fail(f"cannot create store {config.db}: folder {folder} does not exist")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from faultlab.server.app import quiet_libraries

    quiet_libraries()
    try:
        loops.loop_factory(loop_name)
    except loops.LoopUnavailable as exc:
        _fail(f"--loop {loop_name}: {exc}")
    sys.exit(loops.run(_serve(config, mutation), loop_name))


if __name__ == "__main__":
    command()
