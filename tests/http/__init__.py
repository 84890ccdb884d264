# ruff: noqa: A005 (tests.http, a package of tests, not the standard library module)
