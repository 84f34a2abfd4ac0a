"""The `uniembed` command line: one small module per verb (cli/<verb>.py with `register(subparsers)`)."""
