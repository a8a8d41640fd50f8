"""One module per subcommand: a plain function that takes typed values and returns an exit code."""
