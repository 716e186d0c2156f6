"""What a running worker serves besides its agents: the web endpoints and desk page, metrics, logs, and Kafka administration."""
