"""The test suite: folders mirror the packages (tests/vos/..., tests/ssl_video/...); shared helpers
live in tests/helpers. Every folder is a package, so test files of the same name in different
folders get distinct module names (tests.vos.test_synth, tests.ssl_video.test_synth)."""
