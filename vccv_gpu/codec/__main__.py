"""`python -m vccv_gpu.codec COMMAND`: command-line tools for H.264 files."""

from __future__ import annotations

import argparse
import sys

from . import info, motion_cli, reencode

COMMANDS = {
    "info": (info.main, "print the stream structure of H.264 files"),
    "motion": (motion_cli.main, "write every frame's motion vectors (and residuals) of videos as numpy shards"),
    "reencode": (reencode.main, "re-encode videos to H.264 with a fixed GOP and B-frame count"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m vccv_gpu.codec",
        description="Command-line tools for H.264 files. Without a COMMAND this help is printed on "
                    "stderr and the exit status is 2 (a usage error), as for an unknown COMMAND.")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND",
                        help="; ".join(f"{name}: {text}" for name, (_, text) in COMMANDS.items()))
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="the command's arguments (COMMAND --help)")
    if not argv:
        # argparse alone would say "the following arguments are required": the commands say more
        parser.print_help(sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the usage error and exits
    return COMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
