"""``python -m services_bot.emulator``: the same as ``services-bot emulator``, without the rest of the product."""

from __future__ import annotations

import argparse

from services_bot.emulator import add_arguments, run, settings_from_args


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services_bot.emulator", description="Run the ModelArts API emulator."
    )
    add_arguments(parser)
    run(settings_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
