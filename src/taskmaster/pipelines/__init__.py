"""Pipelines: definitions (.taskmaster.yml or the default), the DAG plan, state rules and transitions, the engine."""
