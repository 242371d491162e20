"""Fixtures of the serving tests: the custom-op library from the runtime tests' fixtures."""

from tests.runtime.fixtures import ops_library  # noqa: F401  (fixtures are found by name)
