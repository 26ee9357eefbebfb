"""The fleet after the Panorama service (issue 18): the appliance image, exporters to Docker
Compose / Swarm, Kubernetes and AWS IoT Greengrass v2 (pure functions of :class:`.model.FleetApp`
-> files), and ``deploy --target`` (the only part that talks to an engine)."""
