"""The ``edgewalk`` command line: one module per group of commands, and the one boundary where
expected failures become a one-line message and an exit status."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from typing import NoReturn, Sequence

from .. import __version__, memory
from ..errors import EXIT_STATUS, InputError, RefusedError, RunError
from . import files, run, study, train

DESCRIPTION = """\
Monte Carlo hitting times of edge-conditioned policies on the path-star graph of Wei & Kim,
"Provable Benefits of RLVR over SFT for Reasoning Models" (ICML 2026), and on any graph
(--family star|tree|grid|regular, or --graph FILE --root NODE). The target is --target leaves
(the default: uniform over the graph's leaves, what training optimises) or a node.

  edgewalk run                  the main job: pretrained, SFT and RLVR on the paper's graph
                                (W = K = 15, L = 5; each rollout's T drawn from its exact
                                law by the leap sampler), written to edgewalk-results.h5
  edgewalk run --policy rlvr --rollouts 1000000
                                one policy; prints mean, standard error, exact value, steps/s
  edgewalk exact -K 15 --policy sft
                                the exact expected hitting time (GTH state reduction)
  edgewalk train --method rlvr  post-train a policy; simulate it with run --policy-file
  edgewalk sweep                the scaling study against the paper's bounds; check its file
                                with edgewalk check
  edgewalk sweep --family tree  the topology study: SFT, RLVR and distilled trained on every
                                graph of a family, and the separation E[T_sft] / E[T_rlvr]
  edgewalk sweep study.toml --shard 0/4
                                a quarter of a sweep file's work (SLURM arrays); edgewalk merge
                                joins the shards; --dask runs it on a Dask cluster
  edgewalk plot FILE            the figures of a study, run or training file

Every command explains its options with --help. Exit status:
""" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_STATUS.items()) + "\n"



class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line: no usage block, the command, what is wrong and
    where the allowed values are (the subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        message = (message.replace("invalid int value:", "expected a whole number, got")
                   .replace("invalid float value:", "expected a number, got"))
        self.exit(2, f"edgewalk: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgewalk", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"edgewalk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, study, train, files):
        module.add_commands(commands)
    for command in commands.choices.values():
        command.add_argument("--max-memory", default=None, metavar="SIZE",
                             help="refuse, before any work, a problem whose estimated memory exceeds SIZE "
                             "(e.g. 4G; default: the memory available now)")
        command.set_defaults(option_names={
            action.dest: max(action.option_strings, key=len)
            for action in command._actions if action.option_strings and action.dest != "help"})
    return parser


def _as_typed(error: InputError, args: argparse.Namespace) -> str:
    """The message with its leading parameter name replaced by the option the user typed."""
    message = str(error)
    names = getattr(args, "option_names", {})
    named = re.match(r"^\S+ \((\w+)\)", message)  # the library's "W (branches) ...": the dest in brackets
    if named and named.group(1) in names:
        return names[named.group(1)] + message[named.end():]
    option = names.get(error.parameter or "")
    if option and message.startswith(error.parameter):
        return option + message[len(error.parameter):]
    return message


def _line(message: str) -> str:
    """A message as one line (library and HDF5 errors may hold line breaks)."""
    return " ".join(message.split()) + "\n"


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM (SLURM's time limit) as Ctrl-C
    try:
        memory.set_limit(None if args.max_memory is None else memory.parse_size(args.max_memory))
        return args.handler(args)
    except RefusedError as error:
        parser.exit(error.exit_status, _line(f"edgewalk: refused: {_as_typed(error, args)}"))
    except InputError as error:
        parser.exit(error.exit_status, _line(f"edgewalk: error: {_as_typed(error, args)}"))
    except ValueError as error:
        parser.exit(2, _line(f"edgewalk: error: {error}"))
    except KeyboardInterrupt:
        parser.exit(130, "edgewalk: interrupted; no partial output was left\n")
    except BrokenPipeError:
        # the reader went away (edgewalk run | head): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (OSError, RunError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
        parser.exit(RunError.exit_status, _line(f"edgewalk: failed: {reason}{where}; no partial output was left"))
    finally:
        signal.signal(signal.SIGTERM, previous)
