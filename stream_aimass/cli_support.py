"""What every command module shares: the consoles, common options and error exits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from stream_aimass.settings import Settings, load_settings

console = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Working directory [env AIMASS_DATA_DIR].")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a clear error and return the exit to raise (exit code 2: bad input)."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    """Settings from env + flags; invalid values end the command with one readable line."""
    from pydantic import ValidationError

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        # A cross-field check has no location: its message names the settings itself.
        problems = "; ".join(
            f"AIMASS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise fail(f"invalid settings: {problems}") from None
