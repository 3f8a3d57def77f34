"""One Typer CLI per DVC stage: `python -m stages.<name> --help`."""
