"""The worker: heart-beats into `workers` and runs webhook deliveries, pipelines and workflow runs under leases, in
its own process or inside `serve`."""
