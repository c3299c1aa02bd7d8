"""Quality gates: the linters' configuration and the project's own conventions, tested."""
