"""CLI commands: one module each, discovered by `invmap.cli` (HELP, add_arguments, run)."""
