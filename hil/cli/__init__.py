"""The `cobotguard` command: one module per subcommand, each with `add_arguments` and `run(args) -> int`;
`common` holds what they share (exit codes, errors, the configuration loader, common options)."""
