"""``python -m panorama_cli`` and the ``panorama-cli`` console script."""

import sys


def entry() -> None:
    """Run the CLI; Ctrl-C while it is still starting up exits 130 without a traceback."""
    try:
        from panorama_cli.cli import main

        main()
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted; nothing was changed\n")
        sys.exit(130)


if __name__ == "__main__":
    entry()
