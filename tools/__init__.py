"""Developer tools kept outside the installed package: synthetic clips with verified encoder
settings for the tests and benchmarks (`clips`), and the Python fuzz campaign against the
parser (`fuzz`, run by CI). Run them from the repository root: `python -m tools.clips OUT`,
`python -m tools.fuzz --help`."""
