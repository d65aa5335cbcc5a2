"""Sub-commands of the ``abgym`` command line, one module per feature (see ``abgym.cli``)."""
