"""The app processes of a run: each business-logic node's entry in its sandbox or container.

supervisor (processes, the stop ladder), sandbox + _unshare_root (bubblewrap / unshare),
appliance (the appliance's paths and environment), console_log (capped console.log),
container_images + container_app (``--in-container``), deps (host-mode pre-flight from the
Dockerfiles), sdk/panoramasdk (the simulated SDK the apps import).
"""
