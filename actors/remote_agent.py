"""RemoteAgent: stands where a ClaudeWorker would for a subtask that runs on a worker host.

What the Dispatcher, the Clarifier and the Supervisor tell the subtask's agent (and, since the checks
run where the agent works, the Dispatcher's Prepare and Review) it passes to the Bridge, which sends
it to the assignment's actors on the worker. Their replies come back through the Bridge as if from a
local worker.
"""

from __future__ import annotations

from typing import Any

from agentproxy.actors.base import BRIDGE, CLARIFIER, WORKER_PREFIX, Directory, SupervisedActor

from agentproxy.messages import Msg, Restarted, ToAgent


class RemoteAgent(SupervisedActor):
    def __init__(self, name: str, directory: Directory) -> None:
        super().__init__(name, directory)
        self.subtask_id = name.removeprefix(WORKER_PREFIX)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Restarted) and message.name != CLARIFIER:
            return None  # only a restarted Clarifier concerns the agent: its questions are asked again
        if isinstance(message, Msg):
            self.directory.tell(BRIDGE, ToAgent(subtask_id=self.subtask_id, message=message))
        return None
