"""The worker: runs durable jobs (DBOS), heart-beats into `workers`, in its own process or inside `serve`."""
