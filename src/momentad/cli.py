"""What every stage CLI shares: logging, and turning InputError into one line + exit 2."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

import typer

from momentad.errors import InputError


def setup_logging(verbose: bool) -> None:
    """Quiet by default (warnings only); ``--verbose`` shows what each step is doing."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Harmless deprecation chatter from pinned third-party versions (transformers 4.33 on
    # torch 2.13) would otherwise greet every user on every run.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # transformers 4.33 calls torch.utils.checkpoint without use_reentrant; behaviour is right
    # (momentad.models.lora handles the re-entrant case), the warning is noise.
    warnings.filterwarnings("ignore", message="torch.utils.checkpoint: the use_reentrant")
    # bitsandbytes (imported by peft) logs that an optional CPU nf4 kernel package is absent on
    # every import, quantisation on or off; the fallback path it takes is the one we measured.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def show_progress(asked: bool | None) -> bool:
    """Progress bars when asked, else only on a terminal: a log file gets no bar frames."""
    import sys

    return sys.stderr.isatty() if asked is None else asked


def die_with_parent() -> None:
    """Linux: end this process when its parent (dvc) dies, so killing `dvc repro` never leaves
    a training child running and writing checkpoints."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_interrupted = False


def _on_interrupt(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Typer command: bad input becomes ``error: <message>`` and exit code 2, Ctrl-C
    exit code 130 and "interrupted" whatever the interrupted code turned it into (a parser that
    reports a cut-off read as a broken file)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import signal
        import threading

        global _interrupted
        _interrupted = False
        die_with_parent()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _on_interrupt)
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            if not _interrupted:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            pass
        # Ctrl-C: an interrupt, not a broken input (outputs are written atomically)
        typer.echo("interrupted: nothing was written; run the command again to resume", err=True)
        raise typer.Exit(code=130) from None

    return wrapper
