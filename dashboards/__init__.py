"""Grafana dashboards as code (grafana-foundation-sdk); ``python -m dashboards`` writes the
JSON files the Helm chart ships (helm/chatroom/files/dashboards/)."""
