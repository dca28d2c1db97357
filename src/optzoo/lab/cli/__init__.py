"""The command line: one small module per ``optzoo`` sub-command over the shared helpers in ``support``."""
