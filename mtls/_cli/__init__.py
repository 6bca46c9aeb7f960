"""The ``mtls`` command line, split by subcommand (the entry point is :func:`mtls.cli.main`).

================  =============================================================
module            what
================  =============================================================
``_common``       errors and exit codes, passwords, output (colour, JSON), logs
``_parser``       the argparse tree, with keytool's single-dash spellings
``_stores``       genkey, export, import, list, convert (keytool's operations)
``_check``        check: load every profile and tabulate what would be served
``_probe``        probe: a real handshake, and a diagnosis when it fails
``_demo``         demo: the seed flow end to end in a temporary folder
================  =============================================================

Output is written through :class:`~mtls._cli._common.Output`, never ``print``, so
every line follows the same colour rules.
"""
