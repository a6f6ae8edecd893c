"""Helpers shared by the tests: generated inputs, slow references of the specs, repository paths.

Test files import them by absolute path (``from tests.helpers.vos_clips import ...``); no test
file imports another test file.
"""
