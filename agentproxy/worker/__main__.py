from agentproxy.worker.cli import main

main()
