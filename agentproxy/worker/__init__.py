"""pa-worker: a worker host that runs subtasks a supervisor assigns it over the bridge (docs/remote.md)."""
