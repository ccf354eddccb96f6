from agentproxy.server.cli import main

main()
