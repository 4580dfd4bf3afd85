"""`faultlab report RUN_DIR… [-o OUT]`: re-render any saved run directories."""

from __future__ import annotations

from pathlib import Path

import click

from faultlab.reports.rundir import RunDirError


@click.command(name="report")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", default=Path("faultlab-report"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for index.html, results.json and summary.md.")
@click.option("--summary", "summary_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Also append the Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY).")
def command(run_dirs: tuple[Path, ...], out_dir: Path, summary_to: Path | None) -> None:
    """Write the delivery report of RUN_DIRS (run directories, or folders holding them)."""
    from faultlab.reports.render import render

    try:
        index = render(list(run_dirs), out_dir)
    except RunDirError as exc:
        raise click.UsageError(str(exc)) from exc
    md = (out_dir / "summary.md").read_text(encoding="utf-8")
    if summary_to is not None:
        with summary_to.open("a", encoding="utf-8") as fh:
            fh.write(md)
    click.echo(md.splitlines()[0].removeprefix("## "))
    click.echo(f"report: {index}")
