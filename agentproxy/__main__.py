"""`python -m agentproxy` is `pa`."""

from agentproxy.cli import main

main()
