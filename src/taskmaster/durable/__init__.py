"""Durable execution: DBOS Transact configured from the settings, and the client that enqueues jobs.

The API process uses `client.JobClient` only; a worker launches the engine (`engine.launch`).
"""
