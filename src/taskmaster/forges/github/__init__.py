"""GitHub: webhooks in (`webhooks.py`: verify, identify, parse into ForgeEvent) and the API client out (`client.py`)."""
