"""The cloud: AWS clients, package-application, deploy and status."""
