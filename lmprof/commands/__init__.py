"""One module per subcommand: compose run -> RunResult -> views. See lmprof.cli.COMMANDS."""
