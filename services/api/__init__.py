"""The api: the control plane for audiences, workflows, runs and signal ingestion."""
