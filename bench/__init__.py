"""The benchmark harness: the project's pipeline against the seed design (see README.md)."""
