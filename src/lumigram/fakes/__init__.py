"""Local fakes of external services, served over real HTTP for tests and the sandbox."""
