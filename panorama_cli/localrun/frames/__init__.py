"""Frames in and out of a run.

frame (the Frame record and the FrameSource protocol), sources (files, image folders) with
live_sources (RTSP, V4L2) and gst_source (a GStreamer pipeline), pacing (a camera's reader
thread), feeds (camera fan-out, HDMI encoder threads), sinks (HDMI mp4), channel + wire (the
control socket and shared-memory frame rings the SDK talks to).
"""
