"""``python -m panorama_cli`` entry point."""

from panorama_cli.cli import main

if __name__ == "__main__":
    main()
