"""backpack: runtime helpers for Panorama application code.

One module per concept; importing any of them needs only numpy and the standard library
(boto3, OpenCV, PyGObject/GStreamer and python-dotenv are imported where used, with one clear
error naming the missing piece, see :mod:`backpack._optional`):

- :mod:`backpack.autoidentity` -- AutoIdentity: which device and application instance this is.
- :mod:`backpack.timepiece` -- Ticker, StopWatch, schedules, AlarmClock, Tachometer.
- :mod:`backpack.cwtacho` -- CWTachometer: frame-time statistics to CloudWatch.
- :mod:`backpack.geometry` -- Point, Line, Rectangle, PolyLine in normalized [0, 1) coordinates.
- :mod:`backpack.annotation` -- annotations and drivers (OpenCV image, Panorama media).
- :mod:`backpack.skyline` -- SkyLine: frames to a GStreamer pipeline (appsrc), FileSkyLine.
- :mod:`backpack.kvs` -- KVSSkyLine and its credentials handlers (Kinesis Video Streams).
- :mod:`backpack.rtsp` -- RTSPSkyLine: the annotated stream on rtsp://host:port/path.
- :mod:`backpack.clips` -- ClipRecorder: mp4 event clips, seconds before and after a trigger.
- :mod:`backpack.service_model` -- the AWS Panorama service model for botocore sessions.

panorama-cli copies this package into the container packages it creates
(``src/backpack/``, stamped in ``INJECTED.json``).
"""

__version__ = "0.1.0"
