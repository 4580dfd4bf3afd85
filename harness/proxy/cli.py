"""`faultlab proxy`: the embedded Toxiproxy-compatible server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from faultlab import loops
from faultlab.harness.proxy.server import serve


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="API address.")
@click.option("--port", default=8474, show_default=True, type=click.IntRange(0, 65535),
              help="API port (0 picks a free one and prints it).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file of proxies to create at start (the /populate shape).")
@click.option("--seed", type=int, default=None, help="Seed for toxicity and jitter draws.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--relay", default="splice", show_default=True,
              type=click.Choice(["splice", "copy"]),
              help="How links without toxics move bytes: in the kernel (os.splice, Linux; "
                   "copy elsewhere) or through a userspace buffer.")
@click.option("--loop", "loop_name", default="asyncio", show_default=True,
              type=click.Choice(["auto", "uvloop", "asyncio"]),
              help="Event loop: uvloop (faster relaying of small messages), the standard "
                   "asyncio loop, or auto (uvloop when it is installed).")
def command(
    host: str, port: int, config: Path | None, seed: int | None, log_level: str,
    relay: str, loop_name: str,
) -> None:
    """Run a Toxiproxy-compatible fault proxy (same HTTP API, port 8474)."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    name = loops.DEFAULT_LOOP if loop_name == "auto" else loop_name
    try:
        loops.loop_factory(name)
    except loops.LoopUnavailable as exc:
        raise click.UsageError(f"--loop {name}: {exc}") from None
    sys.exit(loops.run(serve(host, port, config, seed, splice=relay == "splice"), name))
