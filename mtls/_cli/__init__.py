"""The ``mtls`` command line, split by subcommand (the entry point is :func:`mtls.cli.main`).

================  =============================================================
module            what
================  =============================================================
``_main``         ``main``: exceptions become exit codes and one-line messages
``_parser``       the argparse tree, with keytool's single-dash spellings; each
                  subcommand's module is imported only when it runs
``_common``       what subcommands share: errors and exit codes, passwords and
                  their prompts, output (colour, JSON), certificate
                  descriptions, store types, loading stores and profile sets
``_logs``         the library's log records during a command (``--debug``)
``_stores``       genkey, export, import, list, convert and the rest of
                  keytool's store operations
``_certs``        certreq and gencert (both sides of a renewal), printcert,
                  printcertreq and printcrl
``_storeio``      what ``_stores`` and ``_certs`` share: a file's format, a
                  certificate written out, the lines they print
``_check``        check: load every profile and tabulate what would be served,
                  with the secure vault's aliases
``_probe``        probe: choose the context (a profile, a default, or options)
                  and print the report
``_serve``        serve: a test backend that prints every handshake
``_demo``         demo: the seed flow end to end in a temporary folder
``_connect``      one real connection for probe and demo: sockets, handshake,
                  one request (no diagnosis)
``_diagnosis``    what a failure means: the probe's records, the alert and
                  verification-code tables, the classifier and its advice
================  =============================================================

Subcommand modules (``_stores``, ``_certs``, ``_check``, ``_probe``, ``_serve``,
``_demo``)
never import each other: what two of them need is in ``_common`` (or, for probe
and demo, in ``_connect`` and ``_diagnosis``). ``tests/cli/test_layout.py`` checks it.

Output is written through :class:`~mtls._cli._common.Output`, never ``print``, so
every line follows the same colour rules.
"""
