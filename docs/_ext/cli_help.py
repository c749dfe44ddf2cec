"""A Sphinx directive that shows the ``--help`` text of the ``ef21fast`` command line.

``.. ef21fast-help::`` alone gives the top-level help; ``.. ef21fast-help:: run`` the help
of one subcommand. The text comes from :func:`ef21fast.cli.build_parser`, so the page
cannot drift from the flags the program accepts.
"""

from __future__ import annotations

import argparse
import os

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

#: Width the help text is wrapped to (argparse reads $COLUMNS), fixed so that the pages
#: do not depend on the terminal that built them.
WIDTH = 88


def _help_text(command: str | None) -> str:
    from ef21fast.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        parser = build_parser()
        if command is None:
            return parser.format_help()
        for action in parser._actions:  # argparse has no public accessor for subparsers
            if isinstance(action, argparse._SubParsersAction):
                if command not in action.choices:
                    raise ValueError(f"ef21fast has no subcommand {command!r}; "
                                     f"known: {', '.join(action.choices)}")
                return action.choices[command].format_help()
        raise ValueError("the ef21fast parser has no subcommands")
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


class Ef21fastHelp(SphinxDirective):
    """``.. ef21fast-help:: [subcommand]``: the help text as a literal block."""

    optional_arguments = 1
    has_content = False

    def run(self):
        command = self.arguments[0] if self.arguments else None
        try:
            text = _help_text(command)
        except ValueError as exc:
            raise self.error(str(exc)) from None
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_directive("ef21fast-help", Ef21fastHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
