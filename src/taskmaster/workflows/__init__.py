"""The AI loop's runs (review, recovery, and code generation to come): requested as `workflow_runs` rows, claimed and
run by a worker; they compose pipelines, agents and forges. Also the demo (`demo.py`). No HTTP, no CLI."""
